"""Deep scan of small image classifiers: Neural-Cleanse style trigger reverse-engineering (torch extra).

For every output label, find the smallest mask ``m`` and pattern ``p`` such that stamping
``(1 - m) * x + m * p`` onto clean inputs makes the model predict that label (Wang et al., "Neural
Cleanse", IEEE S&P 2019). A trojaned model has a label reachable with a far smaller trigger than
the others. The anomaly index of the smallest mask norm is ``(median - min) / (1.4826 * MAD)``;
the threshold is calibrated on clean models (:data:`CALIBRATED_THRESHOLD`, measured by
``benchmarks/bench_backdoor.py``), not the customary 2.

The model is rebuilt from a safetensors state dict of a plain CNN (conv / ReLU / max-pool /
flatten / linear); nothing from the file is executed. Time-capped.
"""

from __future__ import annotations

import math
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.errors import UsageError

if TYPE_CHECKING:
    import torch

#: Anomaly-index threshold calibrated on clean models by benchmarks/bench_backdoor.py: the largest index of
#: 6 clean calibration CNNs (2.54) plus 10% (``calibrate(..., fpr=0.05)``). On 8 further clean models it
#: flagged none, where the customary threshold of 2 flagged 3 of 8.
CALIBRATED_THRESHOLD = 2.79
#: Attack success a reverse-engineered trigger must reach to count.
MIN_SUCCESS = 0.9


@dataclass(frozen=True, slots=True)
class LabelTrigger:
    """The smallest trigger found for one label: mask L1 norm, attack success, mask and pattern."""

    label: int
    norm: float
    success: float
    mask: np.ndarray
    pattern: np.ndarray


@dataclass(slots=True)
class DeepScanResult:
    """Per-label triggers, the anomaly index of the smallest one, and the verdict."""

    triggers: list[LabelTrigger]
    anomaly_index: float
    suspect_label: int
    threshold: float
    seconds: float
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """True when the smallest trigger is an outlier beyond the calibrated threshold."""
        return self.anomaly_index > self.threshold

    def summary(self) -> str:
        """One line for reports."""
        norms = ", ".join(f"{t.label}:{t.norm:.1f}" for t in self.triggers)
        state = "SUSPECTED" if self.flagged else "not detected"
        return (
            f"trigger {state}: label {self.suspect_label} anomaly index {self.anomaly_index:.2f} "
            f"(threshold {self.threshold:.2f}); mask norms {norms}"
        )


def anomaly_index(norms: list[float] | np.ndarray) -> tuple[float, int]:
    """Anomaly index of the smallest norm and its label (MAD-based, consistent with a normal)."""
    values = np.asarray(norms, dtype=np.float64)
    median = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - median)))
    label = int(np.argmin(values))
    if mad == 0:
        return (0.0 if values[label] == median else math.inf), label
    return (median - float(values[label])) / mad, label


def calibrate(clean_indices: list[float], *, fpr: float = 0.05) -> float:
    """Threshold keeping the false-positive rate on clean models at or below ``fpr`` (plus a 10% margin)."""
    ordered = np.sort(np.asarray(clean_indices, dtype=np.float64))
    keep = min(len(ordered) - 1, int(math.ceil((1 - fpr) * len(ordered))) - 1)
    return float(ordered[max(keep, 0)]) * 1.1


def reverse_engineer(
    model: torch.nn.Module,
    images: np.ndarray,
    num_classes: int,
    *,
    steps: int = 300,
    time_budget_s: float = 120.0,
    threshold: float = CALIBRATED_THRESHOLD,
    seed: int = 0,
) -> DeepScanResult:
    """Run the trigger search for every label on ``images`` (N, C, H, W in [0, 1])."""
    import torch

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread beats several fighting over the cores
    try:
        return _reverse_engineer(model, images, num_classes, steps, time_budget_s, threshold)
    finally:
        torch.set_num_threads(threads)


