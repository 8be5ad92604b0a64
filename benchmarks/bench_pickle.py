"""Pickle-family scan speed and memory against picklescan, modelscan, fickling and modelaudit.

Measured in one run on the same generated files, each tool in its own child process (wall time,
peak RSS and CPU time from wait4):

1. a 466 MiB pickle of NumPy arrays   bars: <= 1/3 of picklescan's time and of its CPU time,
                                       peak RSS < 100 MiB
2. a 1 GiB PyTorch zip checkpoint      bars: no slower than picklescan, no more CPU time
3. 2,000 small PyTorch files           bar: >= 2x picklescan's files per second
   (checkpoints of one architecture, and again with every pickle different)
4. `modelshield --help` start-up       bar: < 0.3 s

Each case is measured twice per tool: the command line end to end (interpreter start, imports,
scan), and the scan call alone in a fresh child that imported the tool first
(picklescan's scan_file_path / scan_directory_path, modelscan's ModelScan().scan,
modelshield.scan; best of three children).

The command line runs four times per tool: wall time is the best of the first two, as before;
whole-process CPU (user + sys of the tool's process and of every descendant, also any that
outlive it: this process is their subreaper) is the median of runs 2-4, the first being the
warm-up that also fills the page cache. A tool whose warm-up takes over 5 s runs twice (CPU of
the second run), over 30 s once. Every run's exit code is kept (a benign file must exit 0 in
all of them). Fixtures
are written by a separate child so that no tool inherits the generator's memory (wait4's peak RSS
of a child counts what it inherited at fork).

Peers live in benchmarks/.peers-venv (created on first run: python3 -m venv + pip install
picklescan modelscan fickling modelaudit). Run: .venv/bin/python benchmarks/bench_pickle.py
(``--cases cpu`` for the two cases with CPU bars only, numpy and zip; ``--peers picklescan`` to
leave out the slow peers: ``--cases cpu --peers picklescan`` takes well under a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import pickle
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    user_s: float = 0.0
    sys_s: float = 0.0

    @property
    def cpu_s(self) -> float:
        """User + sys CPU seconds of the process and all its descendants."""
        return self.user_s + self.sys_s


PEER_TIMEOUT_S = 120.0
ORPHAN_GRACE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux), so their CPU is counted.

    Without it, a grandchild that outlives the tool is re-parented to init and its CPU time is
    lost from getrusage(RUSAGE_CHILDREN).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _children_of_this_process() -> list[int]:
    me = str(os.getpid())
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rpartition(")")[2].split()[1] == me:
                pids.append(int(entry.name))
    return pids


def reap_orphans(grace: float = ORPHAN_GRACE_S) -> int:
    """Reap descendants the tool left behind (re-parented here); kill those still running after ``grace``."""
    reaped = 0
    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
            continue
        if time.monotonic() > deadline:
            for child in _children_of_this_process():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.01)


def _children_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def measure(tool: str, argv: list[str], timeout: float = PEER_TIMEOUT_S) -> Run:
    """Run argv in a child; wall time, peak RSS (wait4) and CPU of the child and all its descendants.

    CPU is the delta of getrusage(RUSAGE_CHILDREN) around the child: it counts the child and every
    descendant reaped by the child or, once orphaned, by this process (see ``become_subreaper``).
    """
    user0, sys0 = _children_cpu()
    start = time.perf_counter()
    # cwd: fickling writes its result files into the current folder
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=WORK)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    killer.cancel()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    orphans = reap_orphans()
    user1, sys1 = _children_cpu()
    label = tool + (" (killed at timeout)" if code == -9 else "") + (f" (+{orphans} orphans)" if orphans else "")
    return Run(label, elapsed, usage.ru_maxrss / 1024, code, user1 - user0, sys1 - sys0)


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


#: the peers to run (--peers)
PEER_NAMES = ["picklescan", "modelscan", "fickling", "modelaudit"]


def peer_commands(path: Path) -> dict[str, list[str]]:
    cmds = {
        "picklescan": [str(PEERS / "picklescan"), "-p", str(path)],
        "modelscan": [str(PEERS / "modelscan"), "-p", str(path)],
        "fickling": [str(PEERS / "fickling"), "--check-safety", str(path)],
        "modelaudit": [str(PEERS / "modelaudit"), "scan", str(path)],
    }
    return {name: argv for name, argv in cmds.items() if name in PEER_NAMES and Path(argv[0]).exists()}


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


#: A tool whose warm-up run takes longer than this gets one measured run instead of three (its CPU
#: time varies by far less than its length; three more runs of a 20 s scan would triple the run time).
SLOW_S = 5.0
#: ... and longer than this, no run after the warm-up (as before: the bars never depend on such a tool).
VERY_SLOW_S = 30.0


@dataclass
class CliRuns:
    """All command-line runs of one tool on one case (see the module docstring)."""

    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        """Best wall time of the first two runs (the warm-up and the first measured run)."""
        return min(self.runs[:2], key=lambda run: run.seconds)

    @property
    def measured(self) -> list[Run]:
        """The runs after the warm-up (the only run of a slow tool)."""
        return self.runs[1:] or self.runs

    @property
    def median_cpu(self) -> Run:
        """The measured run with the median CPU time (user and sys of one run, so they add up)."""
        ordered = sorted(self.measured, key=lambda run: run.cpu_s)
        return ordered[len(ordered) // 2]

    @property
    def median_seconds(self) -> float:
        return statistics.median(run.seconds for run in self.measured)

    @property
    def max_rss_mib(self) -> float:
        """Highest peak RSS of the measured runs."""
        return max(run.peak_rss_mib for run in self.measured)

    @property
    def exit_codes(self) -> list[int]:
        return [run.exit_code for run in self.runs]


def run_cli(tool: str, argv: list[str], measured_runs: int = 3, prepare: Callable[[], None] | None = None) -> CliRuns:
    """One warm-up run (which also warms the page cache after the file was written), then ``measured_runs``.

    ``prepare`` runs before every run, outside the measurement.
    """

    def once() -> Run:
        if prepare is not None:
            prepare()
        return measure(tool, argv)

    result = CliRuns([once()])
    warmup = result.runs[0].seconds
    if warmup <= VERY_SLOW_S:
        result.runs.extend(once() for _ in range(measured_runs if warmup <= SLOW_S else 1))
    return result


#: One line per case: modelshield's exit code on these benign files (a speed bar means nothing
#: if the scan got the verdict wrong).
EXIT_CODES: list[str] = []


#: case name -> tool -> all command-line runs, filled by bench_case
CLI: dict[str, dict[str, CliRuns]] = {}


def _codes(codes: list[int]) -> str:
    return str(codes[0]) if len(set(codes)) == 1 else ",".join(map(str, codes))


def bench_case(name: str, path: Path, ours_extra: list[str], n_files: int = 1) -> dict[str, Run]:
    """Measure every tool on ``path``; returns each tool's best-of-two run (the wall-time bars use it)."""
    ours_argv = [str(OURS), "scan", "--no-progress", *ours_extra, str(path)]
    cli = {"modelshield": run_cli("modelshield", ours_argv, prepare=compile_package)}
    codes = cli["modelshield"].exit_codes
    ok = all(code == 0 for code in codes)
    EXIT_CODES.append(
        f"{name}: modelshield exit codes {_codes(codes)} in {len(codes)} runs (benign: expected 0) {verdict(ok)}"
    )
    for tool, argv in peer_commands(path).items():
        cli[tool] = run_cli(tool, argv)
    CLI[name] = cli
    runs = {tool: result.best for tool, result in cli.items()}
    print(f"\n## {name}  ({path.name})")
    print(
        f"{'':12} {'best of 2':>19} {'|':>2} {'median of 3 after a warm-up':^44} {'|':>2}\n"
        f"{'tool':12} {'seconds':>9} {'files/s':>9} {'|':>2} {'seconds':>8} {'CPU s':>7} {'user':>7} {'sys':>7}"
        f" {'CPU/wall':>8} {'|':>2} {'peak RSS MiB':>13} {'exit':>5}"
    )
    for result in cli.values():
        best, cpu = result.best, result.median_cpu
        rate = n_files / best.seconds if best.seconds else float("inf")
        wall = result.median_seconds
        note = {1: "  (slow: 1 run)", 2: "  (slow: 1 run after the warm-up)"}.get(len(result.runs), "")
        print(
            f"{best.tool:12} {best.seconds:9.3f} {rate:9.1f} {'|':>2} {wall:8.3f} {cpu.cpu_s:7.3f} {cpu.user_s:7.3f}"
            f" {cpu.sys_s:7.3f} {cpu.cpu_s / wall if wall else 0:8.2f} {'|':>2} {result.max_rss_mib:13.1f}"
            f" {_codes(result.exit_codes):>5}{note}"
        )
    ours = runs["modelshield"].seconds
    for tool, run in runs.items():
        if tool != "modelshield":
            print(f"  {tool} time / modelshield time = {run.seconds / ours:.2f}x")
    if "picklescan" in cli:
        ours_cpu, theirs_cpu = cli["modelshield"].median_cpu.cpu_s, cli["picklescan"].median_cpu.cpu_s
        print(f"  CPU: modelshield / picklescan = {ours_cpu / theirs_cpu:.2f}x")
    print("scan call alone (tool imported first):")
    lib: dict[str, tuple[float, float]] = {}
    compile_package()
    for tool in (name for name in _LIB_SNIPPETS if name == "modelshield" or name in PEER_NAMES):
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
        f"{verdict(ratio <= max_ratio)}; peak RSS {lib['modelshield'][1]:.0f} MiB"
    ]


