"""Catalog entries made by fleet sweeps (``modelshield fleet scan --database-url CATALOG``).

A sweep scans models where they live (paths, ``hf://`` ids, fsspec URLs); the catalog stores no
bytes of them. Each swept target becomes one model (``source_kind`` ``fleet``, ``source_ref`` the
target as listed) with its files, per-file indicators and a scan (``kind`` ``fleet``) whose
status the catalog's own policy decides, under the model's profile and its approved waivers, the
same gate a scan job runs. The next sweep of the same target updates the same model: a change of
content is audited, a change of status is audited and sent to the webhooks.

Without bytes there is nothing for the worker to re-hash or re-scan: the next sweep is the
re-verification (the verdict cache makes it cheap). A policy change, a waiver or a rescan
re-evaluates the entry from the artifacts the sweep stored (findings and the facts the CVE stage
reads), so the catalog's decisions stay current between sweeps.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modelshield.service import audit, catalog, policy_store, queue, webhooks
from modelshield.service.db import Database
from modelshield.service.models import Model, ModelFile, Scan, utcnow
from modelshield.service.queue import Claimed
from modelshield.service.scanning import indicators, root_digest, status_of
from modelshield.types import Artifact, ScanReport, Severity

SOURCE_KIND = "fleet"
#: Coverage rules of a sweep: a file that could not be read, changed while scanned, or crashed the scan.
INCOMPLETE_RULES = frozenset({"FLEET-FETCH-FAILED", "FLEET-FILE-CHANGED", "SCAN-CRASH"})
_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class SweptFile:
    """One listed file of a swept target: where it is, what it was, what the scan found."""

    url: str
    sha256: str | None
    size: int
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True, slots=True)
class Written:
    """What writing one target did: the model, whether it is new, its status, whether its content changed."""

    model_id: int
    name: str
    new: bool
    status: str
    changed: bool


def name_for(target: str) -> str:
    """A catalog name for a swept target: ``hf://org/name`` -> ``org--name``, a path or URL -> its last part."""
    text = target.strip()
    if text.startswith(("hf://", "hf:")):
        text = text.split(":", 1)[1].lstrip("/")
        repo, _, revision = text.partition("@")
        text = repo.replace("/", "--") + (f"-{revision}" if revision else "")
    else:
        text = text.split("://", 1)[-1].rstrip("/")
        text = text.rsplit("/", 1)[-1] or "model"
    text = _BAD.sub("-", text).strip("-.") or "model"
    if not text[0].isalpha():
        text = "m-" + text
    return text[:100]


def relative_paths(target: str, urls: Sequence[str]) -> list[str]:
    """Each file's path inside its target: the part after the files' common folder (a lone file: its name)."""
    split = [u.split("://", 1)[-1].split("/") for u in urls]
    if len(split) == 1:
        return [split[0][-1] or target]
    folders = [parts[:-1] for parts in split]
    common = 0
    for column in zip(*folders, strict=False):
        if any(c != column[0] for c in column):
            break
        common += 1
    return ["/".join(parts[common:]) for parts in split]


def _unique_name(session: Session, target: str) -> str:
    base = name_for(target)
    if not catalog.name_taken(session, base):
        return base
    tag = hashlib.sha256(target.encode()).hexdigest()[:8]
    return f"{base[: 100 - 9]}-{tag}"


def find_entry(session: Session, target: str) -> Model | None:
    """The catalog entry an earlier sweep made for ``target``."""
    return session.scalar(select(Model).where(Model.source_kind == SOURCE_KIND, Model.source_ref == target[:2000]))


def _policy(session: Session, model_id: int) -> Any:
    """The catalog's policy with the model's active waivers, built once per distinct (policy, waivers)."""
    waivers = catalog.active_waivers(session, model_id, utcnow().date())
    key = tuple((w.id, w.rule, w.requested_by, w.reason, w.decided_by, w.expires_on) for w in waivers)
    return _built_policy(policy_store.policy_text(session), key)


@functools.lru_cache(maxsize=64)
def _built_policy(text: str, waivers: tuple[tuple[Any, ...], ...]) -> Any:
    """A sweep of thousands of models shares one policy: parse and build it once, not per model."""
    from modelshield.policy.engine import Policy
    from modelshield.policy.model import load_policy_text

    rows = [
        SimpleNamespace(id=w[0], rule=w[1], requested_by=w[2], reason=w[3], decided_by=w[4], expires_on=w[5])
        for w in waivers
    ]
    scan_text = policy_store.scan_policy_yaml(load_policy_text(text, "service policy"), rows)  # type: ignore[arg-type]
    return Policy.from_spec(load_policy_text(scan_text, "catalog policy"), "catalog policy")


