"""The fleet driver: list, fingerprint, look up, scan on Ray, stream results, assemble the report.

One listed file goes through these steps, and every step can end it with a result:

1. **fingerprint**: size, stamp and SHA-256. Small local files are hashed here (a task costs more
   than the hash); large and remote files in a Ray task, next to the bytes.
2. **cache**: the verdict of the same bytes in the same context under the same versions, looked
   up in batches; a hit is a result without any scan.
3. **de-duplicate**: byte-identical files of one sweep wait for the first one's scan.
4. **scan**: a Ray task running :func:`modelshield.scan.scan_file` on the file, after checking it
   is still the listed version (and checking again after the scan).

Tasks in flight are bounded (back-pressure: the listing is read only as fast as results come
back). A worker that dies mid-task is replaced by Ray and the task retried (``max_retries``);
a task past its time budget is cancelled. Whatever goes wrong becomes a coverage finding for that
file; a file is never dropped and never reported twice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from modelshield._record import field, record, replace
from modelshield.errors import ModelShieldError, UsageError
from modelshield.fleet.cache import CacheKey, SqlStore
from modelshield.fleet.coverage import FETCH_FAILED, FILE_CHANGED, coverage_artifact
from modelshield.fleet.fetch import INLINE_HASH_MAX, Entry, FetchError, Fingerprint, context_of, fingerprint
from modelshield.types import Artifact, ScanReport, decide

if TYPE_CHECKING:
    from modelshield.scan import Outcome, Stages
    from modelshield.scan_options import ScanOptions

#: Cache look-ups are batched: one query per this many fingerprints.
LOOKUP_BATCH = 256
#: Results written to the store per transaction.
WRITE_BATCH = 128
#: A task still running this long past its submission (times the per-file budget, plus slack) is cancelled.
HARD_TIMEOUT_FACTOR = 3.0
HARD_TIMEOUT_SLACK_S = 30.0
#: Where ``--rules`` puts the user's YARA rule folders (:mod:`modelshield.analyzers.yara_rules`); Ray
#: workers get it through the tasks' runtime environment.
USER_RULES_ENV = "MODELSHIELD_YARA_RULES"


class FleetError(ModelShieldError):
    """A fleet sweep cannot run (no Ray, unreachable cluster, unusable options)."""


@record
class FleetConfig:
    """How a fleet sweep runs: where, how wide, how patient, and where verdicts are kept."""

    address: str | None = None
    num_cpus: int | None = None
    max_in_flight: int | None = None
    max_retries: int = 3
    connect_timeout_s: float = 10.0
    database_url: str | None = None
    cache: bool = True
    cache_path: str | None = None
    run_id: str = ""
    #: Small files (up to ``batch_bytes``) scanned per task; 1: every file its own task.
    batch_files: int = 32
    batch_bytes: int = 1 << 20


@record
class FileResult:
    """One listed file's outcome, as it arrives.

    ``status``: ``scanned``, ``cached`` (verdict from the cache), ``duplicate`` (same bytes as
    another file of this sweep), ``changed``, ``failed`` (could not be fetched) or ``crashed``.
    """

    entry: Entry
    status: str
    artifacts: list[Artifact]
    sha256: str | None = None
    seconds: float = 0.0

    def line(self, fail_on: Any) -> dict[str, Any]:
        """The JSON Lines record of this file."""
        findings = [f for a in self.artifacts for f in a.findings]
        return {
            "index": self.entry.index,
            "target": self.entry.target,
            "path": self.entry.url,
            "status": self.status,
            "sha256": self.sha256,
            "size": self.artifacts[0].size if self.artifacts else self.entry.size,
            "verdict": decide(findings, fail_on).value,
            "artifacts": len(self.artifacts),
            "findings": [f.to_dict() for f in findings],
            "seconds": round(self.seconds, 4),
        }


@record(frozen=False)
class FleetStats:
    """Counts of a sweep, by status, and its wall time."""

    counts: dict[str, int] = field(default_factory=dict)
    listed: int = 0
    seconds: float = 0.0
    bytes: int = 0
    #: What the sweep wrote into the catalog (``--database-url``), one line; empty without a catalog.
    catalog: str = ""

    def summary(self) -> str:
        """The summary printed on stderr."""
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        rate = self.listed / self.seconds if self.seconds > 0 else 0.0
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"
        line = f"fleet: {self.listed} file(s) listed: {parts or 'none'}; {self.seconds:.2f} s ({shown} files/s)"
        return f"{line}\n{self.catalog}" if self.catalog else line


def _probe(address: str, timeout_s: float) -> None:
    """A TCP connection to ``[ray://]host:port`` within ``timeout_s``; FleetError otherwise."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port_text = rest.rstrip("/").rpartition(":")
    if not sep or not port_text.isdigit():
        raise FleetError(f"bad Ray address {address!r}", hint="give auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise FleetError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}; waited up to {timeout_s:g} s)",
            hint="check the address and that the cluster is up (ray status), or leave --address out for a local Ray",
        ) from None


class RayConnection:
    """Ray for one sweep: an existing connection, a cluster by address, or a local Ray started here."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.started = False

    def __enter__(self) -> RayConnection:
        try:
            import ray
        except ImportError:
            raise FleetError("--engine ray needs Ray", hint="pip install 'modelshield[ray]'") from None
        if ray.is_initialized():
            return self
        address = self.config.address
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            if address is None:
                cpus = self.config.num_cpus or os.cpu_count() or 1
                ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
            else:
                if address != "auto":
                    _probe(address, self.config.connect_timeout_s)
                ray.init(address=address, **quiet)
        except FleetError:
            raise
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise FleetError(
                f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0][:300]}",
                hint="check the address and that the cluster is up (ray status), or leave --address out",
            ) from None
        self.started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()

    @staticmethod
    def cpus() -> int:
        """CPUs the cluster offers now."""
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]


def _crash(entry: Entry, size: int, message: str) -> list[Artifact]:
    artifact = coverage_artifact(entry.url, "SCAN-CRASH", message, evidence=f"file of {size} bytes", size=size)
    return [artifact]


#: One unit of scan work: files scanned by one Ray task (one file, or a batch of small ones).
Job = list[tuple[Entry, Fingerprint, CacheKey]]


@record(frozen=False)
class _Flight:
    """A task in flight: what it does, for which files, since when."""

    kind: str  # "fingerprint" | "scan"
    entry: Entry | None
    job: Job
    submitted: float


class FleetScan:
    """Runs one sweep over entries on the connected Ray cluster; yields results as they arrive.

    Small files (up to ``batch_bytes``) are scanned ``batch_files`` to a task: a task costs the
    driver and the cluster about as much as scanning a few small files. A batch whose worker dies
    for good is split and each of its files scanned alone, so the blame lands on one file.
    """

    def __init__(self, options: ScanOptions, config: FleetConfig, store: SqlStore | None) -> None:
        import ray

        from modelshield.fleet import task

        self.ray = ray
        self.options = replace(options, jobs=1, compute_hashes=False)
        self.config = config
        self.store = store
        cpus = RayConnection.cpus()
        self.max_in_flight = config.max_in_flight or 2 * cpus
        self.batch_files = max(1, config.batch_files)
        self.budget = options.timeout_s if options.timeout_s is not None else options.limits.time_per_file_s
        retry: dict[str, Any] = {"max_retries": config.max_retries, "retry_exceptions": False, "num_cpus": 1}
        if os.environ.get(USER_RULES_ENV):
            retry["runtime_env"] = {"env_vars": {USER_RULES_ENV: os.environ[USER_RULES_ENV]}}
        self._fingerprint = ray.remote(**retry)(task.fingerprint_file)
        self._scan = ray.remote(**retry)(task.scan_listed_file)
        self._scan_many = ray.remote(**retry)(task.scan_listed_files)
        self._options_ref = ray.put(self.options)
        self.folders: dict[str, str] = {}
        self.stats = FleetStats()
        self._to_write: list[tuple[CacheKey, list[Artifact]]] = []
        self.lookups: list[tuple[Entry, Fingerprint]] = []
        self.to_scan: deque[Job] = deque()
        self.small: Job = []
        self.in_flight: dict[Any, _Flight] = {}
        self.scanning: set[CacheKey] = set()
        self.waiting: dict[CacheKey, deque[tuple[Entry, Fingerprint]]] = {}

    # -- the loop ---------------------------------------------------------------------------

    def run(self, entries: Iterable[Entry]) -> Iterator[FileResult]:
        """Every entry's result, in completion order; each listed entry exactly once."""
        t0 = time.perf_counter()
        source = iter(entries)
        exhausted = False
        queue_max = 4 * self.max_in_flight + LOOKUP_BATCH
        try:
            while True:
                while not exhausted and len(self.to_scan) < queue_max and len(self.in_flight) < self.max_in_flight:
                    entry = next(source, None)
                    if entry is None:
                        exhausted = True
                        break
                    self.stats.listed += 1
                    result = self._start(entry)
                    if result is not None:
                        yield self._done(result)
                    if len(self.lookups) >= LOOKUP_BATCH:
                        yield from self._lookup()
                idle = not self.in_flight and not self.to_scan
                if self.lookups and (exhausted or idle):
                    yield from self._lookup()
                if self.small and (exhausted or not self.to_scan):
                    self.to_scan.append(self.small)  # a partial batch rather than an idle worker
                    self.small = []
                while self.to_scan and len(self.in_flight) < self.max_in_flight:
                    self._submit(self.to_scan.popleft())
                if not self.in_flight:
                    if exhausted and not self.lookups and not self.to_scan and not self.small:
                        break
                    continue
                ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=1.0)
                if ready:  # take everything that is ready, not just one
                    ready, _ = self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=0)
                for ref in ready:
                    yield from self._finish(ref, self.in_flight.pop(ref))
                yield from self._cancel_overdue()
            if self.waiting:  # cannot happen: every waiter is resolved with its first copy
                raise AssertionError(f"{sum(map(len, self.waiting.values()))} duplicate file(s) left unresolved")
        finally:
            self._flush_writes()
            self.stats.seconds = time.perf_counter() - t0

    def _submit(self, job: Job) -> None:
        ref: Any
        if len(job) == 1:
            entry, fp, _key = job[0]
            ref = self._scan.remote(entry, fp, self._options_ref)
        else:
            ref = self._scan_many.remote([(entry, fp) for entry, fp, _key in job], self._options_ref)
        self.in_flight[ref] = _Flight("scan", None, job, time.monotonic())

    def _done(self, result: FileResult) -> FileResult:
        self.stats.counts[result.status] = self.stats.counts.get(result.status, 0) + 1
        self.stats.bytes += max(result.artifacts[0].size if result.artifacts else 0, 0)
        return result

    def _start(self, entry: Entry) -> FileResult | None:
        if entry.kind == "failed":
            artifacts = [coverage_artifact(entry.url, FETCH_FAILED.id, entry.error.splitlines()[0], entry.error)]
            return FileResult(entry, "failed", artifacts)
        if entry.data is not None or (entry.kind == "local" and 0 <= entry.size <= INLINE_HASH_MAX):
            try:
                fp = fingerprint(entry)
            except FetchError as exc:
                return FileResult(entry, "failed", [self._fetch_failed(entry, exc.message, exc.hint)])
            return self._listed(entry, fp)
        ref = self._fingerprint.remote(entry)
        self.in_flight[ref] = _Flight("fingerprint", entry, [], time.monotonic())
        return None

    def _listed(self, entry: Entry, fp: Fingerprint) -> FileResult | None:
        """Queue the fingerprint for the cache, unless the file is no longer the size it was listed with."""
        if entry.size >= 0 and entry.data is None and fp.size != entry.size:
            message = f"{entry.url}: changed between listing and scanning (listed: {entry.size} bytes, now {fp.size})"
            return FileResult(entry, "changed", [coverage_artifact(entry.url, FILE_CHANGED.id, message, size=fp.size)])
        self.lookups.append((entry, fp))
        return None

    @staticmethod
    def _fetch_failed(entry: Entry, message: str, hint: str) -> Artifact:
        return coverage_artifact(entry.url, FETCH_FAILED.id, message, evidence=hint, size=max(entry.size, -1))

    def _queue(self, entry: Entry, fp: Fingerprint, key: CacheKey) -> None:
        if fp.size <= self.config.batch_bytes and self.batch_files > 1:
            self.small.append((entry, fp, key))
            if len(self.small) >= self.batch_files:
                self.to_scan.append(self.small)
                self.small = []
        else:
            self.to_scan.append([(entry, fp, key)])

    def _lookup(self) -> Iterator[FileResult]:
        from modelshield.fleet.codec import loads, relocate

        batch = [(entry, fp, CacheKey(fp.sha256, context_of(entry, self.folders))) for entry, fp in self.lookups]
        self.lookups = []
        hits = self.store.get_many([key for _, _, key in batch]) if self.store is not None else {}
        decoded: dict[CacheKey, list[Artifact]] = {}
        for entry, fp, key in batch:
            text = hits.get(key)
            if text is not None:
                found = decoded.get(key)
                if found is None:
                    try:
                        found = decoded[key] = loads(text)
                    except (ValueError, KeyError, TypeError):  # a damaged row: scan again, it gets replaced
                        found = None
                if found is not None:
                    yield self._done(FileResult(entry, "cached", relocate(found, entry.url, fp.sha256), fp.sha256))
                    continue
            if key in self.scanning:
                self.waiting.setdefault(key, deque()).append((entry, fp))
            else:
                self.scanning.add(key)
                self._queue(entry, fp, key)

    def _finish(self, ref: Any, flight: _Flight) -> Iterator[FileResult]:
        elapsed = time.monotonic() - flight.submitted
        try:
            answer: Any = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            reason = f"the Ray worker scanning this file failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            answer = {"status": "crashed", "message": reason}
        if flight.kind == "fingerprint":
            assert flight.entry is not None
            yield from self._fingerprinted(flight.entry, answer)
            return
        if isinstance(answer, dict) and len(flight.job) > 1:  # the whole batch failed: each file alone now
            for item in flight.job:
                self.to_scan.appendleft([item])
            return
        answers = answer if isinstance(answer, list) else [answer]
        if len(answers) != len(flight.job):
            answers = [{"status": "crashed", "message": "the Ray worker answered for the wrong files"}] * len(
                flight.job
            )
        for (entry, fp, key), one in zip(flight.job, answers, strict=True):
            yield from self._scanned(entry, fp, key, one, elapsed / len(flight.job))

    def _fingerprinted(self, entry: Entry, answer: dict[str, Any]) -> Iterator[FileResult]:
        if answer["status"] == "ok":
            data = answer["fingerprint"]
            fp = Fingerprint(int(data["size"]), str(data["stamp"]), str(data["sha256"]))
            changed = self._listed(entry, fp)
            if changed is not None:
                yield self._done(changed)
        elif answer["status"] == "crashed":
            yield self._done(FileResult(entry, "crashed", _crash(entry, entry.size, answer["message"])))
        else:
            artifact = self._fetch_failed(entry, answer["message"], answer.get("hint", ""))
            yield self._done(FileResult(entry, "failed", [artifact]))

    def _scanned(
        self, entry: Entry, fp: Fingerprint, key: CacheKey, answer: dict[str, Any], elapsed: float
    ) -> Iterator[FileResult]:
        from modelshield.fleet.codec import loads, relocate

        status = answer["status"]
        if status == "ok":
            try:
                artifacts = relocate(loads(answer["result"]), entry.url, fp.sha256)
            except (ValueError, KeyError, TypeError) as exc:
                status, answer = "crashed", {"message": f"the Ray worker sent a malformed result ({exc})"}
        if status == "ok":
            self._to_write.append((key, artifacts))
            if len(self._to_write) >= WRITE_BATCH:
                self._flush_writes()
            yield self._done(FileResult(entry, "scanned", artifacts, fp.sha256, elapsed))
            for other, other_fp in self.waiting.pop(key, ()):
                moved = relocate(artifacts, other.url, other_fp.sha256)
                yield self._done(FileResult(other, "duplicate", moved, other_fp.sha256))
            self.scanning.discard(key)
            return
        if status == "changed":
            artifacts = [coverage_artifact(entry.url, FILE_CHANGED.id, answer["message"], size=fp.size)]
        elif status == "failed":
            artifacts = [self._fetch_failed(entry, answer["message"], answer.get("hint", ""))]
        else:
            artifacts = _crash(entry, fp.size, answer["message"])
        yield self._done(FileResult(entry, status, artifacts, fp.sha256, elapsed))
        queued = self.waiting.get(key)
        if queued:  # the copies are scanned on their own: this one's outcome says nothing about them
            other, other_fp = queued.popleft()
            if not queued:
                del self.waiting[key]
            self.to_scan.appendleft([(other, other_fp, key)])
        else:
            self.scanning.discard(key)

    def _cancel_overdue(self) -> Iterator[FileResult]:
        now = time.monotonic()
        for ref, flight in list(self.in_flight.items()):
            files = max(1, len(flight.job))
            limit = self.budget * HARD_TIMEOUT_FACTOR * files + HARD_TIMEOUT_SLACK_S
            if now - flight.submitted < limit:
                continue
            del self.in_flight[ref]
            self.ray.cancel(ref, force=True)
            message = f"the Ray task for this file ran past {limit:g} s and was cancelled"
            if flight.kind == "fingerprint":
                assert flight.entry is not None
                yield self._done(FileResult(flight.entry, "crashed", _crash(flight.entry, flight.entry.size, message)))
            elif len(flight.job) > 1:
                for item in flight.job:
                    self.to_scan.appendleft([item])
            else:
                entry, fp, key = flight.job[0]
                yield from self._scanned(
                    entry, fp, key, {"status": "crashed", "message": message}, now - flight.submitted
                )

    def _flush_writes(self) -> None:
        if self.store is not None and self._to_write:
            self.store.put_many(self._to_write)
        self._to_write = []


