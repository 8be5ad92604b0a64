"""A scan job: the model's stored files, laid out under their own names, through the full pipeline.

The pipeline is :func:`modelshield.scan.run_pipeline`, exactly as ``modelshield scan MODEL --policy
FILE --profile P --attest --key SERVICE_KEY [--dynamic]`` runs it: static analysis, CVE assessment,
the policy gate (the service's policy plus the model's approved waivers), and a signed attestation
with the model card block. The service only turns its outcome into statuses and per-file indicators.

One hash pass: the attestation's manifest hashes the materialised files once; those digests must
equal the ones recorded at registration, or the stored bytes drifted and nothing is attested.
The same file set scanned under the same profile, policy, waivers, rules and advisory data is scanned
once: a later model with those bytes reuses the result (``cache_key``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from modelshield.attest.manifest import CARD_NAME, FOLDER_SIDECAR_NAME, is_ignored
from modelshield.errors import ModelShieldError
from modelshield.service import audit, catalog, policy_store, queue
from modelshield.service.db import Database
from modelshield.service.models import Model, Scan, utcnow
from modelshield.service.queue import Claimed
from modelshield.service.settings import Settings
from modelshield.service.storage import Storage

log = logging.getLogger("modelshield.service.scan")

#: Finding-level verdicts of the engine -> the per-file indicator the catalog shows.
INDICATOR = {"fail": "unsafe", "warn": "suspicious", "pass": "safe"}
_RANK = {"safe": 0, "suspicious": 1, "unsafe": 2}
MAX_FINDINGS_PER_FILE = 200
DRIFT_RULE = "SERVICE-DRIFT"
POLICY_NAME = "service-policy.yaml"


class PermanentFailure(ModelShieldError):
    """A job that cannot succeed by retrying (e.g. dynamic analysis asked for, no sandbox here)."""


@dataclass
class ScanResult:
    """What one scan concluded, ready to be stored."""

    status: str
    reason: str
    verdict: str | None
    decision: dict[str, Any] | None
    report: str | None
    attestation: str | None
    attestation_sha256: str | None
    card: str | None
    expires_at: _dt.datetime | None
    rules_version: str | None
    advisory_snapshot: str | None
    files: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    cached_from: int | None = None


@dataclass(frozen=True, slots=True)
class ScanInput:
    """Everything a scan needs from the database, read before the (long) scan starts."""

    model_id: int
    name: str
    profile: str
    dynamic: bool
    files: tuple[tuple[str, str], ...]
    policy_yaml: str
    cache_key: str


def root_digest(files: Iterable[tuple[str, str]]) -> str:
    """The manifest's root digest of (relative path, sha256) pairs (the card and sidecars left out)."""
    hasher = hashlib.sha256()
    for name, digest in sorted(f for f in files if not is_ignored(f[0])):
        hasher.update(f"{name}\0{digest}\n".encode())
    return hasher.hexdigest()


def current_advisory_snapshot() -> str:
    """Snapshot date of the advisory data a scan would use now (re-read from disk)."""
    from modelshield.advisories.db import clear_cache, load_db

    clear_cache()
    return load_db().snapshot


