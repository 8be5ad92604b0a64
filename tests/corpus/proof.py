"""Prove malicious samples are real: load each with its real loader inside throwaway subprocesses.

Samples are batched (one interpreter per batch, two batches in parallel) to keep the cost low; samples that replace
or pollute the process (``Spec.isolate``) get their own interpreter. The verdict is the canary, not the outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.corpus.model import LOADERS, Sample

RUNNER = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
jobs = json.load(open(sys.argv[1]))
out = open(sys.argv[2], "a", buffering=1)
for job in jobs:
    env = {"p": job["path"], "canary": job["canary"], "MEMBER": job["member"], "__name__": "__loader__"}
    try:
        exec(job["setup"], env)
        exec(job["code"], env)
        outcome = "returned"
    except BaseException as exc:  # the sample may raise anything, SystemExit included
        outcome = "raised " + type(exc).__name__ + ": " + str(exc)[:200]
    out.write(json.dumps({"name": job["name"], "outcome": outcome}) + "\n")
"""

BATCH_TIMEOUT_S = 240
ASYNC_GRACE_S = 3.0


@dataclass(frozen=True)
class Proof:
    """What happened when a sample was really loaded."""

    fired: bool
    outcome: str


def _job(sample: Sample) -> dict[str, str]:
    spec = sample.spec
    return {
        "name": spec.name,
        "path": str(sample.path),
        "canary": str(sample.canary),
        "member": spec.member,
        "setup": spec.setup,
        "code": LOADERS[spec.loader],
    }


def _start(batch: list[Sample], workdir: Path, index: int) -> tuple[subprocess.Popen[bytes], Path]:
    jobs = workdir / f"jobs-{index}.json"
    jobs.write_text(json.dumps([_job(s) for s in batch]))
    results = workdir / f"results-{index}.jsonl"
    runner = workdir / "runner.py"  # written once by run_proofs: rewriting it here truncated it under a starting runner
    cwd = workdir / f"cwd-{index}"
    cwd.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.Popen(
        [sys.executable, str(runner), str(jobs), str(results)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    return proc, results


def _wait(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=BATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def run_proofs(samples: list[Sample], parallel: int = 2) -> dict[str, Proof]:
    """Really load every firing sample in subprocesses; return name -> Proof, and clear the canaries afterwards."""
    firing = [s for s in samples if s.spec.fires]
    shared = [s for s in firing if not s.spec.isolate]
    batches = [shared[i::parallel] for i in range(parallel)] + [[s] for s in firing if s.spec.isolate]
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ms-proof-") as tmp:
        workdir = Path(tmp)
        (workdir / "runner.py").write_text(RUNNER)
        pending = list(enumerate(batches))
        running: list[tuple[subprocess.Popen[bytes], Path]] = []
        while pending or running:
            while pending and len(running) < parallel:
                index, batch = pending.pop(0)
                running.append(_start(batch, workdir, index))
            proc, results = running.pop(0)
            _wait(proc)
            if results.exists():
                for line in results.read_text().splitlines():
                    row = json.loads(line)
                    outcomes[row["name"]] = row["outcome"]
    deadline = time.monotonic() + ASYNC_GRACE_S
    while time.monotonic() < deadline and not all(s.canary_fired() for s in firing):
        time.sleep(0.2)  # Popen/posix_spawn/threads/multiprocessing create the canary asynchronously
    proofs = {}
    for s in firing:
        proofs[s.name] = Proof(s.canary_fired(), outcomes.get(s.name, "no result (process replaced or killed)"))
        s.clear_canary()
    return proofs
