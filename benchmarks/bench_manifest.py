"""Manifest hashing throughput vs Python's hashlib SHA-256, on the same files, in the same run.

Usage: python benchmarks/bench_manifest.py [--files 8] [--mib 256] [--dir /some/tmp]

Baseline: one core, ``hashlib.sha256`` over each file read in 1 MiB chunks, files one after
another. modelshield: ``build_manifest`` (one thread per core, across files). Prints MB/s for
each, the per-core ratio (bar: >= 0.9x) and the total speed-up from using every core. Every file
is read once before timing so both sides hash from the page cache (hashing, not the disk, is
measured); run it on a tmpfs or with enough RAM for ``files x mib``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from modelshield.attest.manifest import build_manifest, default_workers


def make_files(folder: Path, count: int, mib: int) -> list[Path]:
    """Write ``count`` files of ``mib`` MiB of pseudo-random bytes."""
    block = os.urandom(1 << 20)
    paths = []
    for index in range(count):
        path = folder / f"shard-{index:02d}.bin"
        with open(path, "wb") as stream:
            for chunk in range(mib):
                stream.write(block[chunk % 251 :] + block[: chunk % 251])
        paths.append(path)
    return paths


def baseline(paths: list[Path]) -> dict[str, str]:
    """Plain hashlib, one core, 1 MiB reads."""
    out = {}
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        out[path.name] = digest.hexdigest()
    return out


def best_of(runs: int, func, *args):  # type: ignore[no-untyped-def]
    """Best wall time and best CPU time (all threads) of ``runs`` calls, and the last result."""
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        result = func(*args)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return (best, best_cpu), result


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    cores = default_workers()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        paths = make_files(folder, args.files, args.mib)
        baseline(paths)  # warm the page cache
        total_mb = args.files * args.mib * (1 << 20) / 1e6
        (t_base, c_base), ref = best_of(args.runs, baseline, paths)
        (t_one, c_one), one = best_of(args.runs, lambda: build_manifest(folder, workers=1))
        (t_all, c_all), manifest = best_of(args.runs, lambda: build_manifest(folder))
        assert {f.name: f.sha256 for f in manifest.files} == ref == {f.name: f.sha256 for f in one.files}
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{args.files} files x {args.mib} MiB = {total_mb:.0f} MB, {cores} core(s), best of {args.runs}")
        print(f"load average before: {load:.2f} (other work on the machine skews wall-clock figures)")
        print(f"{'':34}{'wall MB/s':>10}{'CPU MB/s':>10}{'cores used':>12}")
        for label, wall, cpu in (
            ("hashlib sha256, 1 core", t_base, c_base),
            ("modelshield manifest, 1 worker", t_one, c_one),
            (f"modelshield manifest, {cores} workers", t_all, c_all),
        ):
            print(f"{label:34}{total_mb / wall:10.1f}{total_mb / cpu:10.1f}{cpu / wall:12.2f}")
        print(f"per-core throughput ratio, CPU time (bar >= 0.9x): {c_base / c_all:.2f}x")
        print(f"per-core throughput ratio, wall time, 1 worker   : {t_base / t_one:.2f}x")
        print(f"wall-clock speed-up of {cores} workers vs hashlib on 1 core: {t_base / t_all:.2f}x (ideal {cores}x)")


if __name__ == "__main__":
    main()