def _rate_bar(label: str, runs: dict[str, Run], at_least: float = 2.0) -> list[str]:
    """The files-per-second bar against picklescan (same files, so the time ratio)."""
    if "picklescan" not in runs:
        return []
    speedup = runs["picklescan"].seconds / runs["modelshield"].seconds
    return [
        f"{label}, CLI: modelshield files/s = {speedup:.2f}x picklescan (bar >= {at_least:g}) "
        f"{verdict(speedup >= at_least)}"
    ]


def _cpu_bar(case: str, label: str, max_ratio: float, max_rss_mib: float | None = None) -> list[str]:
    """Whole-process CPU (median of 3) against picklescan's, and optionally modelshield's peak RSS."""
    cli = CLI.get(case, {})
    if "modelshield" not in cli:
        return []
    ours = cli["modelshield"]
    lines = []
    if "picklescan" in cli:
        theirs = cli["picklescan"].median_cpu.cpu_s
        ratio = ours.median_cpu.cpu_s / theirs
        lines.append(
            f"{label}, CLI CPU (user+sys, median of 3): modelshield {ours.median_cpu.cpu_s:.3f} s / picklescan "
            f"{theirs:.3f} s = {ratio:.2f}x (bar <= {max_ratio:.2f}x) {verdict(ratio <= max_ratio)}"
        )
    if max_rss_mib is not None:
        rss = ours.max_rss_mib
        lines.append(
            f"{label}, CLI peak RSS over the CPU runs: modelshield {rss:.0f} MiB (bar < {max_rss_mib:.0f}) "
            f"{verdict(rss < max_rss_mib)}"
        )
    return lines