def _report(target: str, artifacts: Sequence[Artifact], fail_on: Severity, started: str, seconds: float) -> ScanReport:
    from modelshield._version import __version__
    from modelshield.rules import RULES_VERSION

    tops = [a for a in artifacts if a.member is None]
    return ScanReport(
        tool_version=__version__,
        rules_version=RULES_VERSION,
        targets=(target,),
        artifacts=tuple(artifacts),
        fail_on=fail_on,
        started_at=started,
        duration_s=seconds,
        files_scanned=len(tops),
        files_skipped=0,
        bytes_scanned=sum(max(a.size, 0) for a in tops),
    )


def _gaps(artifacts: Sequence[Artifact]) -> list[str]:
    return sorted({f"{f.rule_id} {a.path}" for a in artifacts for f in a.findings if f.rule_id in INCOMPLETE_RULES})


def evaluate(
    session: Session,
    model: Model,
    target: str,
    artifacts: Sequence[Artifact],
    fail_on: Severity,
    started: str,
    seconds: float,
) -> tuple[ScanReport, str, str]:
    """Gate a swept model's artifacts with the catalog's policy: (gated report, status, reason)."""
    from modelshield.policy.gate import Gate

    gate = Gate(_policy(session, model.id), model.profile, None)
    report = gate.apply(_report(target, artifacts, fail_on, started, seconds))
    gaps = _gaps(artifacts)
    if gaps:
        shown = "; ".join(gaps[:5]) + (f"; and {len(gaps) - 5} more" if len(gaps) > 5 else "")
        return report, "scan_failed", f"the sweep could not scan every file ({len(gaps)}): {shown}"
    status, reason = status_of(report.verdict.value, report.policy)
    return report, status, reason


def _store_scan(
    session: Session,
    model: Model,
    report: ScanReport,
    raw: Sequence[Artifact],
    text: str,
    outcome: tuple[str, str],
    kind_reason: str,
    detail: str,
) -> Scan:
    from modelshield.fleet import codec

    status, reason = outcome
    scan = Scan(
        model_id=model.id,
        kind=SOURCE_KIND,
        reason=kind_reason[:32],
        started_at=utcnow(),
        finished_at=utcnow(),
        outcome=status,
        verdict=report.verdict.value,
        decision=report.policy,
        report=text,
        has_report=True,
        artifacts=codec.dumps(list(raw)),  # as scanned, before the gate added CVE findings
        rules_version=report.rules_version,
        advisory_snapshot=report.advisory_snapshot,
        detail=(reason + detail)[:2000],
    )
    session.add(scan)
    session.flush()
    model.current_scan_id = scan.id
    model.attestation_expires_at = None
    model.last_verified_at = utcnow()
    return scan


