"""The catalogue of stable rule ids.

Every module that emits findings declares its rules here with :func:`rule`, so reports
(SARIF in particular) can describe each rule and the ids stay stable across releases.
"""

from __future__ import annotations

from modelshield._record import record
from modelshield.types import Category, Severity

RULES_VERSION = "2026.11.1"


@record
class Rule:
    """A stable rule: id, default severity and category, and the text shown to users."""

    id: str
    title: str
    severity: Severity
    category: Category
    description: str
    remediation: str = ""
    references: tuple[str, ...] = ()


_CATALOGUE: dict[str, Rule] = {}


def rule(
    rule_id: str,
    title: str,
    severity: Severity,
    category: Category,
    description: str,
    remediation: str = "",
    references: tuple[str, ...] = (),
) -> Rule:
    """Declare (or fetch, if identical) a rule; ids must be unique."""
    new = Rule(rule_id, title, severity, category, description, remediation, references)
    old = _CATALOGUE.get(rule_id)
    if old is not None and old != new:
        raise ValueError(f"rule {rule_id} declared twice with different content")
    _CATALOGUE[rule_id] = new
    return new


def get_rule(rule_id: str) -> Rule:
    """Look up a declared rule; unknown ids get a generic description (never crash a report).

    Rules are declared by the modules that emit them, and a fresh process imports only the modules
    its files need. An id not declared yet makes every rule-declaring module load first
    (:func:`load_all_rules`), so a finding never silently gets the generic severity because the
    module that declares its rule happened not to be imported.
    """
    found = _CATALOGUE.get(rule_id)
    if found is None and not _all_loaded:
        load_all_rules()
        found = _CATALOGUE.get(rule_id)
    if found is None:
        return Rule(rule_id, rule_id, Severity.MEDIUM, Category.UNSAFE_CONFIG, f"Finding of rule {rule_id}.")
    return found


_all_loaded = False


def load_all_rules() -> None:
    """Import every module that declares rules (all of modelshield but the CLI and the service), once."""
    global _all_loaded
    if _all_loaded:
        return
    _all_loaded = True
    from modelshield._discovery import import_all

    import_all("modelshield.formats")
    import_all("modelshield.analyzers")
    skip = frozenset({"interface", "cli", "sandbox", "guard", "__main__"})
    import_all("modelshield", skip=skip, skip_packages=frozenset({"service"}))  # the service declares no rules


def rules_loaded_on_demand() -> bool:
    """True when some lookup had to load every rule module (a rule its emitter did not declare first)."""
    return _all_loaded


def all_rules() -> dict[str, Rule]:
    """Every declared rule by id."""
    return dict(_CATALOGUE)


# Rules of the scan pipeline itself (coverage and detection).
UNKNOWN_CONTENT = rule(
    "UNKNOWN-CONTENT",
    "Content no reader recognises",
    Severity.LOW,
    Category.COVERAGE,
    "No reader recognised these bytes, so nothing vouches for them. Unknown content is never reported as clean.",
    "Check what this file is; remove it from the model if it is not needed.",
)
PARSE_ERROR = rule(
    "PARSE-ERROR",
    "File could not be fully parsed",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The file looks like a known format but is malformed or truncated, so the analysis is "
    "incomplete. A loader may still accept part of it.",
    "Obtain an intact copy from a trusted source, or treat the model as untrusted.",
)
LIMIT_HIT = rule(
    "LIMIT-EXCEEDED",
    "A scan limit was reached",
    Severity.MEDIUM,
    Category.COVERAGE,
    "A configured limit (size, opcodes, depth, members, time) was reached; the rest was not "
    "analysed. The verdict cannot be a pass.",
    "Raise the limit with --limit NAME=VALUE if you trust the size of the input, and scan again.",
)
SCAN_CRASH = rule(
    "SCAN-CRASH",
    "The scanner worker for this file crashed or hung",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The isolated worker that scanned this file died or exceeded its time budget. The file was not analysed.",
    "Scan the file alone with a larger --timeout; report a crash as a modelshield bug.",
)
UNREADABLE = rule(
    "UNREADABLE",
    "File could not be read",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The operating system refused to read this file (permissions, special file, I/O error).",
    "Make the file readable by the scanning user.",
)
