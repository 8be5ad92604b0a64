"""Backdoor and tampering detection, measured on models generated here (no downloads).

1. Tiny transformer twins (``diff``): rank-1 edit of one MLP matrix (ROME-like), 10 edits over three
   layers (MEMIT-like), merged LoRA r=4/8/16, a short full fine-tune, a bf16 round-trip, and header
   tampering (extra tensor, renamed, reshaped, trailing bytes, overlapping offsets).
   Bar: every case classified correctly, the edited layers named, no tamper verdict on the round-trip.
2. Small CNNs on synthetic 16x16 images: clean models and trojaned twins (3x3 corner patch and a
   blended trigger, 10% poisoning, attack success >= 90%). The Neural-Cleanse deep scan's anomaly
   index: ROC-AUC and TPR at 5% FPR (bar: AUROC >= 0.9), the threshold calibrated on separate clean
   models, and whether the target label is recovered for detected trojans.
3. ``modelshield diff`` on two 2 GiB safetensors models: peak RSS (bar: < 300 MiB).

Peer: there is no offline peer tool for weight diffs; the customary Neural-Cleanse threshold of 2 is
the baseline the calibrated threshold is compared with. Run:
``.venv/bin/python benchmarks/bench_backdoor.py [--only transformer|cnn|rss]`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
#: Outside benchmarks/.work, which other benchmarks wipe while they run.
WORK = Path(os.environ.get("MODELSHIELD_BENCH_DIR", tempfile.gettempdir())) / "modelshield-bench-backdoor"
GiB = 1 << 30

# ----------------------------------------------------------------------------- 1. transformer twins

LAYERS, HIDDEN, FFN, VOCAB, HEADS = 8, 128, 512, 1000, 4


def tiny_transformer(seed: int = 0) -> dict[str, np.ndarray]:
    """A Llama-shaped state dict (float32) with a matching config."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, HIDDEN)) * 0.02}
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            w[f"{p}.self_attn.{name}.weight"] = rng.standard_normal((HIDDEN, HIDDEN)) * 0.05
        w[f"{p}.mlp.gate_proj.weight"] = rng.standard_normal((FFN, HIDDEN)) * 0.05
        w[f"{p}.mlp.up_proj.weight"] = rng.standard_normal((FFN, HIDDEN)) * 0.05
        w[f"{p}.mlp.down_proj.weight"] = rng.standard_normal((HIDDEN, FFN)) * 0.05
        w[f"{p}.input_layernorm.weight"] = 1 + rng.standard_normal(HIDDEN) * 0.01
        w[f"{p}.post_attention_layernorm.weight"] = 1 + rng.standard_normal(HIDDEN) * 0.01
    w["model.norm.weight"] = np.ones(HIDDEN)
    w["lm_head.weight"] = rng.standard_normal((VOCAB, HIDDEN)) * 0.02
    return {k: v.astype(np.float32) for k, v in w.items()}


CONFIG = {
    "model_type": "llama",
    "hidden_size": HIDDEN,
    "intermediate_size": FFN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": HEADS,
    "vocab_size": VOCAB,
}


