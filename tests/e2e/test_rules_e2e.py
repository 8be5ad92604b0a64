"""Every rule of the catalogue fires, end to end, in a fresh ``modelshield scan`` process (see tests/e2e/cases.py)."""

from __future__ import annotations

import pytest
from tests.e2e.cases import CASES, EXEMPT, by_rule
from tests.e2e.runner import Batch

#: (rule id, case name) for every fixture of every rule in the table.
PROOFS = [(rule_id, case.name) for rule_id, cases in sorted(by_rule().items()) for case in cases]
BLOCKING = {"high", "critical"}


def test_every_rule_has_a_fixture(e2e_catalogue: dict[str, str]) -> None:
    catalogue, table = set(e2e_catalogue), set(by_rule())
    missing = sorted(catalogue - table - set(EXEMPT))
    unknown = sorted((table | set(EXEMPT)) - catalogue)
    for rule_id, why in EXEMPT.items():
        print(f"exempt from the fresh-process proof: {rule_id}: {why}")
    assert not missing, f"rules without a fresh-process fixture in tests/e2e/cases.py: {', '.join(missing)}"
    assert not unknown, f"tests/e2e/cases.py names rules `modelshield rules` does not list: {', '.join(unknown)}"


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize(("rule_id", "case_name"), PROOFS, ids=[f"{r}@{c}" for r, c in PROOFS])
def test_rule_fires_in_a_fresh_process(
    rule_id: str, case_name: str, e2e_batch: Batch, e2e_catalogue: dict[str, str]
) -> None:
    if case_name in e2e_batch.skipped:
        pytest.skip(e2e_batch.skipped[case_name])
    outcome = e2e_batch.outcomes[case_name]
    assert outcome.report is not None and not outcome.error, outcome.describe()
    assert rule_id in outcome.rules, f"{rule_id} did not fire in a fresh process\n{outcome.describe()}"
    if e2e_catalogue.get(rule_id) in BLOCKING:
        assert outcome.returncode == 1, (
            f"{rule_id} is {e2e_catalogue[rule_id]}: exit code 1 expected\n{outcome.describe()}"
        )


def test_no_payload_ran_while_scanning(e2e_batch: Batch) -> None:
    canaries = [
        path
        for path in e2e_batch.root.rglob("canary*")
        if path.name == "canary" or (path.name.startswith("canary-") and not path.is_dir())
    ]
    assert not canaries, f"a payload ran during a scan: {canaries}"


def test_no_fixture_crashes_the_scanner(e2e_batch: Batch) -> None:
    crashes = {
        name: sorted({"INTERNAL-ERROR", "SCAN-CRASH"} & set(outcome.rules) - set(outcome.case.proves))
        for name, outcome in e2e_batch.outcomes.items()
    }
    crashed = {name: rules for name, rules in crashes.items() if rules}
    assert not crashed, "the scanner failed on fixtures that are about something else:\n" + "\n".join(
        e2e_batch.outcomes[name].describe() for name in crashed
    )
