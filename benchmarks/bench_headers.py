"""Header-format scan cost (safetensors, GGUF, sharded safetensors) against modelaudit, in one run.

Generated inputs (sparse files: tensor bytes are never written, only the headers):

1. a 2 GiB safetensors file (320 tensors)
2. a 1 GiB GGUF (Q4_K/F32 tensors, a 128k-token vocabulary, a chat template)
3. a 2 GiB sharded safetensors repo (4 shards of 512 MiB + model.safetensors.index.json)

For each, every tool runs in its own child process (best of --repeat): wall time minus the bare
interpreter start-up of the same Python ("work beyond interpreter start"), and the child's peak RSS
(``ru_maxrss`` from wait4). For modelshield the in-process ``scan()`` time (imports already done) is
printed too. The bar: under 0.1 s of work beyond interpreter start and under 100 MiB RSS.

modelaudit lives in benchmarks/.peers-venv (``python3 -m venv benchmarks/.peers-venv &&
benchmarks/.peers-venv/bin/pip install modelaudit``). Run: .venv/bin/python benchmarks/bench_headers.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers-venv" / "bin"
OURS = Path(sys.executable).parent / "modelshield"
MiB = 1 << 20
GiB = 1 << 30
BAR_SECONDS = 0.1
BAR_RSS_MIB = 100.0

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


@dataclass
class Run:
    """One child-process measurement."""

    seconds: float
    peak_rss_mib: float
    exit_code: int


def measure(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` in a child; wall time and the child's own peak RSS (wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return Run(elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))


def best(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> Run:
    """Fastest of ``repeat`` runs (peak RSS of that run)."""
    return min((measure(argv, env) for _ in range(repeat)), key=lambda r: r.seconds)


# --- generators ---------------------------------------------------------------------------------


def write_safetensors(path: Path, total: int, n_tensors: int, prefix: str = "layers") -> list[str]:
    """A safetensors file of ``total`` bytes: real header, sparse data region. Returns tensor names."""
    per = (total // n_tensors) // 2 * 2
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    names = []
    for i in range(n_tensors):
        name = f"{prefix}.{i}.weight"
        names.append(name)
        header[name] = {"dtype": "BF16", "shape": [per // 2], "data_offsets": [i * per, (i + 1) * per]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + per * n_tensors)
    return names


def _gguf_str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, total: int, n_vocab: int = 128_000) -> None:
    """A GGUF v3 of about ``total`` bytes with a realistic header and a sparse data region."""
    # Q4_K: 256 elements per 144-byte block; 4096 x 4096 tensors, one per block.
    rows, cols = 4096, 4096
    nbytes = rows * cols // 256 * 144
    n_tensors = max(1, total // nbytes)
    infos, offset = [], 0
    for i in range(n_tensors):
        infos.append(_gguf_str(f"blk.{i}.ffn_up.weight") + struct.pack("<IQQIQ", 2, cols, rows, 12, offset))
        offset += nbytes
    kv = [
        _gguf_str("general.architecture") + struct.pack("<I", 8) + _gguf_str("llama"),
        _gguf_str("general.alignment") + struct.pack("<II", 4, 32),
        _gguf_str("llama.block_count") + struct.pack("<II", 4, n_tensors),
        _gguf_str("tokenizer.chat_template") + struct.pack("<I", 8) + _gguf_str(LLAMA3_TEMPLATE),
        _gguf_str("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, n_vocab)
        + b"".join(_gguf_str(f"tok{i}") for i in range(n_vocab)),
        _gguf_str("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, n_vocab) + b"\0" * (4 * n_vocab),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kv)) + b"".join(kv) + b"".join(infos)
    data_start = -(-len(head) // 32) * 32
    with path.open("wb") as f:
        f.write(head)
        f.truncate(data_start + offset)


def write_sharded(folder: Path, total: int, shards: int = 4) -> None:
    """A sharded safetensors repo: ``shards`` files and the index that maps their tensors."""
    folder.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        for tensor in write_safetensors(folder / name, total // shards, 80, prefix=f"shard{s}"):
            weight_map[tensor] = name
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


# --- measurement --------------------------------------------------------------------------------


def in_process_scan_seconds(target: Path, repeat: int) -> tuple[float, float, int]:
    """(import + first scan, steady-state scan, finding count) measured inside one child."""
    code = (
        "import sys,time;t0=time.perf_counter();from modelshield.scan import scan;r=scan(sys.argv[1]);"
        "t1=time.perf_counter();"
        f"t=min((lambda s:(scan(sys.argv[1]),time.perf_counter()-s)[1])(time.perf_counter()) for _ in range({repeat}));"
        "print(t1-t0,t,len(r.findings))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, check=True)
    first, steady, count = out.stdout.split()
    return float(first), float(steady), int(count)


def bench(name: str, target: Path, repeat: int, baselines: dict[str, float]) -> list[str]:
    """Measure modelshield and modelaudit on ``target``; print a table; return bar verdicts."""
    ours = best([str(OURS), "scan", "--no-progress", str(target)], repeat)
    rows = {"modelshield": ours}
    peer = PEERS / "modelaudit"
    peer_note = ""
    if peer.exists():
        env = {
            **os.environ,
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "NO_ANALYTICS": "1",
            "NO_COLOR": "1",
            "HF_HUB_OFFLINE": "1",
        }
        rows["modelaudit"] = best([str(peer), "scan", "--no-cache", "-q", str(target)], repeat, env)
        if rows["modelaudit"].exit_code not in (0, 1):
            peer_note = f"  (modelaudit exited {rows['modelaudit'].exit_code}: it did not complete the scan)"
    else:
        peer_note = "  modelaudit NOT INSTALLED: python3 -m venv benchmarks/.peers-venv && pip install modelaudit"
    first, steady, count = in_process_scan_seconds(target, repeat)
    print(f"\n## {name}  ({target.name})")
    print(f"{'tool':12} {'wall s':>8} {'beyond start s':>15} {'peak RSS MiB':>13} {'exit':>5}")
    for tool, run in rows.items():
        beyond = run.seconds - baselines[tool]
        print(f"{tool:12} {run.seconds:8.3f} {beyond:15.3f} {run.peak_rss_mib:13.1f} {run.exit_code:5d}")
    print(
        f"modelshield in-process: import+first scan {first:.3f} s, "
        f"scan() alone {steady * 1000:.1f} ms, {count} finding(s)"
    )
    if peer_note:
        print(peer_note)
    if "modelaudit" in rows and rows["modelaudit"].exit_code in (0, 1):
        peer_beyond = rows["modelaudit"].seconds - baselines["modelaudit"]
        ours_beyond = max(ours.seconds - baselines["modelshield"], 1e-3)
        print(
            f"  modelaudit / modelshield: time beyond start {peer_beyond / ours_beyond:.1f}x, "
            f"peak RSS {rows['modelaudit'].peak_rss_mib / ours.peak_rss_mib:.1f}x"
        )
    beyond = ours.seconds - baselines["modelshield"]
    return [
        f"{name}: CLI work beyond interpreter start {beyond:.3f} s (bar < {BAR_SECONDS}) "
        f"{'OK' if beyond < BAR_SECONDS else 'MISSED'}; scan() alone {steady * 1000:.1f} ms "
        f"{'OK' if steady < BAR_SECONDS else 'MISSED'}",
        f"{name}: peak RSS {ours.peak_rss_mib:.0f} MiB (bar < {BAR_RSS_MIB:.0f}) "
        f"{'OK' if ours.peak_rss_mib < BAR_RSS_MIB else 'MISSED'}",
        f"{name}: modelshield exit code {ours.exit_code} (expected 0: benign)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and case (best is kept)")
    parser.add_argument("--quick", action="store_true", help="smaller files (smoke test of the script)")
    args = parser.parse_args()
    scale = 64 if args.quick else 1
    # Write modelshield's bytecode first, as a wheel install does (PYTHONDONTWRITEBYTECODE=1 on this
    # machine would otherwise make an editable install recompile every module on every run).
    import modelshield

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(modelshield.__file__).parent)], check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-headers-"))
    try:
        write_safetensors(work / "model-2g.safetensors", 2 * GiB // scale, 320)
        write_gguf(work / "model-1g.gguf", GiB // scale)
        write_sharded(work / "sharded-2g", 2 * GiB // scale)
        baselines = {"modelshield": best([sys.executable, "-c", "pass"], 5).seconds}
        if (PEERS / "python").exists():
            baselines["modelaudit"] = best([str(PEERS / "python"), "-c", "pass"], 5).seconds
        print("interpreter start-up: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in baselines.items()))
        verdicts: list[str] = []
        verdicts += bench("2 GiB safetensors", work / "model-2g.safetensors", args.repeat, baselines)
        verdicts += bench("1 GiB GGUF", work / "model-1g.gguf", args.repeat, baselines)
        verdicts += bench("2 GiB sharded safetensors repo", work / "sharded-2g", args.repeat, baselines)
        print("\n## bars")
        for line in verdicts:
            print("  " + line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