def _cache_key(root: str, profile: str, dynamic: bool, policy_yaml: str) -> str:
    from modelshield.rules import RULES_VERSION

    material = json.dumps(
        [root, profile, dynamic, hashlib.sha256(policy_yaml.encode()).hexdigest(), RULES_VERSION],
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


def load_input(db: Database, model_id: int) -> ScanInput | None:
    """The scan's inputs (None when the model is gone or revoked)."""
    with db.read() as session:
        model = session.get(Model, model_id)
        if model is None or model.status == "revoked":
            return None
        files = tuple((f.path, f.sha256) for f in catalog.files_of(session, model_id))
        waivers = catalog.active_waivers(session, model_id, utcnow().date())
        policy_yaml = policy_store.scan_policy_yaml(policy_store.load(session), waivers)
        key = _cache_key(root_digest(files), model.profile, model.dynamic, policy_yaml)
        return ScanInput(model.id, model.name, model.profile, model.dynamic, files, policy_yaml, key)


def run_scan(db: Database, settings: Settings, job: Claimed, worker_id: str) -> None:
    """Run a claimed scan job to its end and store the result (if this worker still holds the job)."""
    actor = f"worker:{worker_id}"
    scan_input = load_input(db, job.model_id)
    with db.write() as session:
        held = queue.held(session, job.id, worker_id)
        if held is None:
            return
        if scan_input is None:
            queue.finish(held)
            return
        model = catalog.get_model(session, job.model_id)
        if model.status != "revoked":
            model.status = "scanning"  # transient: neither audited nor alerted
            model.status_reason = f"scan attempt {job.attempts} of {job.max_attempts}"
            model.updated_at = utcnow()
    started = utcnow()
    reused = _reuse(db, settings, scan_input) if job.reason == "registered" else None
    result = reused or scan_model(settings, scan_input, job)
    with db.write() as session:
        held = queue.held(session, job.id, worker_id)
        if held is None:
            log.warning("job %s: lease lost during the scan; its result is dropped", job.id)
            return
        store_result(session, settings, job, scan_input, result, started, actor)
        queue.finish(held)


def _reuse(db: Database, settings: Settings, scan_input: ScanInput) -> ScanResult | None:
    """The result of an earlier scan of the same bytes under the same conditions, if still fresh."""
    fresh_until = utcnow() + _dt.timedelta(seconds=settings.renew_window_s)
    with db.read() as session:
        previous = session.scalar(
            select(Scan)
            .where(Scan.cache_key == scan_input.cache_key, Scan.kind == "scan", Scan.attestation.is_not(None))
            .order_by(Scan.id.desc())
            .limit(1)
        )
        if previous is None or previous.expires_at is None or previous.expires_at <= fresh_until:
            return None
        if previous.advisory_snapshot != current_advisory_snapshot() or previous.report is None:
            return None
        report = json.loads(previous.report)
        return ScanResult(
            status=previous.outcome,
            reason=f"same bytes as scan #{previous.id} (scanned once, result reused)",
            verdict=previous.verdict,
            decision=previous.decision,
            report=previous.report,
            attestation=previous.attestation,
            attestation_sha256=previous.attestation_sha256,
            card=previous.card,
            expires_at=previous.expires_at,
            rules_version=previous.rules_version,
            advisory_snapshot=previous.advisory_snapshot,
            files=per_file(report, scan_input.name),
            cached_from=previous.id,
        )


@contextmanager
def _work_folder(settings: Settings, job: Claimed) -> Iterator[Path]:
    work = settings.work_dir / f"job-{job.id}-{job.attempts}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, mode=0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)  # the report then names files as MODEL/relative/path, never the data dir
    try:
        yield
    finally:
        os.chdir(before)


def scan_model(settings: Settings, scan_input: ScanInput, job: Claimed) -> ScanResult:
    """Materialise the files and run the pipeline over them."""
    from modelshield.attest import dsse
    from modelshield.render.json import render_json
    from modelshield.scan import ScanOptions, Stages, run_pipeline

    storage = Storage(settings)
    missing = sorted(path for path, digest in scan_input.files if not storage.has(digest))
    if missing:
        return _drift_result(scan_input, {}, missing, None, None, what="went missing")
    with _work_folder(settings, job) as work:
        folder = work / scan_input.name
        storage.materialise(scan_input.files, folder)
        (work / POLICY_NAME).write_text(scan_input.policy_yaml, encoding="utf-8")
        stages = Stages(
            dynamic=scan_input.dynamic,
            policy_file=POLICY_NAME,  # relative to the work folder: the decision names no server path
            profile=scan_input.profile,
            attest=True,
            attest_key=str(settings.key_path),
            attest_valid_days=settings.attestation_days,
            attest_card=True,
        )
        with _cwd(work):
            try:
                outcome = run_pipeline([scan_input.name], ScanOptions(), stages)
            except ModelShieldError as exc:
                if scan_input.dynamic and type(exc).__name__ == "SandboxUnavailable":
                    raise PermanentFailure(exc.message, hint=exc.hint) from None
                raise
        report = outcome.report
        report_text = render_json(report)
        report_data = json.loads(report_text)
        files = per_file(report_data, scan_input.name)
        drifted = _drifted(report_data, scan_input)
        if drifted:
            return _drift_result(scan_input, files, drifted, report_text, report)
        envelope_bytes = (folder / FOLDER_SIDECAR_NAME).read_bytes()
        envelope = dsse.parse(envelope_bytes, FOLDER_SIDECAR_NAME)
        card = (folder / CARD_NAME).read_text(encoding="utf-8", errors="replace")
        decision = report.policy
        status, reason = status_of(report_data["verdict"], decision)
        expires = outcome.attestation.expires_at if outcome.attestation is not None else None
        return ScanResult(
            status=status,
            reason=reason,
            verdict=report_data["verdict"],
            decision=decision,
            report=report_text,
            attestation=envelope_bytes.decode(),
            attestation_sha256=hashlib.sha256(envelope.payload).hexdigest(),
            card=card,
            expires_at=_parse_time(expires) if expires else None,
            rules_version=report.rules_version,
            advisory_snapshot=report.advisory_snapshot,
            files=files,
        )


def _parse_time(text: str) -> _dt.datetime:
    from modelshield.attest.intoto import parse_time

    return parse_time(text)


def status_of(verdict: str, decision: Mapping[str, Any] | None) -> tuple[str, str]:
    """Catalog status from the engine's verdict and policy decision: the policy governs.

    Denied -> failed. Allowed -> passed when the verdict is a pass and no waiver was needed, else
    warn (findings the profile tolerates, or a waived rule, stay visible on the badge).
    """
    profile = (decision or {}).get("profile", "?")
    if decision is not None and decision.get("decision") != "allow":
        failed = ", ".join(str(r) for r in decision.get("failed") or []) or "policy"
        return "failed", f"denied under profile {profile}: {failed}"
    waived = (decision or {}).get("waivers_applied") or []
    if verdict == "pass" and not waived:
        return "passed", f"allowed under profile {profile}; verdict pass"
    extra = f"; allowed by {len(waived)} waiver(s)" if waived else ""
    return "warn", f"allowed under profile {profile}; verdict {verdict}{extra}"


def per_file(report: Mapping[str, Any], model_name: str) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Relative path -> (indicator, findings) from a JSON report: the worst verdict of the file and its members."""
    prefix = model_name + "/"
    return indicators(report, lambda path: path[len(prefix) :] if path.startswith(prefix) else path)


def indicators(
    report: Mapping[str, Any], locate: Callable[[str], str | None]
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Like :func:`per_file`, with ``locate`` turning a report path into the model's relative path (None: skip)."""
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for artifact in report.get("artifacts", []):
        rel = locate(str(artifact.get("path", "")))
        if rel is None:
            continue
        indicator = INDICATOR.get(str(artifact.get("verdict")), "suspicious")
        findings = [{**f, "member": artifact.get("member")} for f in artifact.get("findings", [])]
        if rel in out:
            known, known_findings = out[rel]
            indicator = indicator if _RANK[indicator] > _RANK[known] else known
            findings = known_findings + findings
        out[rel] = (indicator, findings[:MAX_FINDINGS_PER_FILE])
    return out


def _drifted(report: Mapping[str, Any], scan_input: ScanInput) -> list[str]:
    """Files whose bytes, as hashed for the attestation, differ from the digests recorded at registration."""
    prefix = scan_input.name + "/"
    hashed = {
        str(a["path"])[len(prefix) :]: a.get("sha256")
        for a in report.get("artifacts", [])
        if a.get("member") is None and str(a.get("path", "")).startswith(prefix)
    }
    return sorted(
        path for path, digest in scan_input.files if not is_ignored(path) and hashed.get(path) not in (None, digest)
    )


def drift_finding(path: str, what: str) -> dict[str, Any]:
    """The finding the catalog shows on a file whose stored bytes changed."""
    return {
        "rule_id": DRIFT_RULE,
        "severity": "critical",
        "category": "integrity",
        "message": f"the stored bytes of {path} {what} since registration",
        "location": {"path": path, "member": None},
        "evidence": "",
        "references": [],
        "remediation": "Treat the model as compromised; investigate the storage and register the model again.",
        "source": "service",
        "member": None,
    }


def _drift_result(
    scan_input: ScanInput,
    files: dict[str, tuple[str, list[dict[str, Any]]]],
    drifted: list[str],
    text: str | None,
    report: Any,
    what: str = "changed",
) -> ScanResult:
    for path in drifted:
        _, findings = files.get(path, ("unsafe", []))
        files[path] = ("unsafe", [drift_finding(path, what), *findings])
    return ScanResult(
        status="failed",
        reason=f"drift: stored bytes {what} ({', '.join(drifted)[:300]}); nothing attested",
        verdict="fail",
        decision=getattr(report, "policy", None),
        report=text,
        attestation=None,
        attestation_sha256=None,
        card=None,
        expires_at=None,
        rules_version=getattr(report, "rules_version", None),
        advisory_snapshot=getattr(report, "advisory_snapshot", None),
        files=files,
    )


def store_result(
    session: Any,
    settings: Settings,
    job: Claimed,
    scan_input: ScanInput,
    result: ScanResult,
    started: _dt.datetime,
    actor: str,
) -> Scan:
    """Record the scan, the per-file indicators and the model's new status (one transaction)."""
    model = catalog.get_model(session, job.model_id)
    scan = Scan(
        model_id=model.id,
        job_id=job.id,
        kind="scan",
        reason=job.reason,
        started_at=started,
        finished_at=utcnow(),
        outcome=result.status,
        verdict=result.verdict,
        decision=result.decision,
        report=result.report,
        has_report=result.report is not None,
        attestation=result.attestation,
        attestation_sha256=result.attestation_sha256,
        card=result.card,
        expires_at=result.expires_at,
        rules_version=result.rules_version,
        advisory_snapshot=result.advisory_snapshot,
        cache_key=scan_input.cache_key if result.attestation else None,
        detail=result.reason[:2000],
    )
    session.add(scan)
    session.flush()
    for item in catalog.files_of(session, model.id):
        indicator, findings = result.files.get(item.path, ("suspicious", []))
        item.indicator = indicator
        item.findings = findings
    model.current_scan_id = scan.id
    model.root_digest = root_digest(scan_input.files)
    model.attestation_expires_at = result.expires_at
    model.last_verified_at = utcnow()
    audit.record(
        session,
        actor,
        "scan.complete",
        f"model:{model.id}",
        scan=scan.id,
        status=result.status,
        verdict=result.verdict,
        decision=(result.decision or {}).get("decision"),
        profile=(result.decision or {}).get("profile"),
        reason=job.reason,
        reused_scan=result.cached_from,
    )
    catalog.set_status(session, model, result.status, result.reason, actor)
    if model.status == "revoked":
        model.status_reason = f"revoked by {model.revoked_by}: {model.revoke_reason}"
    return scan


def mark_scan_failed(session: Any, model_id: int, attempts: int, error: str, actor: str) -> None:
    """The model could not be scanned (attempts used up, or a permanent failure): scan_failed, never safe."""
    model = session.get(Model, model_id)
    if model is None:
        return
    reason = f"scan failed after {attempts} attempt(s): {error}"[:2000]
    session.add(
        Scan(
            model_id=model_id,
            kind="scan",
            reason="failed",
            started_at=utcnow(),
            finished_at=utcnow(),
            outcome="scan_failed",
            detail=reason,
        )
    )
    model.attestation_expires_at = None
    catalog.set_status(session, model, "scan_failed", reason, actor)
