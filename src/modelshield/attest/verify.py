"""Verify a model against its scan attestation: digests, signature, trust, expiry, policy, card.

Every outcome has its own message and exit code:

==================  ====  =============================================================
VERIFIED               0  signed by a trusted key, files match, fresh, policy satisfied
POLICY-DENIED          1  the attested verdict does not satisfy the policy
TAMPERED              10  files differ from the attested subjects (a diff says how), or the
                          attestation itself was altered
EXPIRED               11  the attestation is past its ``expiresAt``
UNSIGNED              12  no attestation
UNTRUSTED-SIGNER      13  signed by a key that is not in the trust store
FORGED-CARD           14  the model card claims a pass that no valid attestation backs
REVOKED               15  (online check only, :mod:`modelshield.attest.online`) the catalog
                          that issued the attestation revoked it
==================  ====  =============================================================
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import modelshield.attest.dsse as dsse
from modelshield.attest.card import CardClaims, load_card
from modelshield.attest.intoto import ScanPredicate, Statement, StatementError, parse_statement
from modelshield.attest.manifest import Manifest, build_manifest, sidecar_path
from modelshield.attest.results import Outcome, TamperDiff, VerifyResult, diff_files
from modelshield.attest.truststore import TrustStore

__all__ = [
    "Outcome",
    "Policy",
    "PolicyResult",
    "TamperDiff",
    "VerifyResult",
    "allow_any",
    "diff_files",
    "require_pass",
    "verify",
]


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """A policy's decision on an attested scan, with the reasons when it denies."""

    allowed: bool
    reasons: tuple[str, ...] = ()


#: A policy judges the attested scan summary (the full policy engine plugs in here).
Policy = Callable[[ScanPredicate], PolicyResult]


def require_pass(predicate: ScanPredicate) -> PolicyResult:
    """The minimal policy: the attested verdict must be ``pass``."""
    if predicate.verdict == "pass":
        return PolicyResult(True)
    return PolicyResult(False, (f"the attested verdict is {predicate.verdict!r}; the policy requires 'pass'",))


def allow_any(predicate: ScanPredicate) -> PolicyResult:
    """A lenient policy: any attested verdict is accepted (integrity and trust still checked)."""
    return PolicyResult(True)


@dataclass(slots=True)
class _Check:
    """Mutable state of one verification run."""

    model: str
    attestation: str
    card: CardClaims | None
    notes: list[str] = field(default_factory=list)
    signer: str | None = None
    keyid: str | None = None
    predicate: ScanPredicate | None = None

    def result(self, outcome: Outcome, *reasons: str, diff: TamperDiff | None = None) -> VerifyResult:
        notes = list(self.notes)
        if outcome is not Outcome.VERIFIED and self.card is not None and self.card.claims_pass:
            notes.append("the model card claims a pass, but no valid attestation backs it")
        return VerifyResult(
            outcome,
            self.model,
            reasons,
            self.attestation,
            self.signer,
            self.keyid,
            self.predicate,
            diff,
            self.card,
            tuple(notes),
        )


def verify(
    model: str | os.PathLike[str],
    trust: TrustStore | str | os.PathLike[str],
    *,
    policy: Policy | None = require_pass,
    now: _dt.datetime | None = None,
    attestation: str | os.PathLike[str] | None = None,
    manifest: Manifest | None = None,
    only: Collection[str] | None = None,
    check_card: bool = True,
) -> VerifyResult:
    """Verify ``model`` (file or folder) against its attestation sidecar.

    ``manifest`` reuses digests already computed (the guard passes digests of the bytes it is
    about to load); ``only`` restricts the file comparison to those names (one file of a folder
    model). ``policy=None`` means the default :func:`require_pass`.
    """
    store = trust if isinstance(trust, TrustStore) else TrustStore.load(trust)
    path = Path(attestation) if attestation is not None else sidecar_path(model)
    card = load_card(model) if check_card else None
    check = _Check(str(model), str(path), card)
    if not path.is_file():
        if card is not None and card.claims_pass:
            return check.result(
                Outcome.FORGED_CARD,
                f"the model card claims {card.verdict or card.badge_verdict!r}, "
                f"but there is no attestation ({path.name} is missing)",
            )
        return check.result(Outcome.UNSIGNED, f"no attestation found (expected {path})")
    statement_or_result = _authenticate(check, path, store)
    if isinstance(statement_or_result, VerifyResult):
        return statement_or_result
    statement = statement_or_result
    return _judge(check, statement, model, manifest, only, policy or require_pass, now)


