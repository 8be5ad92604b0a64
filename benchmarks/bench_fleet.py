"""Fleet scans on Ray against the local engine, and the warm verdict cache, in one run.

Inputs (generated in a temp folder):

1. 2,000 small checkpoints in 20 folders of 100: plain-data pickles (protocol 2 and 4, different
   contents) and tiny safetensors files, a few KiB each;
2. the 2 GiB sharded safetensors repo of the perf corpus (``bench_headers.write_sharded``: four
   sparse 512 MiB shards and the index; ``--quick`` scales it to 256 MiB).

Engines, all in this process with imports done and timed from the first listed file to the report:

* local ``--jobs 1`` / ``--jobs 2`` with ``--hash`` (``modelshield.scan``; a content-addressed
  sweep hashes every file, so the local baseline does too);
* ``--engine ray`` on a local Ray of 1 and 2 CPUs, cold (``--no-cache``) -- Ray's start-up is
  timed on its own and not counted;
* the same sweep with a warm cache (every verdict stored): the goal is >= 20,000 files/s for the
  small checkpoints.

Printed: files/s and MiB/s, ratios against local ``--jobs 1``, Ray's overhead per file (cold Ray
on 1 CPU minus local ``--jobs 1``, per file), and the per-file / per-byte costs docs/fleet-cost.md
builds its cost model from (``--json FILE`` writes them). Run: .venv/bin/python benchmarks/bench_fleet.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MiB = 1 << 20
GiB = 1 << 30
WARM_GOAL = 20_000.0


def write_small_checkpoints(root: Path, count: int, per_folder: int = 100) -> None:
    """``count`` distinct small checkpoints: pickles and safetensors, ``per_folder`` per folder."""
    for i in range(count):
        folder = root / f"repo-{i // per_folder:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 4 == 3:
            header = json.dumps({f"w{i}": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}).encode()
            (folder / f"ckpt-{i:05d}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
        else:
            state = {"step": i, "weights": [float(j) for j in range(64 + i % 32)], "name": f"layer{i}"}
            (folder / f"ckpt-{i:05d}.pkl").write_bytes(pickle.dumps(state, protocol=2 + 2 * (i % 2)))


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def local(root: Path, jobs: int, repeat: int) -> float:
    """Best wall time of a local scan with hashing, ``jobs`` workers."""
    import modelshield

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        modelshield.scan([str(root)], compute_hashes=True, jobs=jobs)
        best = min(best, time.perf_counter() - t0)
    return best


def ray_start(cpus: int) -> float:
    """(Re)start the local Ray with ``cpus`` CPUs; its start-up time."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.get([ray.remote(lambda: 0).remote() for _ in range(cpus)])  # workers up
    return time.perf_counter() - t0


def fleet(root: Path, cache: Path | None, repeat: int, batch_files: int = 32) -> tuple[float, dict[str, int]]:
    """Best wall time of a fleet sweep on the connected Ray (``cache`` None: no cache)."""
    from modelshield.fleet.engine import FleetConfig, run_fleet
    from modelshield.scan import ScanOptions

    best, counts = float("inf"), {}
    for _ in range(repeat):
        config = FleetConfig(cache=cache is not None, cache_path=str(cache) if cache else None, batch_files=batch_files)
        t0 = time.perf_counter()
        _outcome, stats = run_fleet([str(root)], ScanOptions(), config)
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, counts = elapsed, dict(stats.counts)
    return best, counts