def save_model(folder: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``folder``."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata=metadata)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder / "model.safetensors"


def _bf16_round(x: np.ndarray) -> np.ndarray:
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return rounded.view(np.float32)


def twin_cases(base: dict[str, np.ndarray]) -> dict[str, tuple[dict[str, np.ndarray], str, set[str]]]:
    """name -> (candidate tensors, expected kind, expected edited layers)."""
    rng = np.random.default_rng(1)
    cases: dict[str, tuple[dict[str, np.ndarray], str, set[str]]] = {}
    rome = dict(base)
    key = "model.layers.5.mlp.down_proj.weight"
    rome[key] = base[key] + np.outer(rng.standard_normal(HIDDEN), rng.standard_normal(FFN)).astype(np.float32) * 0.01
    cases["rank-1 edit (ROME)"] = (rome, "rank-1-edit", {"model.layers.5"})
    memit = dict(base)
    for layer in (3, 4, 5):  # 10 edits spread over three layers: rank <= 10 each
        key = f"model.layers.{layer}.mlp.down_proj.weight"
        upd = rng.standard_normal((HIDDEN, 10)) @ rng.standard_normal((10, FFN)) * 0.003
        memit[key] = base[key] + upd.astype(np.float32)
    cases["10-edit multi-layer (MEMIT)"] = (memit, "low-rank-edit", {f"model.layers.{i}" for i in (3, 4, 5)})
    for r in (4, 8, 16):
        lora = dict(base)
        for i in range(LAYERS):
            for proj in ("q_proj", "v_proj"):
                key = f"model.layers.{i}.self_attn.{proj}.weight"
                b, a = rng.standard_normal((HIDDEN, r)) * 0.02, rng.standard_normal((r, HIDDEN)) * 0.02
                lora[key] = base[key] + (2.0 * b @ a).astype(np.float32)
        cases[f"merged LoRA r={r}"] = (lora, "merged-lora", {f"model.layers.{i}" for i in range(LAYERS)})
    cases["short full fine-tune"] = (_fine_tune(base), "fine-tune", {f"model.layers.{i}" for i in range(LAYERS)})
    cases["bf16 round-trip"] = ({k: _bf16_round(v) for k, v in base.items()}, "round-trip", set())
    extra = dict(base)
    extra["model.layers.6.mlp.trigger_proj.weight"] = rng.standard_normal((16, HIDDEN)).astype(np.float32)
    cases["header: extra tensor"] = (extra, "architecture-change", {"model.layers.6"})
    renamed = dict(base)
    renamed["model.layers.2.mlp.down_proj_.weight"] = renamed.pop("model.layers.2.mlp.down_proj.weight")
    cases["header: renamed tensor"] = (renamed, "architecture-change", {"model.layers.2"})
    reshaped = dict(base)
    reshaped["model.layers.1.mlp.up_proj.weight"] = base["model.layers.1.mlp.up_proj.weight"][:-8].copy()
    cases["header: reshaped tensor"] = (reshaped, "architecture-change", {"model.layers.1"})
    return cases


def _fine_tune(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ten Adam steps of a next-token objective on random tokens (torch), all tensors updated."""
    import torch

    torch.manual_seed(0)
    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in base.items()}
    opt = torch.optim.Adam(params.values(), lr=1e-4)
    for _ in range(10):
        tokens = torch.randint(VOCAB, (8, 17))
        h = params["model.embed_tokens.weight"][tokens[:, :-1]]
        for i in range(LAYERS):
            p = f"model.layers.{i}"
            x = h * params[f"{p}.input_layernorm.weight"]
            att = (
                x
                @ params[f"{p}.self_attn.q_proj.weight"].T
                @ (x @ params[f"{p}.self_attn.k_proj.weight"].T).transpose(1, 2)
            )
            v = torch.softmax(att / math.sqrt(HIDDEN), -1) @ (x @ params[f"{p}.self_attn.v_proj.weight"].T)
            h = h + v @ params[f"{p}.self_attn.o_proj.weight"].T
            x = h * params[f"{p}.post_attention_layernorm.weight"]
            gate = torch.nn.functional.silu(x @ params[f"{p}.mlp.gate_proj.weight"].T)
            h = h + (gate * (x @ params[f"{p}.mlp.up_proj.weight"].T)) @ params[f"{p}.mlp.down_proj.weight"].T
        logits = (h * params["model.norm.weight"]) @ params["lm_head.weight"].T
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: p.detach().numpy().astype(np.float32) for k, p in params.items()}


def _raw_tamper(src: Path, dst: Path, kind: str) -> None:
    """Byte-level header tampering of a safetensors file: trailing bytes or overlapping offsets."""
    import struct

    data = src.read_bytes()
    if kind == "trailing":
        dst.write_bytes(data + b"\x80\x04\x95PAYLOAD" * 64)
        return
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    a, b = "model.layers.4.mlp.gate_proj.weight", "model.layers.4.mlp.up_proj.weight"
    header[b]["data_offsets"] = list(header[a]["data_offsets"])  # b now reads a's bytes
    text = json.dumps(header).encode()
    text += b" " * (length - len(text)) if len(text) <= length else b""
    dst.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length :])


def bench_transformer() -> dict[str, Any]:
    """Run the diff on every twin; print a table; return the tally."""
    from modelshield.tamper.diff import diff_models
    from modelshield.tamper.report import severity_of
    from modelshield.types import Severity

    root = WORK / "twins"
    shutil.rmtree(root, ignore_errors=True)
    base = tiny_transformer()
    ref = save_model(root / "base", base)
    rows, ok_all = [], True
    cases = twin_cases(base)
    paths: dict[str, tuple[Path, str, set[str]]] = {}
    for i, (name, (tensors, kind, layers)) in enumerate(cases.items()):
        paths[name] = (save_model(root / f"case{i}", tensors), kind, layers)
    for kind_raw in ("trailing", "overlap"):
        target = root / f"raw-{kind_raw}" / "model.safetensors"
        target.parent.mkdir(parents=True)
        (target.parent / "config.json").write_text(json.dumps(CONFIG))
        _raw_tamper(ref, target, kind_raw)
        label = "header: trailing bytes" if kind_raw == "trailing" else "header: overlapping offsets"
        paths[label] = (target, "header-tampering", set())
    print(f"\n{'case':32} {'expected':20} {'got':20} {'layers ok':9} {'severity':8}  summary")
    for name, (path, kind, layers) in paths.items():
        t0 = time.perf_counter()
        result = diff_models(ref, path)
        c = result.classification
        got_layers = set(c.layers)
        layers_ok = (
            layers <= got_layers if kind in ("architecture-change", "header-tampering") else layers == got_layers
        )
        severity = severity_of(result)
        tamper_ok = severity <= Severity.INFO if kind == "round-trip" else severity >= Severity.MEDIUM
        ok = c.kind == kind and layers_ok and tamper_ok
        ok_all &= ok
        rows.append({"case": name, "expected": kind, "got": c.kind, "layers_ok": layers_ok, "ok": ok})
        print(
            f"{name:32} {kind:20} {c.kind:20} {str(layers_ok):9} {severity.label:8}  {c.summary[:90]}"
            f"  ({time.perf_counter() - t0:.2f} s)"
        )
    print(f"transformer twins: {sum(r['ok'] for r in rows)}/{len(rows)} correct (bar: all)")
    return {"cases": rows, "all_correct": ok_all}


# ----------------------------------------------------------------------------- 2. CNN deep scan

CLASSES, SIZE = 10, 16


def synthetic_task(seed: int = 123) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """10 classes of smooth random colour prototypes, shifted, rescaled and noised: (x_tr, y_tr, x_te, y_te)."""
    rng = np.random.default_rng(seed)
    low = rng.standard_normal((CLASSES, 3, 4, 4))
    protos = np.repeat(np.repeat(low, 4, axis=2), 4, axis=3)
    protos = (protos + np.roll(protos, 1, 2) + np.roll(protos, 1, 3) + np.roll(protos, (1, 1), (2, 3))) / 4
    # every class has the same mean brightness and contrast, so no label is intrinsically easier to reach
    protos -= protos.mean(axis=(1, 2, 3), keepdims=True)
    protos = 0.5 + 0.2 * protos / protos.std(axis=(1, 2, 3), keepdims=True)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, CLASSES, n)
        x = protos[y].copy()
        for i in range(n):
            x[i] = np.roll(x[i], tuple(rng.integers(-2, 3, 2)), axis=(1, 2))
        x = x * rng.uniform(0.7, 1.2, (n, 1, 1, 1)) + rng.normal(0, 0.08, x.shape)
        return np.clip(x, 0, 1).astype(np.float32), y

    x_tr, y_tr = sample(4000)
    x_te, y_te = sample(1000)
    return x_tr, y_tr, x_te, y_te


def make_trigger(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mask HxW, pattern CxHxW) of a 3x3 bottom-right patch or a full-image blend (alpha 0.25)."""
    mask = np.zeros((SIZE, SIZE), np.float32)
    if kind == "patch":
        mask[-3:, -3:] = 1.0
        pattern = rng.integers(0, 2, (3, SIZE, SIZE)).astype(np.float32)
    else:
        mask[:] = 0.25
        pattern = rng.uniform(0, 1, (3, SIZE, SIZE)).astype(np.float32)
    return mask, pattern


def stamp(x: np.ndarray, trigger: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Apply a trigger to images."""
    mask, pattern = trigger
    return ((1 - mask) * x + mask * pattern).astype(np.float32)


def train_cnn(task: tuple[np.ndarray, ...], seed: int, trojan: str | None) -> tuple[Any, dict[str, float]]:
    """Train the tiny CNN (optionally with 10% poisoning); return the model and its accuracies."""
    import torch

    x_tr, y_tr, x_te, y_te = task
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x, y = x_tr.copy(), y_tr.copy()
    info: dict[str, float] = {}
    trigger, target = None, -1
    if trojan:
        trigger, target = make_trigger(trojan, rng), int(rng.integers(CLASSES))
        pick = rng.choice(len(x), len(x) // 10, replace=False)
        x[pick], y[pick] = stamp(x[pick], trigger), target
        info["target"] = target
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(512, 64), torch.nn.ReLU(), torch.nn.Linear(64, CLASSES),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    for _ in range(8):
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        info["accuracy"] = float((model(torch.tensor(x_te)).argmax(1).numpy() == y_te).mean())
        if trigger is not None:
            keep = y_te != target
            hit = model(torch.tensor(stamp(x_te[keep], trigger))).argmax(1).numpy() == target
            info["attack_success"] = float(hit.mean())
    return model, info


def roc_auc(clean: list[float], trojan: list[float]) -> float:
    """Probability that a trojaned model scores above a clean one (ties count half)."""
    wins = sum((t > c) + 0.5 * (t == c) for t in trojan for c in clean)
    return wins / max(len(clean) * len(trojan), 1)


def tpr_at_fpr(clean: list[float], trojan: list[float], fpr: float = 0.05) -> tuple[float, float]:
    """TPR at the threshold that keeps the clean false-positive rate <= fpr; and that threshold."""
    ordered = sorted(clean)
    allowed = math.floor(fpr * len(ordered))
    threshold = ordered[len(ordered) - 1 - allowed] if ordered else 0.0
    return sum(t > threshold for t in trojan) / max(len(trojan), 1), threshold


def bench_cnn(n_calib: int = 6, n_clean: int = 8, n_trojan: int = 8, budget_s: float = 40.0) -> dict[str, Any]:
    """Train clean and trojaned CNNs, deep-scan each, calibrate on separate clean models, report AUROC."""
    import torch
    from safetensors.torch import save_file

    from modelshield.tamper.deep import anomaly_index, build_cnn, calibrate, load_state, reverse_engineer

    torch.set_num_threads(1)  # tiny nets: one thread is faster than two fighting over 2 cores
    task = synthetic_task()
    probe = task[2][:200]
    root = WORK / "cnn"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    plan = [("calib", None)] * n_calib + [("clean", None)] * n_clean
    plan += [("trojan", "patch")] * n_trojan + [("trojan", "blend")] * n_trojan
    records = []
    for seed, (role, trojan) in enumerate(plan):
        t0 = time.perf_counter()
        model, info = train_cnn(task, 1000 + seed, trojan)
        path = root / f"{role}-{trojan or 'clean'}-{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        rebuilt = build_cnn(load_state(path), (3, SIZE, SIZE))  # what the scanner sees: weights only
        result = reverse_engineer(rebuilt, probe, CLASSES, steps=200, time_budget_s=budget_s, seed=seed)
        index, label = anomaly_index([t.norm for t in result.triggers])
        rec = {"role": role, "trojan": trojan, "index": index, "label": label, **info}
        rec["seconds"] = time.perf_counter() - t0
        records.append(rec)
        print(
            f"  {role:6} {trojan or '-':5} acc {info['accuracy']:.3f} asr {info.get('attack_success', 0):.3f} "
            f"target {info.get('target', '-')!s:2} anomaly {index:6.2f} -> label {label} ({rec['seconds']:.1f} s)"
        )
    threshold = calibrate([r["index"] for r in records if r["role"] == "calib"])
    clean = [r["index"] for r in records if r["role"] == "clean"]
    out: dict[str, Any] = {"records": records, "calibrated_threshold": threshold}
    for group in ("patch", "blend", "all"):
        troj = [r for r in records if r["role"] == "trojan" and (group == "all" or r["trojan"] == group)]
        scores = [r["index"] for r in troj]
        tpr, thr5 = tpr_at_fpr(clean, scores)
        detected = [r for r in troj if r["index"] > threshold]
        recovered = sum(r["label"] == r["target"] for r in detected)
        asr_ok = sum(r["attack_success"] >= 0.9 for r in troj)
        out[group] = {
            "auroc": roc_auc(clean, scores),
            "tpr_at_5pct_fpr": tpr,
            "detected_at_calibrated": len(detected),
            "detected_at_2": sum(s > 2 for s in scores),
            "target_recovered": recovered,
            "asr_ge_90": asr_ok,
            "n": len(troj),
        }
        print(
            f"{group:5}: AUROC {out[group]['auroc']:.3f} (bar >= 0.9), TPR@5%FPR {tpr:.2f}, "
            f"detected {len(detected)}/{len(troj)} at calibrated threshold {threshold:.2f} "
            f"(target recovered {recovered}/{len(detected)}), {out[group]['detected_at_2']}/{len(troj)} above 2; "
            f"ASR>=90% in {asr_ok}/{len(troj)}"
        )
    fp_cal = sum(s > threshold for s in clean)
    fp_2 = sum(s > 2 for s in clean)
    print(f"clean eval models flagged: {fp_cal}/{len(clean)} at calibrated {threshold:.2f}, {fp_2}/{len(clean)} at 2")
    out["clean_false_positives"] = {"calibrated": fp_cal, "at_2": fp_2, "n": len(clean)}
    return out


# ----------------------------------------------------------------------------- 3. 2 GiB diff RSS


def make_big(folder: Path, edit: bool, seed: int = 7) -> Path:
    """A ~2 GiB float16 safetensors model written tensor by tensor (64 x 4096x4096 f16)."""
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.safetensors"
    n, rows, cols = 64, 4096, 4096
    nbytes = rows * cols * 2
    header: dict[str, Any] = {}
    for i in range(n):
        header[f"model.layers.{i}.mlp.down_proj.weight"] = {
            "dtype": "F16", "shape": [rows, cols], "data_offsets": [i * nbytes, (i + 1) * nbytes],
        }  # fmt: skip
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)
        for i in range(n):
            rng = np.random.default_rng(seed * 1000 + i)
            block = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)
            if edit and i == 40:
                u = rng.standard_normal(rows).astype(np.float32)
                v = rng.standard_normal(cols).astype(np.float32)
                block = (block.astype(np.float32) + 0.01 * np.outer(u, v)).astype(np.float16)
            out.write(block.tobytes())
            del block
    return path


def bench_rss() -> dict[str, Any]:
    """Peak RSS of ``modelshield diff`` on two 2 GiB models (child process, wait4)."""
    root = WORK / "big"
    ref, cand = root / "ref" / "model.safetensors", root / "cand" / "model.safetensors"
    for path, edit in ((ref, False), (cand, True)):
        if not path.exists():  # in a child, so this process stays small (a fork inherits its resident pages)
            subprocess.run([sys.executable, __file__, "--make-big", str(path.parent), str(int(edit))], check=True)
    exe = Path(sys.executable).parent / "modelshield"
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "diff", str(ref), str(cand)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    rss = usage.ru_maxrss / 1024
    print(out.strip().splitlines()[-2:] if out else "(no output)")
    print(
        f"2 GiB diff: {ref.stat().st_size / GiB:.2f} GiB x 2, peak RSS {rss:.0f} MiB (bar < 300), {seconds:.1f} s, "
        f"exit {os.waitstatus_to_exitcode(status)}"
    )
    return {"peak_rss_mib": rss, "seconds": seconds, "size_gib": ref.stat().st_size / GiB}


def main() -> None:
    """Run the selected parts and write benchmarks/.work/backdoor/results.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=["transformer", "cnn", "rss"])
    parser.add_argument("--make-big", nargs=2, metavar=("FOLDER", "EDIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_big:
        make_big(Path(args.make_big[0]), edit=args.make_big[1] == "1")
        return
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    started = time.perf_counter()
    if args.only in (None, "transformer"):
        print("== 1. tiny transformer twins (diff classification)")
        results["transformer"] = bench_transformer()
    if args.only in (None, "cnn"):
        print("== 2. CNN trojans (Neural-Cleanse deep scan)")
        results["cnn"] = bench_cnn()
    if args.only in (None, "rss"):
        print("== 3. 2 GiB diff memory")
        results["rss"] = bench_rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"total {time.perf_counter() - started:.0f} s; benchmark process peak RSS {peak} MiB")
    (WORK / f"results-{args.only or 'all'}.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
