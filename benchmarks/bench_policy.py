"""Policy evaluation and advisory lookup timings.

Usage: python benchmarks/bench_policy.py

Measures (1) policy evaluation of a realistic report (1,000 artifacts, 3,000 findings) under each
built-in profile, against a 10 ms budget, and (2) advisory lookups through the per-package index
against a baseline that scans every record in the database for each lookup (what "indexed" saves),
both measured in this run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from modelshield.advisories.db import load_db, normalise
from modelshield.advisories.matcher import Matcher, parse_version
from modelshield.policy import build_subject, builtin_policy, evaluate
from modelshield.types import Artifact, Category, Finding, Location, ScanReport, Severity


def _report(artifacts: int = 1000, per_artifact: int = 3) -> ScanReport:
    items = []
    for i in range(artifacts):
        path = f"/models/m/shard-{i:05}.safetensors"
        findings = tuple(
            Finding(f"RULE-{j}", Severity(j % 3), Category.UNSAFE_CONFIG, "note", Location(path), references=("CVE-1",))
            for j in range(per_artifact)
        )
        items.append(Artifact(path, None, "safetensors", 1 << 20, None, findings))
    return ScanReport("bench", "bench", ("/models/m",), tuple(items), Severity.MEDIUM, "now", 0.0, artifacts, 0, 0)


def _time(func: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        out.append(time.perf_counter() - t0)
    return out


def _linear_lookup(records: list[tuple[str, object]], package: str, version: str) -> int:
    """Baseline: parse and compare every record of every package for one lookup."""
    name, parsed, hits = normalise(package), parse_version(version), 0
    for pkg, adv in records:
        if pkg != name:
            continue
        for interval in adv.intervals:  # type: ignore[attr-defined]
            lo = parse_version(interval.introduced) if interval.introduced != "0" else None
            hi = (
                parse_version(interval.fixed or interval.last_affected or "")
                if (interval.fixed or interval.last_affected)
                else None
            )
            if parsed and (lo is None or parsed >= lo) and (hi is None or parsed < hi):
                hits += 1
                break
    return hits


def main() -> None:
    """Run both measurements and print the figures."""
    policy = builtin_policy()
    subject = build_subject(_report())
    print(f"policy evaluation: {len(subject.report.findings)} findings, {len(subject.report.artifacts)} artifacts")
    for profile in policy.spec.profiles:
        evaluate(policy, subject, profile)  # warm-up
        times = _time(lambda p=profile: evaluate(policy, subject, p), 50)
        median = statistics.median(times) * 1000
        print(
            f"  {profile:13} median {median:6.2f} ms  max {max(times) * 1000:6.2f} ms  budget 10 ms: "
            f"{'OK' if median < 10 else 'OVER'}"
        )

    db = load_db()
    records = [(pkg, adv) for pkg, advs in db.packages.items() for adv in advs]
    queries = [
        ("torch", "2.5.1"),
        ("tensorflow", "2.4.0"),
        ("keras", "3.3.3"),
        ("llama-cpp-python", "0.2.71"),
        ("transformers", "4.30.0"),
        ("onnx", "1.15.0"),
        ("mlflow", "2.9.0"),
        ("numpy", "1.21.0"),
    ]
    cold = Matcher(db)
    t0 = time.perf_counter()
    for package, version in queries:
        cold.affected(package, version)
    first = (time.perf_counter() - t0) / len(queries)
    fresh_times = []
    for _ in range(20):
        matcher = Matcher(db)
        for package, _version in queries:
            matcher.affected(package, "0.0.1")  # compile the index for these packages
        t0 = time.perf_counter()
        for package, version in queries:
            matcher.affected(package, version)
        fresh_times.append((time.perf_counter() - t0) / len(queries))
    linear = _time(lambda: [_linear_lookup(records, p, v) for p, v in queries], 20)
    indexed_us = statistics.median(fresh_times) * 1e6
    linear_us = statistics.median(linear) / len(queries) * 1e6
    print(f"advisory lookup over {len(db)} records ({len(db.packages)} packages), {len(queries)} queries:")
    print(f"  indexed (compiled, uncached version) median {indexed_us:8.1f} us/lookup")
    print(f"  first lookup incl. compiling the package  {first * 1e6:8.1f} us/lookup")
    print(f"  linear scan of all records (baseline)     {linear_us:8.1f} us/lookup")
    print(f"  ratio linear/indexed: {linear_us / indexed_us:.1f}x")


if __name__ == "__main__":
    main()
