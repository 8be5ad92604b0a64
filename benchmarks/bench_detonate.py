"""Cost of a detonation: a small pickle loaded in the sandbox, against a plain child process.

Prints the median wall time of ``detonate()`` (malicious and benign small pickles) per backend,
and the ratio to a baseline measured in the same run: a bare ``python -c pickle.load`` child on
the benign file (no isolation, no hook; the malicious one is never loaded outside the sandbox).
Target: under 1 s per small-pickle detonation.

    python benchmarks/bench_detonate.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class _Shell:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ("touch /nonexistent/modelshield-bench-canary",)


def _median(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from modelshield.sandbox.isolation import SandboxUnavailable, probe
    from modelshield.sandbox.runner import detonate

    with tempfile.TemporaryDirectory() as tmp:
        benign, evil = Path(tmp, "benign.pkl"), Path(tmp, "evil.pkl")
        benign.write_bytes(pickle.dumps({"weights": list(range(1000)), "name": "small"}))
        evil.write_bytes(pickle.dumps(_Shell(), protocol=2))
        code = f"import pickle; pickle.load(open({str(benign)!r}, 'rb'))"
        baseline = _median(lambda: subprocess.run([sys.executable, "-I", "-c", code], check=True), args.repeat)
        print(f"baseline  plain child, benign pickle.load: {baseline * 1000:7.1f} ms")
        for backend in ("bwrap", "unshare"):
            try:
                probe(backend)
            except SandboxUnavailable as exc:
                print(f"{backend:8}  unavailable: {exc.message}")
                continue
            for label, path in (("benign", benign), ("malicious", evil)):
                result = detonate(str(path), "pickle", backend=backend)
                seconds = _median(lambda p=path, b=backend: detonate(str(p), "pickle", backend=b), args.repeat)
                verdict = "OK (<1 s)" if seconds < 1.0 else "SLOW (>=1 s)"
                print(
                    f"{backend:8}  {label:9} detonation: {seconds * 1000:7.1f} ms  x{seconds / baseline:4.1f} baseline"
                    f"  {len(result.findings())} finding(s)  {verdict}"
                )


if __name__ == "__main__":
    main()
