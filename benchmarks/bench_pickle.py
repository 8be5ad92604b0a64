"""Pickle-family scan speed and memory against picklescan, modelscan, fickling and modelaudit.

Measured in one run on the same generated files, each tool in its own child process (wall time
and peak RSS from wait4):

1. a 466 MiB pickle of NumPy arrays   bar: <= 1/3 of picklescan's time, peak RSS < 100 MiB
2. a 1 GiB PyTorch zip checkpoint      bar: no slower than picklescan
3. 2,000 small PyTorch files           bar: >= 2x picklescan's files per second
   (checkpoints of one architecture, and again with every pickle different)
4. `modelshield --help` start-up       bar: < 0.3 s

Each case is measured twice per tool: the command line end to end (interpreter start, imports,
scan; best of two runs), and the scan call alone in a fresh child that imported the tool first
(picklescan's scan_file_path / scan_directory_path, modelscan's ModelScan().scan,
modelshield.scan; best of three children). Fixtures
are written by a separate child so that no tool inherits the generator's memory (wait4's peak RSS
of a child counts what it inherited at fork).

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
#: case name -> tool -> (seconds of the scan call, peak RSS MiB), filled by bench_case
LIBRARY: dict[str, dict[str, tuple[float, float]]] = {}


@dataclass
class Run:
    tool: str
    seconds: float
    peak_rss_mib: float
    exit_code: int


PEER_TIMEOUT_S = 120.0


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


_LIB_SNIPPETS = {
    "modelshield": (
        "from modelshield.scan import scan\n"
        "from modelshield.formats.interface import readers\n"
        "from modelshield.analyzers import load_builtin_analyzers\n"
        "import modelshield.advisories.assess, modelshield.sources, modelshield.policy.gate\n"
        "from modelshield.advisories.db import load_db\n"
        "readers(); load_builtin_analyzers(); load_db()\n"
        "def run(p): return scan([p])\n"
    ),
    "picklescan": (
        "import os\n"
        "from picklescan.scanner import scan_file_path, scan_directory_path\n"
        "def run(p): return scan_directory_path(p) if os.path.isdir(p) else scan_file_path(p)\n"
    ),
    "modelscan": ("from modelscan.modelscan import ModelScan\ndef run(p): return ModelScan().scan(p)\n"),
}
_LIB_TIMER = (
    "import sys, time, resource\n{setup}"
    "t = time.perf_counter(); run(sys.argv[1]); dt = time.perf_counter() - t\n"
    "print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
)


def measure_library(tool: str, path: Path, repeat: int = 3) -> tuple[float, float] | None:
    """Seconds of the scan call alone (tool imported first) and the child's peak RSS in MiB.

    Each run is one call in a fresh child; the best of ``repeat`` children counts (a millisecond-scale
    call varies by more than its own length between runs), the same for every tool.
    """
    python = sys.executable if tool == "modelshield" else str(PEERS / "python")
    if not Path(python).exists():
        return None
    code = _LIB_TIMER.format(setup=_LIB_SNIPPETS[tool])
    seconds: list[float] = []
    peak = 0.0
    for _ in range(repeat):
        done = subprocess.run(
            [python, "-c", code, str(path)], capture_output=True, text=True, cwd=WORK, timeout=PEER_TIMEOUT_S
        )
        if done.returncode != 0:
            print(f"  ({tool} library run failed: {done.stderr.strip().splitlines()[-1:]})")
            return None
        took, rss = (float(x) for x in done.stdout.split()[-2:])
        seconds.append(took)
        peak = max(peak, rss)
        if took > 10:  # slow tools: one run is enough
            break
    return min(seconds), peak


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


def make_small_torch_files(folder: Path, count: int = 2000, distinct: bool = False) -> None:
    """``count`` checkpoints of one small architecture.

    Their data.pkl members are byte-identical, unless ``distinct``: then every file uses its own
    key names, so every pickle differs (same size class).
    """
    import torch

    if folder.exists() and len(list(folder.iterdir())) == count:
        return
    folder.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for i in range(count):
        state = model.state_dict()
        if distinct:
            state = {f"net{i}.{key}": value for key, value in state.items()}
        torch.save(state, folder / f"model_{i:04d}.pt")


def make_distinct_torch_files(folder: Path, count: int = 2000) -> None:
    """``make_small_torch_files`` with every pickle different."""
    make_small_torch_files(folder, count, distinct=True)


def generate(kind: str, path: Path, size: int) -> None:
    """Write a fixture in a child process (see the module docstring)."""
    makers = {
        "numpy": "make_numpy_pickle",
        "torchzip": "make_torch_zip",
        "small": "make_small_torch_files",
        "distinct": "make_distinct_torch_files",
    }
    code = (
        f"import sys, pathlib; sys.path.insert(0, {str(HERE)!r}); import bench_pickle as b; "
        f"b.{makers[kind]}(pathlib.Path({str(path)!r}), {size})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def best_of_two(tool: str, argv: list[str]) -> Run:
    """The faster of two runs (the first also warms the page cache after the file was written)."""
    first = measure(tool, argv)
    if first.seconds > 30:
        return first
    second = measure(tool, argv)
    return first if first.seconds < second.seconds else second


#: One line per case: modelshield's exit code on these benign files (a speed bar means nothing
#: if the scan got the verdict wrong).
EXIT_CODES: list[str] = []


def bench_case(name: str, path: Path, ours_extra: list[str], n_files: int = 1) -> dict[str, Run]:
    runs = {"modelshield": best_of_two("modelshield", [str(OURS), "scan", "--no-progress", *ours_extra, str(path)])}
    code = runs["modelshield"].exit_code
    EXIT_CODES.append(f"{name}: modelshield exit code {code} (benign: expected 0) {'OK' if code == 0 else 'MISSED'}")
    for tool, argv in peer_commands(path).items():
        runs[tool] = best_of_two(tool, argv)
    print(f"\n## {name}  ({path.name})")
    print(f"{'tool':12} {'seconds':>9} {'files/s':>9} {'peak RSS MiB':>13} {'exit':>5}")
    for run in runs.values():
        rate = n_files / run.seconds if run.seconds else float("inf")
        print(f"{run.tool:12} {run.seconds:9.3f} {rate:9.1f} {run.peak_rss_mib:13.1f} {run.exit_code:5d}")
    ours = runs["modelshield"].seconds
    for tool, run in runs.items():
        if tool != "modelshield":
            print(f"  {tool} time / modelshield time = {run.seconds / ours:.2f}x")
    print("scan call alone (tool imported first):")
    lib: dict[str, tuple[float, float]] = {}
    for tool in _LIB_SNIPPETS:
        result = measure_library(tool, path)
        if result is not None:
            lib[tool] = result
            print(f"  {tool:12} {result[0]:9.3f} s {n_files / result[0]:9.1f} files/s {result[1]:9.1f} MiB peak RSS")
    for tool, (seconds, _) in lib.items():
        if tool != "modelshield" and "modelshield" in lib:
            print(f"  {tool} time / modelshield time = {seconds / lib['modelshield'][0]:.2f}x")
    LIBRARY[name] = lib
    return runs


def bench_startup(repeat: int = 5) -> float:
    best = min(measure("help", [str(OURS), "--help"]).seconds for _ in range(repeat))
    print(f"\n## startup: `modelshield --help` best of {repeat}: {best:.3f} s (bar < 0.3 s)")
    return best


def _library_bar(case: str, label: str, max_ratio: float) -> list[str]:
    lib = LIBRARY.get(case, {})
    if "modelshield" not in lib or "picklescan" not in lib:
        return []
    ratio = lib["modelshield"][0] / lib["picklescan"][0]
    return [
        f"{label}, scan call: modelshield/picklescan time = {ratio:.2f} (bar <= {max_ratio:.2f}) "
        f"{'OK' if ratio <= max_ratio else 'MISSED'}; peak RSS {lib['modelshield'][1]:.0f} MiB"
    ]


def _rate_bar(label: str, runs: dict[str, Run], at_least: float = 2.0) -> list[str]:
    """The files-per-second bar against picklescan (same files, so the time ratio)."""
    if "picklescan" not in runs:
        return []
    speedup = runs["picklescan"].seconds / runs["modelshield"].seconds
    return [
        f"{label}, CLI: modelshield files/s = {speedup:.2f}x picklescan (bar >= {at_least:g}) "
        f"{'OK' if speedup >= at_least else 'MISSED'}"
    ]


def compile_package() -> None:
    """Write modelshield's bytecode first, as a wheel install does (the peers' venv has theirs).

    An editable install under PYTHONDONTWRITEBYTECODE=1 (set on this machine) otherwise recompiles
    every module on every run, which is not how an installed package starts.
    """
    import modelshield

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(modelshield.__file__).parent)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller files (smoke test of the script)")
    parser.add_argument("--keep", action="store_true", help="keep generated files in benchmarks/.work")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    compile_package()
    if not PEERS.exists():
        print(
            "peers venv missing: python3 -m venv benchmarks/.peers-venv && "
            "benchmarks/.peers-venv/bin/pip install picklescan modelscan fickling modelaudit",
            file=sys.stderr,
        )
    scale = 16 if args.quick else 1
    verdicts: list[str] = []

    big = WORK / "numpy-arrays.pkl"
    generate("numpy", big, 466 // scale)
    runs = bench_case("466 MiB pickle of NumPy arrays", big, [])
    ours = runs["modelshield"]
    if "picklescan" in runs:
        ratio = ours.seconds / runs["picklescan"].seconds
        verdicts.append(
            f"numpy pickle, CLI: modelshield/picklescan time = {ratio:.2f} (bar <= 0.33) "
            f"{'OK' if ratio <= 1 / 3 else 'MISSED'}"
        )
    verdicts.extend(_library_bar("466 MiB pickle of NumPy arrays", "numpy pickle", 1 / 3))
    verdicts.append(
        f"numpy pickle: CLI peak RSS {ours.peak_rss_mib:.0f} MiB (bar < 100) "
        f"{'OK' if ours.peak_rss_mib < 100 else 'MISSED'}"
    )

    tzip = WORK / "checkpoint-1g.pt"
    generate("torchzip", tzip, 1024 // scale)
    runs = bench_case("1 GiB PyTorch zip", tzip, [])
    if "picklescan" in runs:
        ratio = runs["modelshield"].seconds / runs["picklescan"].seconds
        verdicts.append(
            f"torch zip, CLI: modelshield/picklescan time = {ratio:.2f} (bar <= 1.0) {'OK' if ratio <= 1 else 'MISSED'}"
        )
    verdicts.extend(_library_bar("1 GiB PyTorch zip", "torch zip", 1.0))

    small = WORK / "small-torch"
    count = 2000 // scale
    generate("small", small, count)
    runs = bench_case(f"{count} small PyTorch files", small, ["--jobs", "2"], n_files=count)
    verdicts.extend(_rate_bar("small files", runs))
    verdicts.extend(_library_bar(f"{count} small PyTorch files", "small files", 0.5))

    # The same bar on checkpoints whose pickles all differ: modelshield analyses a pickle it has
    # seen byte for byte once per process, which the case above benefits from.
    distinct = WORK / "distinct-torch"
    generate("distinct", distinct, count)
    runs = bench_case(f"{count} small PyTorch files, all pickles different", distinct, ["--jobs", "2"], n_files=count)
    verdicts.extend(_rate_bar("distinct small files", runs))

    startup = bench_startup()
    verdicts.append(f"startup: {startup:.3f} s (bar < 0.3) {'OK' if startup < 0.3 else 'MISSED'}")
    verdicts.extend(EXIT_CODES)
    print("\n## bars")
    for line in verdicts:
        print("  " + line)
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