def record_target(
    session: Session,
    target: str,
    files: Sequence[SweptFile],
    *,
    profile: str | None,
    fail_on: Severity,
    started: str,
    seconds: float,
    actor: str,
    run_id: str,
) -> Written:
    """Create or update the catalog entry of one swept target (in the caller's transaction)."""
    model = find_entry(session, target)
    new = model is None
    if model is None:
        chosen = policy_store.check_profile(session, profile)
        now = utcnow()
        model = Model(
            name=_unique_name(session, target),
            status="pending",
            status_reason="swept; being evaluated",
            profile=chosen,
            dynamic=False,
            source_kind=SOURCE_KIND,
            source_ref=target[:2000],
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        session.add(model)
        session.flush()
        audit.record(
            session, actor, "model.register", f"model:{model.id}", name=model.name, source=SOURCE_KIND,
            files=len(files), profile=chosen, dynamic=False, source_ref=target[:500], sweep=run_id,
        )  # fmt: skip
        webhooks.emit(session, "model.registered", {"id": model.id, "name": model.name, "status": "pending"})
    rel = dict(zip((f.url for f in files), relative_paths(target, [f.url for f in files]), strict=True))
    hashed = [(rel[f.url], f.sha256) for f in files if f.sha256 is not None]
    root = root_digest(hashed)
    changed = not new and model.root_digest is not None and model.root_digest != root
    artifacts = [a for f in files for a in f.artifacts]
    report, status, reason = evaluate(session, model, target, artifacts, fail_on, started, seconds)
    text = _render(report)
    per_file = indicators(json.loads(text), rel.get)
    session.execute(delete(ModelFile).where(ModelFile.model_id == model.id))
    session.flush()
    seen: set[str] = set()
    for item in files:
        path = rel[item.url]
        if item.sha256 is None or path in seen:
            continue
        seen.add(path)
        catalog.add_blob(session, item.sha256, max(item.size, 0))
        indicator, findings = per_file.get(path, ("suspicious", []))
        session.add(
            ModelFile(
                model_id=model.id, path=path, sha256=item.sha256, size=max(item.size, 0),
                indicator=indicator, findings=findings,
            )
        )  # fmt: skip
    if changed:
        audit.record(
            session, actor, "model.content_changed", f"model:{model.id}",
            previous=model.root_digest, now=root, sweep=run_id,
        )  # fmt: skip
        reason = f"content changed since the last sweep; {reason}"
    scan = _store_scan(session, model, report, artifacts, text, (status, reason), "sweep", f" (sweep {run_id})")
    model.root_digest = root
    audit.record(
        session, actor, "scan.complete", f"model:{model.id}", scan=scan.id, status=status,
        verdict=report.verdict.value, decision=(report.policy or {}).get("decision"), profile=model.profile,
        reason="sweep", sweep=run_id, files=len(files), hashed=len(hashed),
    )  # fmt: skip
    catalog.set_status(session, model, status, reason, actor)
    return Written(model.id, model.name, new, model.status, changed)


def _render(report: ScanReport) -> str:
    from modelshield.render.json import render_json

    return render_json(report)


def reevaluate(session: Session, model: Model, job_reason: str, actor: str) -> Scan | None:
    """Gate a fleet entry again from its stored artifacts (policy change, waiver, rescan); None if none stored."""
    from modelshield.fleet import codec

    current = session.get(Scan, model.current_scan_id) if model.current_scan_id else None
    if current is None or current.kind != SOURCE_KIND or not current.artifacts or not current.report:
        return None
    previous = json.loads(current.report)
    artifacts = codec.loads(current.artifacts)
    fail_on = Severity.parse(str(previous.get("fail_on", "high")))
    target = model.source_ref
    report, status, reason = evaluate(
        session, model, target, artifacts, fail_on, str(previous.get("started_at", "")), 0.0
    )
    urls = sorted({a.path for a in artifacts})
    rel = dict(zip(urls, relative_paths(target, urls), strict=True)) if urls else {}
    text = _render(report)
    per_file = indicators(json.loads(text), rel.get)
    for item in catalog.files_of(session, model.id):
        if item.path in per_file:
            item.indicator, item.findings = per_file[item.path]
    swept = f" (re-evaluated from the sweep of {previous.get('started_at', '?')})"
    scan = _store_scan(session, model, report, artifacts, text, (status, reason), job_reason, swept)
    audit.record(
        session, actor, "scan.complete", f"model:{model.id}", scan=scan.id, status=status,
        verdict=report.verdict.value, decision=(report.policy or {}).get("decision"), profile=model.profile,
        reason=job_reason, reevaluated=True,
    )  # fmt: skip
    catalog.set_status(session, model, status, reason, actor)
    return scan


def is_fleet(model: Model) -> bool:
    """True for a catalog entry a sweep made (its bytes are not in the catalog's store)."""
    return model.source_kind == SOURCE_KIND


def run_job(db: Database, job: Claimed, worker_id: str) -> bool:
    """Run a worker's job on a fleet entry (re-evaluate a scan job; a verify job has nothing to hash).

    False when the job's model is not a fleet entry (the caller runs it as usual).
    """
    with db.read() as session:
        model = session.get(Model, job.model_id)
        if model is None or not is_fleet(model):
            return False
    actor = f"worker:{worker_id}"
    with db.write() as session:
        model = catalog.get_model(session, job.model_id)
        held = queue.held(session, job.id, worker_id)
        if held is None:
            return True
        if job.kind == "scan" and model.status != "revoked" and reevaluate(session, model, job.reason, actor) is None:
            catalog.set_status(
                session, model, "scan_failed",
                "nothing of the sweep is stored to re-evaluate: sweep the target again", actor,
            )  # fmt: skip
        queue.finish(held)
    return True