def report_of(
    results: Sequence[FileResult], targets: Sequence[str], options: ScanOptions, started: str, seconds: float
) -> ScanReport:
    """The ScanReport of a sweep, files in listing order, as a local scan assembles it."""
    from modelshield._version import __version__
    from modelshield.rules import RULES_VERSION

    ordered = sorted(results, key=lambda r: r.entry.index)
    artifacts = tuple(a for r in ordered for a in r.artifacts)
    return ScanReport(
        tool_version=__version__,
        rules_version=RULES_VERSION,
        targets=tuple(targets),
        artifacts=artifacts,
        fail_on=options.fail_on,
        started_at=started,
        duration_s=seconds,
        files_scanned=len(ordered),
        files_skipped=0,
        bytes_scanned=sum(max(r.artifacts[0].size if r.artifacts else 0, 0) for r in ordered),
    )


def _result_row(run_id: str, result: FileResult, fail_on: Any) -> dict[str, Any]:
    import json

    line = result.line(fail_on)
    return {
        "run_id": run_id,
        "idx": result.entry.index,
        "target": result.entry.target,
        "path": result.entry.url,
        "sha256": result.sha256,
        "size": int(line["size"]),
        "verdict": line["verdict"],
        "cached": int(result.status in ("cached", "duplicate")),
        "findings": json.dumps(line["findings"], separators=(",", ":")),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
    }


