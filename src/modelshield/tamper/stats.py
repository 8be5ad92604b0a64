"""Reference-free weight statistics per tensor, and how each tensor sits among its peers.

Informational only (never a verdict): mean, standard deviation, excess kurtosis, outlier rows
(rows whose norm is far above the tensor's median row norm), and a robust z-score of each tensor's
kurtosis among the tensors of the same kind in other layers. For classifiers, the output layer's
per-class row norms (a trojan's target class often stands out). Streamed in row chunks.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from modelshield.tamper.numerics import decodable, iter_chunks, matrix_shape
from modelshield.tamper.structure import stacks
from modelshield.tamper.tensors import TensorRef, open_table

#: Row norms above median + this many MADs count as outlier rows.
ROW_OUTLIER_MADS = 8.0
#: Peers with near-identical kurtosis (Gaussian init) would make any wobble an outlier; floor their spread.
KURTOSIS_MAD_FLOOR = 0.25


@dataclass(frozen=True, slots=True)
class TensorStats:
    """Statistics of one tensor. ``peer_z`` is the robust z-score of its kurtosis among its peers."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    mean: float
    std: float
    kurtosis: float
    outlier_rows: int
    max_row_z: float
    peer_z: float | None = None


def tensor_stats(fd: int, ref: TensorRef) -> TensorStats:
    """Moments and outlier rows of one tensor, streamed."""
    n, s1, s2 = 0, 0.0, 0.0
    norms: list[np.ndarray] = []
    for chunk in iter_chunks(fd, ref):
        values = np.nan_to_num(chunk.values, nan=0.0, posinf=0.0, neginf=0.0)
        n += values.size
        s1 += float(values.sum())
        s2 += float(np.square(values).sum())
        norms.append(np.sqrt(np.square(values).sum(axis=1)))
    mean = s1 / max(n, 1)
    var = max(s2 / max(n, 1) - mean * mean, 0.0)
    s4 = 0.0
    for chunk in iter_chunks(fd, ref):
        values = np.nan_to_num(chunk.values, nan=0.0, posinf=0.0, neginf=0.0)
        s4 += float(np.power(values - mean, 4).sum())
    kurt = s4 / max(n, 1) / (var * var) - 3.0 if var > 0 else 0.0
    row = np.concatenate(norms) if norms else np.zeros(0)
    outliers, max_z = _row_outliers(row) if matrix_shape(ref)[1] > 1 else (0, 0.0)
    return TensorStats(ref.name, ref.dtype, ref.shape, mean, float(np.sqrt(var)), kurt, outliers, max_z)


def _row_outliers(norms: np.ndarray) -> tuple[int, float]:
    if norms.size < 4:
        return 0, 0.0
    median = float(np.median(norms))
    mad = float(np.median(np.abs(norms - median))) * 1.4826
    if mad == 0:
        return 0, 0.0
    z = (norms - median) / mad
    return int(np.count_nonzero(z > ROW_OUTLIER_MADS)), float(z.max())


def model_stats(path: str | os.PathLike[str]) -> list[TensorStats]:
    """Statistics of every decodable tensor of a model, with peer z-scores across layers."""
    import dataclasses

    table = open_table(path)
    out: list[TensorStats] = []
    fds: dict[str, int] = {}
    try:
        for ref in table.tensors.values():
            if decodable(ref) and ref.numel:
                fd = fds.setdefault(ref.file, os.open(ref.file, os.O_RDONLY))
                out.append(tensor_stats(fd, ref))
    finally:
        for fd in fds.values():
            os.close(fd)
    peers: dict[str, list[int]] = defaultdict(list)
    suffix_of = {
        f"{p}.{i}.{s}": s for p, layers in stacks(table.tensors).items() for i, ss in layers.items() for s in ss
    }
    for index, item in enumerate(out):
        if item.name in suffix_of:
            peers[suffix_of[item.name]].append(index)
    for members in peers.values():
        if len(members) < 4:
            continue
        values = np.array([out[i].kurtosis for i in members])
        median = float(np.median(values))
        mad = max(float(np.median(np.abs(values - median))) * 1.4826, KURTOSIS_MAD_FLOOR)
        for i, value in zip(members, values, strict=True):
            out[i] = dataclasses.replace(out[i], peer_z=float((value - median) / mad))
    return out


def render_stats(items: list[TensorStats], *, top: int = 15) -> str:
    """A text table: distribution over the model, then the most unusual tensors."""
    if not items:
        return "no decodable tensors\n"
    kurt = np.array([s.kurtosis for s in items])
    lines = [
        f"{len(items)} tensors; kurtosis median {np.median(kurt):.2f}, p90 {np.percentile(kurt, 90):.2f}, "
        f"max {kurt.max():.2f}; outlier rows in {sum(1 for s in items if s.outlier_rows)} tensors",
        "informational only: scores are not calibrated and are never a verdict",
        f"{'tensor':60} {'mean':>10} {'std':>10} {'kurt':>8} {'peer z':>7} {'out rows':>8}",
    ]
    ranked = sorted(items, key=lambda s: -abs(s.peer_z or 0.0) - s.outlier_rows)
    for s in ranked[:top]:
        z = "" if s.peer_z is None else f"{s.peer_z:.1f}"
        lines.append(f"{s.name[:60]:60} {s.mean:10.3e} {s.std:10.3e} {s.kurtosis:8.2f} {z:>7} {s.outlier_rows:8d}")
    return "\n".join(lines) + "\n"