def _reverse_engineer(
    model: torch.nn.Module, images: np.ndarray, num_classes: int, steps: int, time_budget_s: float, threshold: float
) -> DeepScanResult:
    import torch

    started = time.monotonic()
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    data = torch.as_tensor(images, dtype=torch.float32)
    triggers: list[LabelTrigger] = []
    timed_out = False
    for label in range(num_classes):
        left = time_budget_s - (time.monotonic() - started)
        per_label = left / (num_classes - label)
        if per_label <= 0:
            timed_out = True
            break
        triggers.append(_search(model, data, label, steps, time.monotonic() + per_label))
    norms = [t.norm for t in triggers]
    index, suspect = anomaly_index(norms) if len(norms) >= 3 else (0.0, 0)
    result = DeepScanResult(triggers, index, suspect, threshold, time.monotonic() - started, timed_out)
    if timed_out:
        result.notes.append(f"time budget of {time_budget_s:.0f} s spent after {len(triggers)} labels")
    return result


def _search(model: torch.nn.Module, data: torch.Tensor, label: int, steps: int, deadline: float) -> LabelTrigger:
    import torch

    _, channels, height, width = data.shape
    mask_raw = torch.full((1, 1, height, width), -2.0, requires_grad=True)
    pattern_raw = torch.zeros((1, channels, height, width), requires_grad=True)
    optimizer = torch.optim.Adam([mask_raw, pattern_raw], lr=0.1)
    target = torch.full((min(len(data), 64),), label, dtype=torch.long)
    cost = 1e-3
    best: tuple[float, float, torch.Tensor | None, torch.Tensor | None] = (math.inf, 0.0, None, None)
    generator = torch.Generator().manual_seed(label)
    for step in range(steps):
        if time.monotonic() > deadline:
            break
        batch = data[torch.randint(len(data), (len(target),), generator=generator)]
        mask, pattern = torch.sigmoid(mask_raw), torch.sigmoid(pattern_raw)
        logits = model((1 - mask) * batch + mask * pattern)
        norm = mask.sum()
        loss = torch.nn.functional.cross_entropy(logits, target) + cost * norm
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        success = float((logits.argmax(1) == target).float().mean())
        size = float(norm.detach())
        if success >= MIN_SUCCESS and size < best[0]:
            best = (size, success, mask.detach().clone(), pattern.detach().clone())
        if step % 10 == 9:  # Neural Cleanse's adaptive cost: push the mask down while the attack works
            cost = cost * 1.5 if success >= MIN_SUCCESS else cost / 1.5
    if best[2] is None or best[3] is None:
        full = float(height * width)
        return LabelTrigger(label, full, 0.0, np.ones((height, width)), np.zeros((channels, height, width)))
    mask_np = best[2][0, 0].numpy().astype(np.float64)
    return LabelTrigger(label, best[0], best[1], mask_np, best[3][0].numpy().astype(np.float64))


# ------------------------------------------------------------------------------ model rebuilding

_NATURAL = re.compile(r"(\d+)")


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in _NATURAL.split(name)]


def build_cnn(state: dict[str, Any], input_shape: tuple[int, int, int], arch: str | None = None) -> torch.nn.Module:
    """A ``torch.nn.Sequential`` for a plain CNN state dict (weights only, nothing executed).

    ``arch`` is a comma-separated op list (``conv,relu,pool,conv,relu,pool,flatten,linear,relu,linear``);
    without it, ReLU follows every layer but the last and max-pools are placed so the flattened size
    matches the first linear layer (refused when more than one placement fits).
    """
    import torch

    convs = sorted(
        {n[: -len(".weight")] for n, t in state.items() if n.endswith(".weight") and t.dim() == 4}, key=_natural
    )
    linears = sorted(
        {n[: -len(".weight")] for n, t in state.items() if n.endswith(".weight") and t.dim() == 2}, key=_natural
    )
    if not linears:
        raise UsageError(
            "deep scan: no linear classifier layer in the weights", hint="--deep needs an image classifier"
        )
    ops = arch.split(",") if arch else _infer_ops(state, convs, linears, input_shape)
    layers: list[torch.nn.Module] = []
    conv_iter, lin_iter = iter(convs), iter(linears)
    for op in (o.strip() for o in ops):
        if op == "conv":
            layers.append(_conv(state, next(conv_iter)))
        elif op == "linear":
            layers.append(_linear(state, next(lin_iter)))
        elif op == "relu":
            layers.append(torch.nn.ReLU())
        elif op == "pool":
            layers.append(torch.nn.MaxPool2d(2))
        elif op == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            raise UsageError(f"deep scan: unknown op {op!r} in --arch", hint="ops: conv, relu, pool, flatten, linear")
    return torch.nn.Sequential(*layers)