def new_run_id() -> str:
    """A unique id for one sweep's rows in ``fleet_results``."""
    import uuid

    return uuid.uuid4().hex


def run_fleet(
    targets: Sequence[str],
    options: ScanOptions,
    config: FleetConfig,
    stages: Stages | None = None,
    *,
    strict: bool = False,
    on_result: Callable[[FileResult], None] | None = None,
    entries: Iterable[Entry] | None = None,
) -> tuple[Outcome, FleetStats]:
    """A whole sweep: list ``targets``, scan on Ray, gate the report like ``run_pipeline``.

    ``on_result`` sees each file's result as it arrives (the JSON Lines stream). ``strict``: a
    missing local target is an error (``scan --engine ray``) rather than a failed entry.
    """
    from modelshield.fleet.cache import engine_version, open_store
    from modelshield.fleet.listing import list_entries
    from modelshield.policy.gate import Gate
    from modelshield.rules import RULES_VERSION
    from modelshield.scan import Outcome, Stages

    stages = stages if stages is not None else Stages()
    unsupported = [
        name
        for name, on in (
            ("--attest", stages.attest),
            ("--dynamic", stages.dynamic),
            ("--reference", stages.reference is not None),
            ("--deep", stages.deep),
            ("--online", bool(getattr(options, "online", False))),
            ("--only-models", bool(getattr(options, "only_models", False))),
        )
        if on
    ]
    if unsupported:
        raise UsageError(
            f"{', '.join(unsupported)} cannot run with --engine ray", hint="scan with --engine local for these stages"
        )
    from pathlib import Path

    gate = Gate.prepare(
        Path(stages.policy_file) if stages.policy_file else None,
        stages.profile,
        stages.use_env,
        trust=Path(stages.trust) if stages.trust else None,
    )
    if not targets:
        raise UsageError("nothing to scan", hint="give at least one target or a non-empty --from list")
    started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    t0 = time.perf_counter()
    results: list[FileResult] = []
    run_id = config.run_id or new_run_id()
    rows: list[dict[str, Any]] = []
    catalog = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(RayConnection(config))  # an unreachable cluster fails before a long listing
        if config.database_url:  # the catalog's database: migrated (or made) before the long part
            from modelshield.fleet.catalog import open_sink

            catalog = open_sink(config.database_url, profile=stages.profile, fail_on=options.fail_on, run_id=run_id)
            stack.callback(catalog.close)
        listed = list(entries) if entries is not None else list(list_entries(targets, strict=strict))
        store = None
        if config.cache or config.database_url:
            engine = engine_version(options.limits, _user_rule_texts())
            store = open_store(config.database_url, RULES_VERSION, engine, cache_path=config.cache_path)
            stack.callback(store.close)
        if catalog is not None:
            catalog.expect(listed)
        sweep = FleetScan(options, config, store if config.cache else None)
        for result in sweep.run(listed):
            results.append(result)
            if on_result is not None:
                on_result(result)
            if catalog is not None:
                catalog.add(result)
            if store is not None and config.database_url:
                rows.append(_result_row(run_id, result, options.fail_on))
                if len(rows) >= WRITE_BATCH:
                    store.record_results(rows)
                    rows = []
        if store is not None and config.database_url and rows:
            store.record_results(rows)
        if catalog is not None:
            catalog.check_complete()
            sweep.stats.catalog = catalog.summary()
    if len(results) != len(listed) or len({r.entry.index for r in results}) != len(listed):
        raise AssertionError(f"{len(listed)} file(s) listed but {len(results)} result(s)")
    report = report_of(results, targets, options, started, time.perf_counter() - t0)
    report = gate.apply(report)
    sweep.stats.seconds = time.perf_counter() - t0
    return Outcome(report, gate.blocking(report), gate.decision, None), sweep.stats


def _user_rule_texts() -> list[str]:
    """The user YARA rules in use (--rules), as text: part of the engine version."""
    folders = [f for f in os.environ.get(USER_RULES_ENV, "").split(os.pathsep) if f]
    out: list[str] = []
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            if name.endswith((".yar", ".yara")):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as stream:
                    out.append(name + "\0" + stream.read())
    return out
