"""The catalog service under load: registrations, scans, page latency, and workers killed mid-scan.

Usage: python benchmarks/bench_service.py [--database sqlite|postgresql|both] [--models 200] [--clients 20]
                                          [--workers 2] [--kill-every 3] [--readers 2] [--deadline 600]

For each database it starts ``modelshield serve`` on a free loopback port and runs two rounds:

- ``steady``: ``serve --workers N``. Each of the concurrent clients (a CI job each) registers its share
  of the small models (one upload each, every 10th a malicious pickle, every file different so none is
  deduplicated), then polls their JSON (``--poll`` seconds apart) until every one is final. Meanwhile
  ``--readers`` people browse the catalog: the list page, then a registered model's page, ``--think``
  seconds apart. Their latencies are the catalog list / model page figures, measured under that load.
- ``kill``: ``serve --workers 0`` plus N separate ``modelshield worker`` processes (lease 5 s); every
  ``--kill-every`` seconds one worker is SIGKILLed and a new one started, while the same registrations run.

Both rounds must end with every registration in a final state (0 lost, no job left queued or running)
with the expected verdict (benign passed, malicious failed), and no malicious payload run (canaries).
Baselines measured in the same run: the same files scanned by the CLI (``modelshield scan DIR --jobs N``)
for the cost of one scan, and the pages read with no load (after the round) for latency. PostgreSQL
comes from a throwaway cluster (tests/service/pgcluster.py) or MODELSHIELD_TEST_DATABASE_URL. Every loop
is bounded (count and ``--deadline``); traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service import models as model_files  # noqa: E402
from tests.service.live import LiveServer, modelshield_argv  # noqa: E402
from tests.service.pgcluster import Cluster, ClusterError, find_bin_dir  # noqa: E402

FINAL = {"passed", "warn", "failed", "scan_failed", "revoked"}
P95_GOAL_MS = 200.0
ENDPOINTS = ("catalog list", "model page", "model JSON", "upload")


@dataclass(frozen=True, slots=True)
class Sample:
    """One model to register: its name, its file and the status it must end in."""

    name: str
    path: Path
    expected: str


@dataclass
class Round:
    """What one round measured."""

    database: str
    kind: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {e: [] for e in ENDPOINTS})
    idle: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    errors: int = 0
    kills: int = 0
    retried_jobs: int = 0
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    registered: list[int] = field(default_factory=list)
    payloads_run: int = 0
    first_upload: float = 0.0
    last_final: float = 0.0
    queue_span_s: float = 0.0

    def lost(self) -> int:
        """Registrations not in a final state at the end."""
        return sum(1 for s in self.statuses.values() if s not in FINAL)

    def wrong(self) -> int:
        """Registrations final but not with the expected verdict."""
        return sum(1 for name, s in self.statuses.items() if s in FINAL and s != self.expected.get(name))


def make_samples(folder: Path, count: int, prefix: str) -> list[Sample]:
    """``count`` different small models: safetensors and pickles, every 10th a malicious pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    canary = folder / "canary-never-touched"
    out = []
    for i in range(count):
        sub = folder / f"{prefix}{i:04}"
        sub.mkdir()
        if i % 10 == 9:  # a canary per sample: different bytes (identical ones are stored and scanned once)
            out.append(Sample(f"{prefix}{i:04}", model_files.malicious_pickle(sub, sub / canary.name), "failed"))
        elif i % 2:
            out.append(Sample(f"{prefix}{i:04}", model_files.benign_pickle(sub, i), "passed"))
        else:
            out.append(Sample(f"{prefix}{i:04}", model_files.benign_safetensors(sub, i), "passed"))
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def ui_login(client: httpx.AsyncClient, token: str) -> None:
    """Log a client into the UI with a token (the form's CSRF field included), keeping the session cookie."""
    form = await client.get("/ui/login")
    match = re.search(r'name="csrf_token"\s+value="([^"]*)"', form.text) or re.search(
        r'value="([^"]*)"\s+name="csrf_token"', form.text
    )
    data = {"token": token, **({"csrf_token": match.group(1)} if match else {})}
    answer = await client.post("/ui/login", data=data, follow_redirects=True)
    if "modelshield_session" not in client.cookies:
        raise RuntimeError(f"UI login failed: {answer.status_code} {answer.text[:300]}")