def _infer_ops(state: dict[str, Any], convs: list[str], linears: list[str], shape: tuple[int, int, int]) -> list[str]:
    first_in = int(state[linears[0] + ".weight"].shape[1])
    fits: list[list[bool]] = []
    for bits in range(1 << len(convs)):
        pools = [bool(bits >> i & 1) for i in range(len(convs))]
        height, width, channels = shape[1], shape[2], shape[0]
        for conv, pool in zip(convs, pools, strict=True):
            channels = int(state[conv + ".weight"].shape[0])
            height, width = (height // 2, width // 2) if pool else (height, width)
        if channels * height * width == first_in:
            fits.append(pools)
    if len(fits) != 1:
        raise UsageError(
            f"deep scan: cannot infer where max-pools go ({len(fits)} placements fit)",
            hint="give --arch, e.g. conv,relu,pool,conv,relu,pool,flatten,linear,relu,linear",
        )
    ops: list[str] = []
    for pool in fits[0]:
        ops += ["conv", "relu"] + (["pool"] if pool else [])
    ops.append("flatten")
    for index in range(len(linears)):
        ops += ["linear"] + (["relu"] if index < len(linears) - 1 else [])
    return ops


def _conv(state: dict[str, Any], name: str) -> torch.nn.Module:
    import torch

    weight = state[name + ".weight"]
    out_c, in_c, kh, kw = (int(d) for d in weight.shape)
    layer = torch.nn.Conv2d(in_c, out_c, (kh, kw), padding=(kh // 2, kw // 2), bias=name + ".bias" in state)
    _load(layer, state, name)
    return layer


def _linear(state: dict[str, Any], name: str) -> torch.nn.Module:
    import torch

    out_f, in_f = (int(d) for d in state[name + ".weight"].shape)
    layer = torch.nn.Linear(in_f, out_f, bias=name + ".bias" in state)
    _load(layer, state, name)
    return layer


def _load(layer: torch.nn.Module, state: dict[str, Any], name: str) -> None:
    import torch

    with torch.no_grad():
        layer.weight.copy_(state[name + ".weight"])  # type: ignore[operator]
        if name + ".bias" in state:
            layer.bias.copy_(state[name + ".bias"])  # type: ignore[operator]


def load_state(path: str | Path) -> dict[str, Any]:
    """Tensors of a safetensors file as torch tensors, decoded from bytes (no pickle, nothing executed)."""
    import torch

    from modelshield.tamper.numerics import decodable, iter_chunks
    from modelshield.tamper.tensors import open_table

    table = open_table(path)
    state: dict[str, Any] = {}
    with open(path, "rb") as stream:
        fd = stream.fileno()
        for ref in table.tensors.values():
            if not decodable(ref):
                raise UsageError(f"deep scan: tensor {ref.name} has dtype {ref.dtype} that cannot be decoded")
            rows = [c.values for c in iter_chunks(fd, ref)]
            values = np.concatenate(rows).reshape(ref.shape) if rows else np.zeros(ref.shape)
            state[ref.name] = torch.as_tensor(values, dtype=torch.float32)
    return state


# ------------------------------------------------------------------------------ trigger image


def save_trigger_png(trigger: LabelTrigger, path: str | Path, *, scale: int = 8) -> Path:
    """Write ``mask * pattern`` (the stamped trigger) as an RGB PNG, upscaled ``scale`` times."""
    image = trigger.mask[None, :, :] * trigger.pattern
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
    pixels = (np.clip(image[:3], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    target = Path(path)
    target.write_bytes(data)
    return target
