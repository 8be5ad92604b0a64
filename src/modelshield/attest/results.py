"""What a verification concludes: :class:`Outcome` (with its exit code), :class:`TamperDiff`, :class:`VerifyResult`.

The verifiers return these: :func:`modelshield.attest.verify.verify` for modelshield attestations
(its docstring tables every outcome) and :func:`modelshield.attest.oms.verify_oms` for OpenSSF model
signing signatures; both re-use :func:`diff_files`. Kept apart from either so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelshield.attest.card import CardClaims
from modelshield.attest.intoto import ScanPredicate


class Outcome(StrEnum):
    """The result of a verification."""

    VERIFIED = "VERIFIED"
    POLICY_DENIED = "POLICY-DENIED"
    TAMPERED = "TAMPERED"
    EXPIRED = "EXPIRED"
    UNSIGNED = "UNSIGNED"
    UNTRUSTED_SIGNER = "UNTRUSTED-SIGNER"
    FORGED_CARD = "FORGED-CARD"
    REVOKED = "REVOKED"

    @property
    def exit_code(self) -> int:
        """The CLI exit code of this outcome."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.VERIFIED: 0,
    Outcome.POLICY_DENIED: 1,
    Outcome.TAMPERED: 10,
    Outcome.EXPIRED: 11,
    Outcome.UNSIGNED: 12,
    Outcome.UNTRUSTED_SIGNER: 13,
    Outcome.FORGED_CARD: 14,
    Outcome.REVOKED: 15,
}


@dataclass(frozen=True, slots=True)
class TamperDiff:
    """How the files on disk differ from the attested subjects."""

    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        """True when the files match the subjects exactly."""
        return not (self.changed or self.added or self.removed or self.renamed)

    def lines(self) -> list[str]:
        """One line per difference, e.g. ``changed: model.bin``."""
        out = [f"changed: {n}" for n in self.changed]
        out += [f"added: {n}" for n in self.added]
        out += [f"removed: {n}" for n in self.removed]
        out += [f"renamed: {a} -> {b}" for a, b in self.renamed]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "changed": list(self.changed),
            "added": list(self.added),
            "removed": list(self.removed),
            "renamed": [list(p) for p in self.renamed],
        }


def diff_files(expected: Mapping[str, str], actual: Mapping[str, str]) -> TamperDiff:
    """Compare attested (name -> sha256) with found files; a removed+added pair with one digest is a rename."""
    changed = sorted(n for n in expected.keys() & actual.keys() if expected[n] != actual[n])
    removed = sorted(expected.keys() - actual.keys())
    added = sorted(actual.keys() - expected.keys())
    renamed: list[tuple[str, str]] = []
    for old in list(removed):
        match = next((new for new in added if actual[new] == expected[old]), None)
        if match is not None:
            renamed.append((old, match))
            removed.remove(old)
            added.remove(match)
    return TamperDiff(tuple(changed), tuple(added), tuple(removed), tuple(renamed))


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What verification concluded, and why."""

    outcome: Outcome
    model: str
    reasons: tuple[str, ...]
    attestation: str | None = None
    signer: str | None = None
    keyid: str | None = None
    predicate: ScanPredicate | None = None
    diff: TamperDiff | None = None
    card: CardClaims | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True only for VERIFIED."""
        return self.outcome is Outcome.VERIFIED

    @property
    def exit_code(self) -> int:
        """CLI exit code of the outcome."""
        return self.outcome.exit_code

    def message(self) -> str:
        """Human summary: outcome, reasons, diff lines."""
        head = f"{self.outcome.value}: {self.model}"
        if self.ok and self.predicate is not None:
            head += (
                f" (verdict {self.predicate.verdict}, signed by {self.signer}, "
                f"expires {self.predicate.raw.get('expiresAt')})"
            )
        body = [f"  - {r}" for r in self.reasons]
        body += [f"    {line}" for line in (self.diff.lines() if self.diff else [])]
        body += [f"  note: {n}" for n in self.notes]
        return "\n".join([head, *body])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``verify --format json``."""
        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "model": self.model,
            "reasons": list(self.reasons),
            "attestation": self.attestation,
            "signer": self.signer,
            "keyid": self.keyid,
            "verdict": self.predicate.verdict if self.predicate else None,
            "predicate": self.predicate.raw if self.predicate else None,
            "diff": self.diff.to_dict() if self.diff else None,
            "notes": list(self.notes),
        }