async def timed(round_: Round, endpoint: str, call: object) -> httpx.Response | None:
    """Await one request, record its latency; None (and an error counted) on a transport error or 5xx."""
    started = time.perf_counter()
    try:
        answer: httpx.Response = await call  # type: ignore[misc]
    except httpx.HTTPError:
        round_.errors += 1
        return None
    round_.latencies[endpoint].append(time.perf_counter() - started)
    if answer.status_code >= 500:
        round_.errors += 1
        return None
    return answer


async def one_client(
    server: LiveServer, token: str, share: list[Sample], round_: Round, poll: float, deadline: float
) -> None:
    """A registering client (a CI job): upload the share's models one after another, then poll their JSON
    (one unfinished model per poll, round robin, ``poll`` seconds apart) until every one is final."""
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        waiting: dict[str, int] = {}
        for sample in share:
            files = [("file", (sample.path.name, sample.path.read_bytes(), "application/octet-stream"))]
            answer = await timed(round_, "upload", api.post("/api/v1/models", data={"name": sample.name}, files=files))
            if answer is None or answer.status_code != 201:
                code = answer.json().get("error", {}).get("code") if answer is not None else "transport"
                round_.statuses[sample.name] = f"upload {answer.status_code if answer else 'error'} {code}"
                continue
            waiting[sample.name] = int(answer.json()["id"])
            round_.statuses[sample.name] = "pending"
            round_.registered.append(waiting[sample.name])
        turn = 0
        while waiting and time.monotonic() < deadline:
            await asyncio.sleep(poll)
            name = list(waiting)[turn % len(waiting)]
            turn += 1
            detail = await timed(round_, "model JSON", api.get(f"/api/v1/models/{waiting[name]}"))
            if detail is not None and detail.status_code == 200:
                round_.statuses[name] = detail.json()["status"]
                if round_.statuses[name] in FINAL:
                    del waiting[name]
                    round_.last_final = time.perf_counter()


async def one_reader(server: LiveServer, token: str, round_: Round, think: float, done: asyncio.Event) -> None:
    """A person browsing the catalog meanwhile: the list page, then a registered model's page, ``think`` apart."""
    pick = random.Random(7)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as ui:
        await ui_login(ui, token)
        while not done.is_set():
            await timed(round_, "catalog list", ui.get("/ui/models"))
            if round_.registered:
                await timed(round_, "model page", ui.get(f"/ui/models/{pick.choice(round_.registered)}"))
            await asyncio.sleep(think)


async def idle_latency(server: LiveServer, token: str, round_: Round, some_id: int, repeat: int = 40) -> None:
    """Baseline: the same pages read one at a time with nothing else running."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as ui:
        await ui_login(ui, token)
        for endpoint, path in (("catalog list", "/ui/models"), ("model page", f"/ui/models/{some_id}")):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                (await ui.get(path)).raise_for_status()
                times.append(time.perf_counter() - started)
            round_.idle[endpoint] = times


class WorkerKiller:
    """Every ``every`` seconds SIGKILL one of the server's worker processes and start a replacement."""

    def __init__(self, server: LiveServer, count: int, every: float, env: dict[str, str]) -> None:
        self.server, self.every, self.env = server, every, env
        self.workers = [server.start_worker(env) for _ in range(count)]
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._random = random.Random(14)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            victim = self._random.randrange(len(self.workers))
            process = self.workers[victim]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            self.kills += 1
            self.workers[victim] = self.server.start_worker(self.env)


