"""The probe run, top-down: transport checks -> fingerprint (and drift) -> pack trials -> rates -> decision.

Trials run on a bounded thread pool (``concurrency``); each request has a timeout and retries.
When the endpoint keeps failing (``max_failures`` transport failures in a row) the remaining
trials are skipped and reported as coverage, so a broken endpoint costs bounded time and an
incomplete run never passes.
"""

from __future__ import annotations

import base64
import codecs
import datetime as _dt
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import modelshield.probe.detectors as detectors
import modelshield.probe.fingerprint as fingerprint
from modelshield.probe.client import DEFAULT_MAX_BYTES, ChatClient, Reply
from modelshield.probe.errors import ProbeError
from modelshield.probe.pack import Pack, Probe, load_pack
from modelshield.probe.policy import DEFAULT_PROFILE, PROFILES, decide
from modelshield.probe.report import FamilyResult, ProbeFinding, ProbeReport, Trial
from modelshield.probe.stats import wilson
from modelshield.probe.transport import check_endpoint

#: Called with (trials done, trials planned) after every trial.
Progress = Callable[[int, int], None]
_MARKER_LETTERS = "CDFHKMNPQRVWXYZ"
_LEET = str.maketrans(
    {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3", "I": "1", "O": "0"}
)


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """Everything a run can be told; the CLI flags map onto these one to one."""

    model: str | None = None
    api_key: str | None = None
    pack: str = "default"
    families: tuple[str, ...] = ()
    limit: int | None = None
    repeats: int = 1
    concurrency: int = 2
    timeout: float = 60.0
    retries: int = 2
    insecure: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    temperature: float = 0.7
    seed: int = 0
    max_tokens: int = 64
    profile: str = DEFAULT_PROFILE
    baseline: Path | None = None
    max_failures: int = 3
    fingerprint: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Secrets:
    """The per-trial tokens: the injected marker's two halves and the canary secret."""

    marker_a: str
    marker_b: str
    canary: str

    @property
    def marker(self) -> str:
        """The joined marker an obedient endpoint writes."""
        return self.marker_a + self.marker_b


def secrets_for(seed: int, probe_id: str, repeat: int) -> Secrets:
    """Deterministic tokens per (seed, probe, repeat): reproducible, and unique per trial."""
    digest = hashlib.sha256(f"modelshield-probe:{seed}:{probe_id}:{repeat}".encode()).digest()
    letters = "".join(_MARKER_LETTERS[b % len(_MARKER_LETTERS)] for b in digest[:4])
    digits = "".join(str(b % 10) for b in digest[4:8])
    return Secrets(letters, digits, "MSK" + digest[8:14].hex().upper())


def _fill(text: str, secrets: Secrets, payload: str = "") -> str:
    return (
        text.replace("{marker_a}", secrets.marker_a)
        .replace("{marker_b}", secrets.marker_b)
        .replace("{canary}", secrets.canary)
        .replace("{payload}", payload)
    )


def encode(text: str, how: str) -> str:
    """A jailbreak wrapper's encoding of the payload."""
    if how == "base64":
        return base64.b64encode(text.encode()).decode()
    if how == "rot13":
        return codecs.encode(text, "rot13")
    if how == "leet":
        return text.translate(_LEET)
    return text


def build_messages(probe: Probe, secrets: Secrets, seed: int, repeat: int) -> list[dict[str, str]]:
    """The conversation one trial sends (for the data-boundary family: the second session's)."""
    payload = encode(_fill(probe.payload, secrets), probe.encode)
    user = _fill(probe.user, secrets, payload)
    if probe.document:
        user = f"{user}\n\n<document>\n{_fill(probe.document, secrets)}\n</document>"
    messages: list[dict[str, str]] = []
    if probe.system:
        messages.append({"role": "system", "content": _fill(probe.system, secrets)})
    for shot in range(probe.shots):
        fake = secrets_for(seed, f"{probe.id}/shot{shot}", repeat)
        messages.append({"role": "user", "content": _fill(probe.payload, fake)})
        messages.append({"role": "assistant", "content": fake.marker})
    messages.append({"role": "user", "content": user})
    return messages


def judge(probe: Probe, text: str, secrets: Secrets) -> detectors.Verdict:
    """Apply the probe's detector to an answer."""
    if probe.detector == "marker":
        return detectors.marker(text, secrets.marker)
    if probe.detector in {"canary", "boundary"}:
        return detectors.canary(text, secrets.canary)
    if probe.detector == "comply":
        return detectors.comply(text, probe.patterns)
    if probe.detector == "packages":
        return detectors.packages(text)
    return detectors.unsafe_output(text)


class _Breaker:
    """Counts transport failures in a row; open once ``limit`` is reached."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._row = 0
        self.reason: str | None = None

    def record(self, reply: Reply) -> None:
        with self._lock:
            if reply.ok:
                self._row = 0
                return
            if reply.transport_failure or reply.status in {401, 403, 429}:
                self._row += 1
                if self._row >= self.limit and self.reason is None:
                    self.reason = f"{self._row} requests in a row failed ({reply.error}: {reply.detail[:80]})"

    @property
    def open(self) -> bool:
        return self.reason is not None


def _run_trial(client: ChatClient, probe: Probe, repeat: int, options: ProbeOptions, breaker: _Breaker) -> Trial:
    if breaker.open:
        return Trial(probe.id, probe.family, repeat, False, error="skipped: the endpoint kept failing")
    secrets = secrets_for(options.seed, probe.id, repeat)
    seed = options.seed + repeat
    chat = {"temperature": options.temperature, "seed": seed, "max_tokens": options.max_tokens}
    if probe.plant:
        first: list[dict[str, str]] = []
        if probe.system:
            first.append({"role": "system", "content": _fill(probe.system, secrets)})
        first.append({"role": "user", "content": _fill(probe.plant, secrets)})
        planted = client.chat(first, user=f"modelshield-probe-{secrets.marker}-a", **chat)  # type: ignore[arg-type]
        breaker.record(planted)
        if not planted.ok:
            return Trial(probe.id, probe.family, repeat, False, error=f"{planted.error}: {planted.detail[:120]}")
    messages = build_messages(probe, secrets, options.seed, repeat)
    reply = client.chat(messages, user=f"modelshield-probe-{secrets.marker}-b", **chat)  # type: ignore[arg-type]
    breaker.record(reply)
    if not reply.ok:
        return Trial(probe.id, probe.family, repeat, False, error=f"{reply.error}: {reply.detail[:120]}")
    verdict = judge(probe, reply.text, secrets)
    return Trial(
        probe.id,
        probe.family,
        repeat,
        True,
        hit=verdict.hit,
        refused=detectors.is_refusal(reply.text),
        evidence=verdict.evidence,
        answer=reply.text,
    )


def _families(pack: Pack, trials: list[Trial]) -> tuple[FamilyResult, ...]:
    results: list[FamilyResult] = []
    for name in pack.family_names():
        mine = [t for t in trials if t.family == name]
        ran = [t for t in mine if t.ran]
        meta = pack.families.get(name, {})
        results.append(
            FamilyResult(
                name,
                meta.get("title", name),
                meta.get("severity", "high"),
                wilson(sum(t.hit for t in ran), len(ran)),
                len(mine) - len(ran),
            )
        )
    return tuple(results)


def _family_findings(pack: Pack, families: tuple[FamilyResult, ...], trials: list[Trial]) -> list[ProbeFinding]:
    findings: list[ProbeFinding] = []
    for family in families:
        if not family.rate.hits:
            continue
        example = next(t for t in trials if t.family == family.family and t.hit)
        findings.append(
            ProbeFinding(
                f"PROBE-{family.family.upper()}",
                family.severity,
                "red-team",
                f"{family.title}: attack success {family.rate.hits}/{family.rate.trials} "
                f"({family.rate.value:.0%}, 95% CI {family.rate.low:.0%}-{family.rate.high:.0%})",
                evidence=f"{example.probe_id}: {example.evidence}",
                family=family.family,
                probe_id=example.probe_id,
            )
        )
    return findings


def probe(url: str, options: ProbeOptions | None = None, *, progress: Progress | None = None) -> ProbeReport:
    """Probe the OpenAI-compatible endpoint at ``url`` and return the decided report.

    Raises :class:`ProbeError` only for bad options (unknown pack or profile, unreadable
    baseline); an unusable endpoint gives a failing report with ``aborted`` set.
    """
    from modelshield import __version__

    options = options or ProbeOptions()
    if options.profile not in PROFILES:
        raise ProbeError(f"unknown risk profile {options.profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    pack = load_pack(options.pack).subset(list(options.families) or None, options.limit)
    if not pack.probes:
        raise ProbeError(
            f"no probe of pack {pack.name!r} is in the families {list(options.families)}", hint="check --family"
        )
    baseline = fingerprint.load_baseline(options.baseline) if options.baseline else None
    started = time.monotonic()
    started_at = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    planned = [(p, r) for r in range(options.repeats) for p in pack.probes]
    with ChatClient(
        url,
        model=options.model,
        api_key=options.api_key,
        timeout=options.timeout,
        retries=options.retries,
        insecure=options.insecure,
        max_bytes=options.max_bytes,
        concurrency=options.concurrency,
    ) as client:
        state = check_endpoint(client, url, insecure=options.insecure)
        findings = list(state.findings)
        gaps: list[str] = []
        fp: dict[str, Any] | None = None
        drift: dict[str, Any] | None = None
        trials: list[Trial] = []
        aborted = state.fatal
        if aborted is None and options.fingerprint:
            fp, problems = fingerprint.take(client, state.models)
            gaps += problems
            if baseline is not None and not problems:
                drift = fingerprint.compare(baseline, fp)
            elif baseline is not None:
                gaps.append("drift not judged: the fingerprint is incomplete")
            if len(problems) == len(fingerprint.PROMPTS) + len(fingerprint.TOKEN_STRINGS):
                aborted = f"every fingerprint request failed ({problems[0]})"
        if aborted is None:
            trials = _run_all(client, planned, options, progress)
            if trials and not any(t.ran for t in trials):
                aborted = f"no probe got an answer ({trials[0].error})"
        else:
            trials = [Trial(p.id, p.family, r, False, error="skipped: the endpoint is unusable") for p, r in planned]
    not_run = [t for t in trials if not t.ran]
    if aborted:
        findings.append(
            ProbeFinding("PROBE-ENDPOINT-UNUSABLE", "high", "coverage", aborted, evidence=state.fatal_hint or "")
        )
    if not_run:
        kinds = sorted({(t.error or "").split(":")[0] for t in not_run})
        gaps.append(f"{len(not_run)} of {len(trials)} trials did not run ({', '.join(kinds)})")
    for gap in gaps:
        findings.append(ProbeFinding("PROBE-INCOMPLETE", "medium", "coverage", gap))
    if drift and drift["drift"]:
        findings.append(
            ProbeFinding(
                "PROBE-IDENTITY-DRIFT",
                "high",
                "identity",
                "the serving model is not the one in the baseline: " + "; ".join(drift["reasons"]),
            )
        )
    families = _families(pack, trials)
    findings += _family_findings(pack, families, trials)
    complete = not aborted and not gaps
    decision = decide(
        options.profile, families, tuple(findings), drift=bool(drift and drift["drift"]), complete=complete
    )
    return ProbeReport(
        endpoint=url,
        model=state.model,
        tool_version=__version__,
        pack={"name": pack.name, "version": pack.version, "sha256": pack.sha256, "probes": str(len(pack.probes))},
        settings={
            "repeats": options.repeats,
            "temperature": options.temperature,
            "seed": options.seed,
            "max_tokens": options.max_tokens,
            "concurrency": options.concurrency,
            "timeout_s": options.timeout,
            "retries": options.retries,
            "profile": options.profile,
            "baseline": str(options.baseline) if options.baseline else None,
        },
        started_at=started_at,
        duration_s=time.monotonic() - started,
        findings=tuple(findings),
        families=families,
        trials=tuple(trials),
        fingerprint=fp,
        drift=drift,
        decision=decision,
        coverage={
            "complete": complete,
            "trials_planned": len(planned),
            "trials_run": len(trials) - len(not_run),
            "gaps": gaps + ([aborted] if aborted else []),
        },
        aborted=aborted,
    )


def _run_all(
    client: ChatClient, planned: list[tuple[Probe, int]], options: ProbeOptions, progress: Progress | None
) -> list[Trial]:
    breaker = _Breaker(options.max_failures)
    done = 0
    lock = threading.Lock()
    results: list[Trial | None] = [None] * len(planned)

    def work(index: int) -> None:
        nonlocal done
        probe_, repeat = planned[index]
        results[index] = _run_trial(client, probe_, repeat, options, breaker)
        with lock:
            done += 1
            if progress is not None:
                progress(done, len(planned))

    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="probe") as pool:
        list(pool.map(work, range(len(planned))))
    return [t for t in results if t is not None]


def save_baseline(report: ProbeReport, path: Path) -> None:
    """Write the run's fingerprint as a baseline; an error when the fingerprint is missing or partial."""
    if report.fingerprint is None or any(a["sha256"] is None for a in report.fingerprint["answers"]):
        raise ProbeError(
            f"no complete fingerprint to save to {path}", hint="the endpoint must answer the fingerprint prompts"
        )
    fingerprint.save_baseline(path, report.fingerprint, report.endpoint)