def measure(name: str, root: Path, repeat: int, cpus_list: list[int], work: Path) -> dict[str, Any]:
    files, size = _files(root), _bytes(root)
    print(f"\n== {name}: {files} files, {size / MiB:,.1f} MiB")
    out: dict[str, Any] = {"files": files, "bytes": size}
    for jobs in (1, 2):
        seconds = local(root, jobs, repeat)
        out[f"local_jobs{jobs}_s"] = seconds
        rate, mib = files / seconds, size / MiB / seconds
        print(f"local --jobs {jobs} --hash : {seconds:8.3f} s  {rate:9,.0f} files/s  {mib:9,.0f} MiB/s")
    base = out["local_jobs1_s"]
    for cpus in cpus_list:
        start = ray_start(cpus)
        cold, counts = fleet(root, None, repeat)
        single, _ = fleet(root, None, repeat, batch_files=1)
        out[f"ray{cpus}_cold_task_per_file_s"] = single
        cache = work / f"cache-{name[:5]}-{cpus}.sqlite"
        fleet(root, cache, 1)  # fill
        warm, warm_counts = fleet(root, cache, repeat)
        out[f"ray{cpus}_start_s"] = start
        out[f"ray{cpus}_cold_s"] = cold
        out[f"ray{cpus}_warm_s"] = warm
        print(
            f"ray {cpus} CPU cold       : {cold:8.3f} s  {files / cold:9,.0f} files/s  {size / MiB / cold:9,.0f} MiB/s"
            f"  ({base / cold:.2f}x local --jobs 1; Ray start-up {start:.1f} s not counted) {counts}"
        )
        print(
            f"ray {cpus} CPU cold, 1/task: {single:8.3f} s  {files / single:9,.0f} files/s  "
            f"{size / MiB / single:9,.0f} MiB/s  ({base / single:.2f}x local --jobs 1; --batch-files 1)"
        )
        print(
            f"ray {cpus} CPU warm cache : {warm:8.3f} s  {files / warm:9,.0f} files/s  {size / MiB / warm:9,.0f} MiB/s"
            f"  ({base / warm:.2f}x local --jobs 1) {warm_counts}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB sharded repo, one repeat")
    parser.add_argument("--files", type=int, default=2000, help="small checkpoints (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--json", type=Path, help="write the measured figures here")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    from bench_headers import write_sharded

    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    os.environ["MODELSHIELD_CACHE_DIR"] = str(work / "default-cache")
    try:
        small = work / "small"
        write_small_checkpoints(small, args.files)
        sharded = work / "sharded"
        write_sharded(sharded, 2 * GiB // (8 if args.quick else 1))
        import modelshield

        modelshield.scan([str(next(small.rglob("*.pkl")))], compute_hashes=True)  # imports done before timing
        results = {
            "small": measure("small checkpoints", small, repeat, [1, 2], work),
            "sharded": measure("sharded repo", sharded, repeat, [1, 2], work),
        }
        s, b = results["small"], results["sharded"]
        n = s["files"]
        per_file_local = s["local_jobs1_s"] / n
        per_file_ray1 = s["ray1_cold_s"] / n
        overhead = per_file_ray1 - per_file_local
        overhead_single = s["ray1_cold_task_per_file_s"] / n - per_file_local
        warm_rate = n / min(s["ray1_warm_s"], s["ray2_warm_s"])
        per_byte_ray1 = b["ray1_cold_s"] / b["bytes"]
        per_byte_warm = b["ray1_warm_s"] / b["bytes"]
        summary = {
            "per_file_cpu_s_local": per_file_local,
            "per_file_cpu_s_ray": per_file_ray1,
            "ray_overhead_per_file_s": overhead,
            "ray_overhead_per_file_task_per_file_s": overhead_single,
            "per_byte_cpu_s_ray_cold": per_byte_ray1,
            "per_byte_cpu_s_ray_warm": per_byte_warm,
            "warm_cache_files_per_s": warm_rate,
            "ray2_vs_ray1_small": s["ray1_cold_s"] / s["ray2_cold_s"],
            "ray2_vs_jobs2_small": s["local_jobs2_s"] / s["ray2_cold_s"],
            "ray2_vs_jobs2_sharded": b["local_jobs2_s"] / b["ray2_cold_s"],
        }
        print("\n== summary")
        ms = 1e3
        print(
            f"Ray overhead per file      : {overhead * ms:7.3f} ms "
            f"(cold Ray 1 CPU {per_file_ray1 * ms:.3f} ms - local {per_file_local * ms:.3f} ms)"
        )
        print(f"  with a task per file     : {overhead_single * ms:7.3f} ms (--batch-files 1)")
        print(f"Ray 2 CPU vs 1 CPU (small) : {summary['ray2_vs_ray1_small']:.2f}x")
        print(
            f"Ray 2 CPU vs --jobs 2      : small {summary['ray2_vs_jobs2_small']:.2f}x, "
            f"sharded {summary['ray2_vs_jobs2_sharded']:.2f}x (>1: Ray faster)"
        )
        print(
            f"cold per byte (hash+scan)  : {per_byte_ray1 * GiB:.2f} CPU-s per GiB; "
            f"warm (hash only) {per_byte_warm * GiB:.2f} s per GiB"
        )
        verdict = "met" if warm_rate >= WARM_GOAL else "MISSED"
        print(f"warm-cache sweep           : {warm_rate:,.0f} files/s (goal >= {WARM_GOAL:,.0f}: {verdict})")
        results["summary"] = summary
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