def _when(value: object) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def job_table(database_url: str) -> tuple[dict[str, int], int, float]:
    """From the service's database: jobs by state, the number retried (attempts > 1), and the seconds from
    the first scan job queued to the last one finished."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            by_state = {
                str(s): int(n) for s, n in conn.execute(text("SELECT state, count(*) FROM jobs GROUP BY state"))
            }
            retried = int(conn.execute(text("SELECT count(*) FROM jobs WHERE attempts > 1")).scalar_one())
            times = conn.execute(text("SELECT created_at, finished_at FROM jobs WHERE kind = 'scan'")).all()
    finally:
        engine.dispose()
    finished = [_when(f) for _, f in times if f is not None]
    span = (max(finished) - min(_when(c) for c, _ in times)).total_seconds() if finished else float("nan")
    return by_state, retried, span


def run_round(database: str, url: str, kind: str, samples: list[Sample], args: argparse.Namespace, work: Path) -> Round:
    """Start a server on ``url``, push the registrations through it, collect the figures, stop it."""
    round_ = Round(database, kind, expected={s.name: s.expected for s in samples})
    env = {"MODELSHIELD_LEASE_SECONDS": "5", "MODELSHIELD_SCHEDULER_TICK": "2"}
    server = LiveServer.start(work / f"{database}-{kind}", url, workers=0 if kind == "kill" else args.workers, env=env)
    try:
        publisher = server.token("publisher", "bench-publisher")
        shares = [samples[i :: args.clients] for i in range(args.clients)]
        deadline = time.monotonic() + args.deadline

        async def everyone() -> None:
            done = asyncio.Event()
            readers = [
                asyncio.create_task(one_reader(server, publisher, round_, args.think, done))
                for _ in range(args.readers)
            ]
            await asyncio.gather(*(one_client(server, publisher, s, round_, args.poll, deadline) for s in shares))
            done.set()
            await asyncio.gather(*readers)

        started = round_.first_upload = time.perf_counter()
        if kind == "kill":
            with WorkerKiller(server, args.workers, args.kill_every, env) as killer:
                asyncio.run(everyone())
            round_.kills = killer.kills
        else:
            asyncio.run(everyone())
        round_.wall_s = time.perf_counter() - started
        with server.client() as admin:
            listing = admin.get("/api/v1/models", params={"limit": 1}).json()
            some_id = listing["models"][0]["id"]
        asyncio.run(idle_latency(server, publisher, round_, some_id))
        round_.jobs_by_state, round_.retried_jobs, round_.queue_span_s = job_table(url)
        round_.payloads_run = sum(1 for s in samples if (s.path.parent / "canary-never-touched").exists())
    finally:
        server.stop()
    return round_


def cli_baseline(samples: list[Sample], jobs: int) -> float:
    """Scans per second of the CLI over the same files (``modelshield scan DIR --jobs N``), best of two."""
    folder = samples[0].path.parent.parent
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        subprocess.run(
            [*modelshield_argv(), "scan", str(folder), "--jobs", str(jobs), "-f", "json", "--exit-zero"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=600,
        )
        best = min(best, time.perf_counter() - started)
    return len(samples) / best


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:6.1f}"


def report(rounds: list[Round], baseline_scans_s: float, args: argparse.Namespace) -> bool:
    """Print the table and the bars; True when every bar is met."""
    print()
    print(
        f"{args.models} registrations from {args.clients} concurrent clients (poll every {args.poll} s), "
        f"{args.workers} workers, {args.readers} readers (a page every {args.think} s); CLI baseline "
        f"{baseline_scans_s:.0f} files/s = {args.workers / baseline_scans_s * 1000:.1f} ms per file per worker"
    )
    print()
    head = (
        "| database | round | scans/s seen by clients | scans/s of the queue | ms per scan per worker | "
        + " | ".join(f"{e} p50 / p95 ms" for e in ENDPOINTS)
        + " | requests | final / lost / wrong | kills / jobs retried |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    ok = True
    for r in rounds:
        seen = len(r.statuses) / (r.last_final - r.first_upload) if r.last_final > r.first_upload else 0.0
        queue = len(r.statuses) / r.queue_span_s if r.queue_span_s > 0 else 0.0
        cells = " | ".join(f"{ms(r.latencies[e], 50)} / {ms(r.latencies[e], 95)}" for e in ENDPOINTS)
        requests = sum(len(v) for v in r.latencies.values())
        per_scan_ms = args.workers / queue * 1000 if queue else 0.0
        final = len(r.statuses) - r.lost()
        print(
            f"| {r.database} | {r.kind} | {seen:.1f} | {queue:.1f} | {per_scan_ms:.0f} | {cells} | "
            f"{requests} in {r.wall_s:.0f} s | {final} / {r.lost()} / {r.wrong()} | {r.kills} / {r.retried_jobs} |"
        )
    print()
    for r in rounds:
        for endpoint in ("catalog list", "model page"):
            p95 = percentile(r.latencies[endpoint], 95) * 1000
            idle = percentile(r.idle.get(endpoint, []), 50) * 1000
            met = p95 < P95_GOAL_MS
            ok &= met
            print(
                f"{r.database:10} {r.kind:6} {endpoint:12} p95 {p95:6.1f} ms < {P95_GOAL_MS:.0f} ms: "
                f"{'met' if met else 'MISSED'} (idle p50 {idle:.1f} ms, under load {p95 / idle:.1f}x)"
            )
        active = r.jobs_by_state.get("queued", 0) + r.jobs_by_state.get("running", 0)
        complete = r.lost() == 0 and len(r.statuses) == len(r.expected) and r.wrong() == 0 and active == 0
        complete &= r.payloads_run == 0
        ok &= complete
        odd = {n: st for n, st in r.statuses.items() if st not in FINAL or st != r.expected.get(n)}
        if odd:
            print(f"{r.database:10} {r.kind:6} not final or not as expected: {dict(list(odd.items())[:10])}")
        print(
            f"{r.database:10} {r.kind:6} every job final with its verdict (0 lost, 0 wrong of {len(r.expected)}): "
            f"{'met' if complete else 'MISSED'}; HTTP errors {r.errors}; jobs by state {r.jobs_by_state}; "
            f"payloads run {r.payloads_run}"
        )
        if r.kind == "kill":
            hit = r.kills > 0 and r.retried_jobs > 0
            ok &= hit
            print(
                f"{r.database:10} {r.kind:6} workers SIGKILLed mid-scan and their jobs retried: "
                f"{'met' if hit else 'MISSED'} ({r.kills} kills, {r.retried_jobs} jobs retried)"
            )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the rounds on the chosen databases and print the figures; exit 1 when a bar is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between a registering client's polls")
    parser.add_argument("--readers", type=int, default=2, help="people browsing the catalog meanwhile")
    parser.add_argument("--think", type=float, default=0.25, help="seconds between a reader's two page views")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds a round may take at most")
    parser.add_argument("--rounds", default="steady,kill")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    cluster: Cluster | None = None
    try:
        databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
        rounds: list[Round] = []
        baseline = 0.0
        for database in databases:
            for kind in args.rounds.split(","):
                samples = make_samples(work / f"models-{database}-{kind}", args.models, f"m-{kind}-")
                if not baseline:
                    baseline = cli_baseline(samples, args.workers)
                if database == "sqlite":
                    url = f"sqlite:///{work / f'{database}-{kind}.db'}"
                else:
                    if cluster is None and not os.environ.get("MODELSHIELD_TEST_DATABASE_URL"):
                        if find_bin_dir() is None:
                            print("PostgreSQL: no binaries (apt-get install postgresql); skipped")
                            break
                        cluster = Cluster.start(Path(tempfile.mkdtemp(prefix="bench-service-pg-")))
                    url = _new_pg_database(cluster, f"bench_{kind}")
                print(f"[{database} {kind}] {args.models} registrations ...", flush=True)
                rounds.append(run_round(database, url, kind, samples, args, work))
                print(f"[{database} {kind}] done in {rounds[-1].wall_s:.1f} s", flush=True)
        ok = report(rounds, baseline, args)
    except ClusterError as exc:
        print(f"PostgreSQL cluster: {exc}", file=sys.stderr)
        return 2
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def _new_pg_database(cluster: Cluster | None, name: str) -> str:
    """A new database in the throwaway cluster, or in the server of MODELSHIELD_TEST_DATABASE_URL."""
    if cluster is not None:
        return cluster.create_database(name)
    import psycopg

    url = os.environ["MODELSHIELD_TEST_DATABASE_URL"]
    unique = f"{name}_{os.getpid()}"
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{unique}"')
    return url.rsplit("/", 1)[0] + "/" + unique


if __name__ == "__main__":
    sys.exit(main())