def compile_package() -> None:
    """Write modelshield's bytecode first, as a wheel install does (the peers' venv has theirs).

    An editable install under PYTHONDONTWRITEBYTECODE=1 (set on this machine) otherwise recompiles
    every module on every run, which is not how an installed package starts. Called again before
    every modelshield run (~30 ms when nothing changed): a source file edited while the benchmark
    runs would otherwise be recompiled inside the measured runs.
    """
    import modelshield

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(modelshield.__file__).parent)], check=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def case_numpy(scale: int) -> list[str]:
    name = "466 MiB pickle of NumPy arrays"
    big = WORK / "numpy-arrays.pkl"
    generate("numpy", big, 466 // scale)
    runs = bench_case(name, big, [])
    ours = runs["modelshield"]
    bars = []
    if "picklescan" in runs:
        ratio = ours.seconds / runs["picklescan"].seconds
        bars.append(
            f"numpy pickle, CLI: modelshield/picklescan time = {ratio:.2f} (bar <= 0.33) {verdict(ratio <= 1 / 3)}"
        )
    bars.extend(_library_bar(name, "numpy pickle", 1 / 3))
    bars.append(
        f"numpy pickle: CLI peak RSS {ours.peak_rss_mib:.0f} MiB (bar < 100) {verdict(ours.peak_rss_mib < 100)}"
    )
    bars.extend(_cpu_bar(name, "numpy pickle", 0.33, max_rss_mib=100))
    return bars


def case_zip(scale: int) -> list[str]:
    name = "1 GiB PyTorch zip"
    tzip = WORK / "checkpoint-1g.pt"
    generate("torchzip", tzip, 1024 // scale)
    runs = bench_case(name, tzip, [])
    bars = []
    if "picklescan" in runs:
        ratio = runs["modelshield"].seconds / runs["picklescan"].seconds
        bars.append(f"torch zip, CLI: modelshield/picklescan time = {ratio:.2f} (bar <= 1.0) {verdict(ratio <= 1)}")
    bars.extend(_library_bar(name, "torch zip", 1.0))
    bars.extend(_cpu_bar(name, "torch zip", 1.0))
    return bars


def case_small(scale: int) -> list[str]:
    count = 2000 // scale
    name = f"{count} small PyTorch files"
    small = WORK / "small-torch"
    generate("small", small, count)
    runs = bench_case(name, small, ["--jobs", "2"], n_files=count)
    return [*_rate_bar("small files", runs), *_library_bar(name, "small files", 0.5)]


def case_distinct(scale: int) -> list[str]:
    # The same bar on checkpoints whose pickles all differ: modelshield analyses a pickle it has
    # seen byte for byte once per process, which the small-files case benefits from.
    count = 2000 // scale
    distinct = WORK / "distinct-torch"
    generate("distinct", distinct, count)
    runs = bench_case(f"{count} small PyTorch files, all pickles different", distinct, ["--jobs", "2"], n_files=count)
    return _rate_bar("distinct small files", runs)


def case_startup(scale: int) -> list[str]:
    startup = bench_startup()
    return [f"startup: {startup:.3f} s (bar < 0.3) {verdict(startup < 0.3)}"]


CASES = {
    "numpy": case_numpy,
    "zip": case_zip,
    "small": case_small,
    "distinct": case_distinct,
    "startup": case_startup,
}
#: shorthand names for --cases
CASE_GROUPS = {"all": list(CASES), "cpu": ["numpy", "zip"]}


def _case_list(text: str) -> list[str]:
    chosen: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        names = CASE_GROUPS.get(item, [item])
        for case in names:
            if case not in CASES:
                known = ", ".join([*CASES, *CASE_GROUPS])
                raise argparse.ArgumentTypeError(f"unknown case {case!r} (known: {known})")
            if case not in chosen:
                chosen.append(case)
    return chosen


def _peer_list(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in PEER_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {', '.join(unknown)} (known: {', '.join(PEER_NAMES)})")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller files (smoke test of the script)")
    parser.add_argument("--keep", action="store_true", help="keep generated files in benchmarks/.work")
    parser.add_argument(
        "--cases",
        type=_case_list,
        default=list(CASES),
        help="comma-separated cases to run: numpy, zip, small, distinct, startup; 'cpu' = numpy,zip (default: all)",
    )
    parser.add_argument(
        "--peers",
        type=_peer_list,
        default=list(PEER_NAMES),
        help=f"comma-separated peers to run (default: all of {','.join(PEER_NAMES)}); bars need picklescan",
    )
    args = parser.parse_args()
    PEER_NAMES[:] = args.peers
    WORK.mkdir(exist_ok=True)
    compile_package()
    if not become_subreaper():
        print("(not Linux: CPU of descendants that outlive a tool is not counted)", file=sys.stderr)
    if not PEERS.exists():
        print(
            "peers venv missing: python3 -m venv benchmarks/.peers-venv && "
            "benchmarks/.peers-venv/bin/pip install picklescan modelscan fickling modelaudit",
            file=sys.stderr,
        )
    scale = 16 if args.quick else 1
    verdicts: list[str] = []
    for case in args.cases:
        verdicts.extend(CASES[case](scale))
    verdicts.extend(EXIT_CODES)
    print("\n## bars")
    for line in verdicts:
        print("  " + line)
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
