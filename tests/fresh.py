"""Scan files in fresh processes, the way the CLI meets them, and compare with an eager in-process scan.

The CLI imports a reader module only when its content test accepts the bytes and an analyzer module
on the first IR object of its type. A test process has usually imported everything, which hides a
check that a fresh process never reaches. :func:`fresh_outcomes` scans each path in a child forked
from a parent that has imported nothing of modelshield (so each child starts as ``modelshield scan``
does), and :func:`eager_outcomes` scans the same paths here with every built-in reader and analyzer
loaded first. For every input the two must agree finding for finding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence

#: (member, format, sorted findings as (rule id, severity, message)) for every artifact of a scan.
Outcome = list[tuple[str | None, str, list[tuple[str, str, str]]]]

_CHILD = textwrap.dedent(
    """
    import json, os, sys

    def outcome(path):
        # imported in the child: each child starts with no modelshield module loaded
        from modelshield.formats.interface import Blob, FileOpener, detect
        from modelshield.scan import scan

        reader = detect(Blob(path, (), os.path.getsize(path), FileOpener(path)))
        detection_loaded = sorted(m for m in sys.modules if m.startswith("modelshield."))
        report = scan([path])
        arts = [
            [a.member, a.format, sorted([f.rule_id, f.severity.label, f.message] for f in a.findings)]
            for a in report.artifacts
        ]
        loaded = sorted(m for m in sys.modules if m.startswith("modelshield."))
        from modelshield.rules import rules_loaded_on_demand

        undeclared = rules_loaded_on_demand()  # a finding's rule was not declared by the modules the scan loaded
        return {"artifacts": arts, "loaded": loaded, "detected": reader.name if reader else None,
                "detection_loaded": detection_loaded,
                "undeclared_rule": undeclared}

    assert not any(m.startswith("modelshield") for m in sys.modules), "the parent must not import modelshield"
    results = {}
    for path in json.loads(sys.stdin.read()):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                data = json.dumps(outcome(path))
            except BaseException as exc:  # reported to the test, which fails on it
                data = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            with os.fdopen(write_end, "w") as out:
                out.write(data)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as inp:
            text = inp.read()
        os.waitpid(pid, 0)
        results[path] = json.loads(text) if text else {"error": "child died without an answer"}
    print(json.dumps(results))
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MODELSHIELD_"))}
    env["PYTHONHASHSEED"] = "0"
    return env


def fresh_outcomes(paths: Sequence[str], timeout: float = 600) -> dict[str, dict[str, object]]:
    """Scan each path in its own fresh child: ``{path: {"artifacts": Outcome, "loaded": modules, "detected": reader}}``.

    ``detected`` is the reader detection picks for the file (before the scan, in the same child), and
    ``detection_loaded`` the modelshield modules loaded once detection was done; ``undeclared_rule`` is
    true when a finding named a rule that no module the scan had loaded declared.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(list(paths)),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd="/",
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"fresh scanner failed ({proc.returncode}): {proc.stderr[-3000:]}")
    results: dict[str, dict[str, object]] = json.loads(proc.stdout.splitlines()[-1])
    return results


def eager_outcomes(paths: Sequence[str]) -> dict[str, Outcome]:
    """Scan each path in this process after importing every built-in reader and analyzer."""
    from modelshield.analyzers import load_builtin_analyzers
    from modelshield.formats import load_builtin_readers
    from modelshield.scan import scan

    load_builtin_readers()
    load_builtin_analyzers()
    out: dict[str, Outcome] = {}
    for path in paths:
        report = scan([path])
        out[path] = [
            (a.member, a.format, sorted((f.rule_id, f.severity.label, f.message) for f in a.findings))
            for a in report.artifacts
        ]
    return out


def as_outcome(fresh: dict[str, object]) -> Outcome:
    """A fresh child's JSON answer in the shape :func:`eager_outcomes` gives."""
    if "error" in fresh:
        raise AssertionError(f"fresh scan failed: {fresh['error']}")
    artifacts = fresh["artifacts"]
    assert isinstance(artifacts, list)
    return [(member, fmt, [tuple(f) for f in findings]) for member, fmt, findings in artifacts]  # type: ignore[misc]