def _authenticate(check: _Check, path: Path, store: TrustStore) -> Statement | VerifyResult:
    try:
        envelope = dsse.parse(path.read_bytes(), str(path))
    except dsse.EnvelopeError as exc:
        return check.result(Outcome.TAMPERED, f"the attestation is damaged: {exc.message}")
    except OSError as exc:
        return check.result(Outcome.UNSIGNED, f"cannot read the attestation {path}: {exc.strerror}")
    verifier = dsse.verify(envelope, store)
    hinted = {s.keyid for s in envelope.signatures}
    if verifier is None:
        known = [store.name_of(k) for k in hinted if store.name_of(k)]
        check.keyid = next(iter(sorted(hinted)), None)
        if known:
            return check.result(
                Outcome.TAMPERED,
                f"the attestation names trusted key {known[0]!r} but its signature does not match: "
                "it was altered after signing",
            )
        return check.result(
            Outcome.UNTRUSTED_SIGNER,
            f"signed by key {', '.join(sorted(hinted)) or '(no key id)'}, which is not in the trust store",
        )
    check.keyid, check.signer = verifier.keyid, store.name_of(verifier.keyid)
    if envelope.payload_type != dsse.INTOTO_PAYLOAD_TYPE:
        return check.result(Outcome.TAMPERED, f"unexpected payload type {envelope.payload_type!r}")
    try:
        statement = parse_statement(envelope.payload)
    except StatementError as exc:
        return check.result(Outcome.TAMPERED, f"the signed payload is not a modelshield scan: {exc.message}")
    check.predicate = statement.predicate
    return statement


def _judge(
    check: _Check,
    statement: Statement,
    model: str | os.PathLike[str],
    manifest: Manifest | None,
    only: Collection[str] | None,
    policy: Policy,
    now: _dt.datetime | None,
) -> VerifyResult:
    files = manifest if manifest is not None else build_manifest(model)
    actual = {f.name: f.sha256 for f in files.files}
    expected = dict(statement.subjects)
    if only is not None:
        expected = {n: d for n, d in expected.items() if n in only}
        actual = {n: d for n, d in actual.items() if n in only}
    diff = diff_files(expected, actual)
    if not diff.empty:
        return check.result(Outcome.TAMPERED, _tamper_reason(expected, actual, diff), diff=diff)
    oms_problem = _check_oms_link(statement, model)
    if oms_problem:
        return check.result(Outcome.TAMPERED, oms_problem)
    predicate = statement.predicate
    moment = now or _dt.datetime.now(_dt.UTC)
    if moment >= predicate.expires_at:
        return check.result(Outcome.EXPIRED, f"the attestation expired at {predicate.raw.get('expiresAt')}; scan again")
    card_problem = _card_problem(check.card, predicate, statement, check.keyid, model)
    if card_problem:
        return check.result(Outcome.FORGED_CARD, card_problem)
    decision = policy(predicate)
    if not decision.allowed:
        return check.result(Outcome.POLICY_DENIED, *(decision.reasons or ("the policy denied this model",)))
    return check.result(Outcome.VERIFIED)


def _tamper_reason(expected: Mapping[str, str], actual: Mapping[str, str], diff: TamperDiff) -> str:
    if expected and actual and not set(expected.values()) & set(actual.values()):
        return "the attestation belongs to another model: none of its subjects match these files"
    count = len(diff.lines())
    return f"{count} file difference(s) from the attested subjects"


def _check_oms_link(statement: Statement, model: str | os.PathLike[str]) -> str | None:
    if statement.oms_digest is None:
        return None
    from modelshield.attest.oms import oms_root_digest, oms_signature_path

    signature = oms_signature_path(model)
    if not signature.is_file():
        return f"the attestation refers to a model-signing signature, but {signature.name} is missing"
    if oms_root_digest(signature) != statement.oms_digest:
        return f"the model-signing signature {signature.name} is not the one the attestation refers to"
    return None


def _card_problem(
    card: CardClaims | None,
    predicate: ScanPredicate,
    statement: Statement,
    keyid: str | None,
    model: str | os.PathLike[str],
) -> str | None:
    if card is None:
        return None
    if card.attestation and not Path(model).is_dir() and card.attestation != sidecar_path(model).name:
        return None  # the card beside a single-file model describes another file
    if card.claims_pass and predicate.verdict != "pass":
        shown = card.verdict or card.badge_verdict
        return f"the model card claims {shown!r}, but the attested verdict is {predicate.verdict!r}"
    if card.verdict and card.verdict != predicate.verdict:
        return f"the model card says {card.verdict!r}, but the attested verdict is {predicate.verdict!r}"
    if card.subject_digest and card.subject_digest != f"sha256:{predicate.model_root_digest}":
        return "the model card points at a different attestation (subject digest differs)"
    if card.signer and keyid and card.signer != keyid:
        return "the model card names a different signer than the attestation's"
    return None
