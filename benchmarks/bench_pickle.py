"""Pickle-family scan speed and memory against picklescan, modelscan, fickling and modelaudit.

Measured in one run on the same generated files, each tool in its own child process (wall time
and peak RSS from wait4):

1. a 466 MiB pickle of NumPy arrays   bar: <= 1/3 of picklescan's time, peak RSS < 100 MiB
2. a 1 GiB PyTorch zip checkpoint      bar: no slower than picklescan
3. 2,000 small PyTorch files           bar: >= 2x picklescan's files per second
4. `modelshield --help` start-up       bar: < 0.3 s

Peers live in benchmarks/.peers-venv (created on first run: python3 -m venv + pip install
picklescan modelscan fickling modelaudit). Run: .venv/bin/python benchmarks/bench_pickle.py
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PEERS = HERE / ".peers-venv" / "bin"
OURS = Path(sys.executable).parent / "modelshield"
MiB = 1 << 20


@dataclass
class Run:
    tool: str
    seconds: float
    peak_rss_mib: float
    exit_code: int


PEER_TIMEOUT_S = 300.0


def measure(tool: str, argv: list[str], timeout: float = PEER_TIMEOUT_S) -> Run:
    """Run argv in a child; wall time and the child's own peak RSS (wait4). Killed after ``timeout``."""
    start = time.perf_counter()
    # cwd: fickling writes its result files into the current folder
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=WORK)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    killer.cancel()
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    return Run(tool + (" (killed at timeout)" if code == -9 else ""), elapsed, usage.ru_maxrss / 1024, code)


def peer_commands(path: Path) -> dict[str, list[str]]:
    cmds = {
        "picklescan": [str(PEERS / "picklescan"), "-p", str(path)],
        "modelscan": [str(PEERS / "modelscan"), "-p", str(path)],
        "fickling": [str(PEERS / "fickling"), "--check-safety", str(path)],
        "modelaudit": [str(PEERS / "modelaudit"), "scan", str(path)],
    }
    return {name: argv for name, argv in cmds.items() if Path(argv[0]).exists()}


def make_numpy_pickle(path: Path, total_mib: int = 466) -> None:
    import numpy as np

    if path.exists() and path.stat().st_size > total_mib * MiB * 0.95:
        return
    chunk = 8 * MiB // 8
    arrays = [np.full(chunk, i, dtype=np.float64) for i in range(total_mib // 8)]
    arrays.append(np.zeros((total_mib % 8) * MiB // 8 or 1))
    with path.open("wb") as f:
        pickle.dump({"arrays": arrays, "meta": {"n": len(arrays)}}, f, protocol=4)


def make_torch_zip(path: Path, total_mib: int = 1024) -> None:
    import torch

    if path.exists() and path.stat().st_size > total_mib * MiB * 0.95:
        return
    layers = {f"layer{i}.weight": torch.zeros(64 * MiB // 4) for i in range(total_mib // 64)}
    torch.save(layers, path)


def make_small_torch_files(folder: Path, count: int = 2000) -> None:
    import torch

    if folder.exists() and len(list(folder.iterdir())) == count:
        return
    folder.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for i in range(count):
        torch.save(model.state_dict(), folder / f"model_{i:04d}.pt")


def bench_case(name: str, path: Path, ours_extra: list[str], n_files: int = 1) -> dict[str, Run]:
    runs = {"modelshield": measure("modelshield", [str(OURS), "scan", "--no-progress", *ours_extra, str(path)])}
    for tool, argv in peer_commands(path).items():
        runs[tool] = measure(tool, argv)
    print(f"\n## {name}  ({path.name})")
    print(f"{'tool':12} {'seconds':>9} {'files/s':>9} {'peak RSS MiB':>13} {'exit':>5}")
    for run in runs.values():
        rate = n_files / run.seconds if run.seconds else float("inf")
        print(f"{run.tool:12} {run.seconds:9.3f} {rate:9.1f} {run.peak_rss_mib:13.1f} {run.exit_code:5d}")
    ours = runs["modelshield"].seconds
    for tool, run in runs.items():
        if tool != "modelshield":
            print(f"  {tool} time / modelshield time = {run.seconds / ours:.2f}x")
    return runs


def bench_startup(repeat: int = 5) -> float:
    best = min(measure("help", [str(OURS), "--help"]).seconds for _ in range(repeat))
    print(f"\n## startup: `modelshield --help` best of {repeat}: {best:.3f} s (bar < 0.3 s)")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller files (smoke test of the script)")
    parser.add_argument("--keep", action="store_true", help="keep generated files in benchmarks/.work")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    if not PEERS.exists():
        print("peers venv missing: python3 -m venv benchmarks/.peers-venv && "
              "benchmarks/.peers-venv/bin/pip install picklescan modelscan fickling modelaudit", file=sys.stderr)
    scale = 16 if args.quick else 1
    verdicts: list[str] = []

    big = WORK / "numpy-arrays.pkl"
    make_numpy_pickle(big, 466 // scale)
    runs = bench_case("466 MiB pickle of NumPy arrays", big, [])
    ours = runs["modelshield"]
    if "picklescan" in runs:
        ratio = ours.seconds / runs["picklescan"].seconds
        verdicts.append(f"numpy pickle: modelshield/picklescan time = {ratio:.2f} (bar <= 0.33) "
                        f"{'OK' if ratio <= 1 / 3 else 'MISSED'}")
    verdicts.append(f"numpy pickle: peak RSS {ours.peak_rss_mib:.0f} MiB (bar < 100) "
                    f"{'OK' if ours.peak_rss_mib < 100 else 'MISSED'}")

    tzip = WORK / "checkpoint-1g.pt"
    make_torch_zip(tzip, 1024 // scale)
    runs = bench_case("1 GiB PyTorch zip", tzip, [])
    if "picklescan" in runs:
        ratio = runs["modelshield"].seconds / runs["picklescan"].seconds
        verdicts.append(f"torch zip: modelshield/picklescan time = {ratio:.2f} (bar <= 1.0) "
                        f"{'OK' if ratio <= 1 else 'MISSED'}")

    small = WORK / "small-torch"
    count = 2000 // scale
    make_small_torch_files(small, count)
    runs = bench_case(f"{count} small PyTorch files", small, ["--jobs", "2"], n_files=count)
    if "picklescan" in runs:
        speedup = runs["picklescan"].seconds / runs["modelshield"].seconds
        verdicts.append(f"small files: modelshield files/s = {speedup:.2f}x picklescan (bar >= 2) "
                        f"{'OK' if speedup >= 2 else 'MISSED'}")

    startup = bench_startup()
    verdicts.append(f"startup: {startup:.3f} s (bar < 0.3) {'OK' if startup < 0.3 else 'MISSED'}")
    print("\n## bars")
    for line in verdicts:
        print("  " + line)
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
