"""Compare one tensor of a candidate with the same tensor of a reference, streamed in row chunks.

Pass 1 reads both tensors chunk by chunk (skipping byte-identical chunks), counts changed elements
and elements beyond one rounding step of each float format, and accumulates a random sketch
``Y = D @ Omega`` of the change ``D``. Pass 2 (only for matrices changed beyond rounding) projects
``D`` onto the sketch's range and takes the SVD of that small matrix: its singular values give the
effective rank of the change. Memory: one chunk of rows plus the sketch (rows x 40).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from modelshield.tamper.numerics import (
    CHUNK_ELEMENTS,
    F64,
    MANTISSA,
    Chunk,
    decodable,
    decode_rows,
    matrix_shape,
    read_rows,
    representable,
    round_to,
    ulp,
)
from modelshield.tamper.tensors import TensorRef

#: Columns of the random sketch (ranks up to SKETCH - 8 are measured, beyond is "high rank").
SKETCH = 40
MAX_LOW_RANK = 32
#: Singular values below this fraction of the largest are numerical noise.
REL_TOL = 1e-3
FORMATS = ("BF16", "F16", "F32")


@dataclass(frozen=True, slots=True)
class TensorDelta:
    """How one tensor differs between reference and candidate.

    ``status``: identical, rounding (every change within one rounding step of ``round_fmt``),
    changed, reshaped, retyped (dtype changed and values not comparable), added, removed, unreadable.
    ``rank`` is the effective rank of the change for matrices (None otherwise); ``high_rank`` means
    more than :data:`MAX_LOW_RANK`. ``energy`` is the share of the change's squared norm in that rank.
    """

    name: str
    status: str
    ref_dtype: str = ""
    cand_dtype: str = ""
    ref_shape: tuple[int, ...] = ()
    cand_shape: tuple[int, ...] = ()
    numel: int = 0
    frac_changed: float = 0.0
    frac_beyond: float = 0.0
    rel_change: float = 0.0
    max_abs: float = 0.0
    rank: int | None = None
    high_rank: bool = False
    energy: float = 0.0
    round_fmt: str = ""
    exact_rounding: bool = False
    note: str = ""

    @property
    def low_rank(self) -> bool:
        """True for a matrix changed by a change of rank <= MAX_LOW_RANK and at most half its smaller side."""
        if self.rank is None or self.high_rank or self.status != "changed":
            return False
        rows, cols = self.ref_shape[0], self.numel // max(self.ref_shape[0], 1)
        return self.rank <= min(MAX_LOW_RANK, max(1, min(rows, cols) // 2))


@dataclass(slots=True)
class _Pass1:
    rows: int
    cols: int
    numel: int = 0
    changed: int = 0
    sumsq_d: float = 0.0
    sumsq_r: float = 0.0
    max_abs: float = 0.0
    beyond: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    exact: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    noise: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0.0))
    noise_q: float = 0.0
    rep: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FORMATS, True))
    sketch: npt.NDArray[np.float32] | None = None
    omega: F64 | None = None


def compare_tensor(ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int) -> TensorDelta:
    """Compare ``cand`` with ``ref`` (same name); the files are open as ``fd_ref`` and ``fd_cand``."""
    base = TensorDelta(ref.name, "identical", ref.dtype, cand.dtype, ref.shape, cand.shape, ref.numel)
    if ref.shape != cand.shape:
        return _replace(base, status="reshaped", note=f"{list(ref.shape)} -> {list(cand.shape)}")
    if not (decodable(ref) and decodable(cand)):
        return _compare_bytes(base, ref, cand, fd_ref, fd_cand)
    acc = _first_pass(ref, cand, fd_ref, fd_cand)
    return _conclude(base, acc, ref, cand, fd_ref, fd_cand)


def _replace(delta: TensorDelta, **changes: object) -> TensorDelta:
    import dataclasses

    return dataclasses.replace(delta, **changes)  # type: ignore[arg-type]


def _compare_bytes(base: TensorDelta, ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int) -> TensorDelta:
    if ref.dtype != cand.dtype or ref.nbytes != cand.nbytes:
        return _replace(base, status="retyped", note=f"{ref.dtype} -> {cand.dtype}: values not decodable")
    differ, chunk = 0, 1 << 22
    for start in range(0, ref.nbytes, chunk):
        size = min(chunk, ref.nbytes - start)
        a = os.pread(fd_ref, size, ref.offset + start)
        b = os.pread(fd_cand, size, cand.offset + start)
        if a != b:
            differ += int(np.count_nonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8)))
    if not differ:
        return base
    frac = differ / max(ref.nbytes, 1)
    return _replace(base, status="changed", frac_changed=frac, frac_beyond=frac, note=f"{ref.dtype}: bytes compared")


def _first_pass(ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int) -> _Pass1:
    rows, cols = matrix_shape(ref)
    acc = _Pass1(rows, cols, numel=rows * cols)
    if min(rows, cols) >= 2:
        seed = int.from_bytes(hashlib.sha256(ref.name.encode()).digest()[:8], "little")
        acc.omega = np.random.default_rng(seed).standard_normal((cols, min(SKETCH, rows, cols)))
    for a, b in _changed_chunks(ref, cand, fd_ref, fd_cand):
        _accumulate(acc, a.values, b.values, a.step, b.step, a.start)
    return acc


def _changed_chunks(ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int) -> Iterator[tuple[Chunk, Chunk]]:
    """Decoded row chunks of both tensors, skipping chunks whose bytes are identical."""
    rows, cols = matrix_shape(ref)
    per = max(1, CHUNK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, per):
        stop = min(rows, start + per)
        raw_a, raw_b = read_rows(fd_ref, ref, start, stop), read_rows(fd_cand, cand, start, stop)
        if ref.dtype == cand.dtype and raw_a == raw_b:
            continue
        yield decode_rows(raw_a, ref, start, stop), decode_rows(raw_b, cand, start, stop)


def _accumulate(acc: _Pass1, r: F64, c: F64, step_r: F64 | None, step_c: F64 | None, start: int) -> None:
    equal = (r == c) | (np.isnan(r) & np.isnan(c))
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(equal, 0.0, c - r)
    bad = ~np.isfinite(d)
    d[bad] = 0.0
    n_bad = int(bad.sum())
    acc.changed += int(np.count_nonzero(~equal))
    acc.sumsq_d += float(np.square(d).sum())
    acc.sumsq_r += float(np.square(np.nan_to_num(r, posinf=0.0, neginf=0.0)).sum())
    acc.max_abs = max(acc.max_abs, float(np.abs(d).max(initial=0.0)))
    mag = np.nan_to_num(np.maximum(np.abs(r), np.abs(c)), nan=0.0, posinf=0.0)
    quant = _max_step(step_r, step_c)
    if quant is not None:
        acc.noise_q += float(np.square(quant).sum()) / 12.0
    absd = np.abs(d)
    for fmt in FORMATS:
        allowed = ulp(mag, fmt) if quant is None else np.maximum(ulp(mag, fmt), quant)
        acc.beyond[fmt] += int(np.count_nonzero(absd > allowed)) + n_bad
        acc.exact[fmt] += int(np.count_nonzero((round_to(r, fmt) == c) | equal))
        acc.noise[fmt] += float(np.square(ulp(np.abs(np.nan_to_num(r)), fmt)).sum()) / 12.0
        acc.rep[fmt] = acc.rep[fmt] and representable(c, fmt)
    if acc.omega is not None:
        if acc.sketch is None:
            acc.sketch = np.zeros((acc.rows, acc.omega.shape[1]), dtype=np.float32)
        acc.sketch[start : start + d.shape[0]] += d @ acc.omega


def _max_step(a: F64 | None, b: F64 | None) -> F64 | None:
    if a is None:
        return b
    return a if b is None else np.maximum(a, b)


def _round_format(cand: TensorRef, acc: _Pass1) -> str:
    """The float format the candidate's values live in: the coarsest one that represents all of them.

    Values exactly representable in bfloat16 went through bfloat16 (or a coarser step); a change
    within one step of that format is a conversion, not an edit.
    """
    if acc.rep["BF16"]:
        return "BF16"
    if acc.rep["F16"]:
        return "F16"
    return cand.dtype if cand.dtype in ("BF16", "F16", "F32") else "F32"


def _conclude(
    base: TensorDelta, acc: _Pass1, ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int
) -> TensorDelta:
    if acc.changed == 0:
        return base
    fmt = _round_format(cand, acc)
    delta = _replace(
        base,
        frac_changed=acc.changed / max(acc.numel, 1),
        frac_beyond=acc.beyond[fmt] / max(acc.numel, 1),
        rel_change=float(np.sqrt(acc.sumsq_d / acc.sumsq_r)) if acc.sumsq_r > 0 else float("inf"),
        max_abs=acc.max_abs,
        round_fmt=fmt,
        exact_rounding=acc.exact[fmt] == acc.numel and fmt in MANTISSA,
    )
    if acc.beyond[fmt] == 0:
        return _replace(delta, status="rounding")
    delta = _replace(delta, status="changed")
    if acc.sketch is None:
        return delta
    noise = acc.noise[fmt] if fmt in ("BF16", "F16") else 0.0
    return _rank(delta, acc, ref, cand, fd_ref, fd_cand, noise + acc.noise_q)


def _rank(
    delta: TensorDelta, acc: _Pass1, ref: TensorRef, cand: TensorRef, fd_ref: int, fd_cand: int, noise: float
) -> TensorDelta:
    assert acc.sketch is not None
    q, _ = np.linalg.qr(acc.sketch.astype(np.float64))  # float32 QR is pathologically slow in some builds
    projected = np.zeros((q.shape[1], acc.cols))
    for a, b in _changed_chunks(ref, cand, fd_ref, fd_cand):
        equal = (a.values == b.values) | (np.isnan(a.values) & np.isnan(b.values))
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.where(equal, 0.0, b.values - a.values)
        d[~np.isfinite(d)] = 0.0
        projected += q[a.start : a.stop].T @ d
    singular = np.linalg.svd(projected, compute_uv=False)
    if not singular.size or singular[0] == 0:
        return delta
    sigma = np.sqrt(noise / max(acc.numel, 1))
    edge = 1.5 * sigma * (np.sqrt(acc.rows) + np.sqrt(acc.cols))
    tol = max(singular[0] * REL_TOL, edge)
    rank = int(np.count_nonzero(singular > tol))
    energy = float(np.square(singular[:rank]).sum() / acc.sumsq_d) if acc.sumsq_d else 0.0
    high = rank > MAX_LOW_RANK or (rank == len(singular) and len(singular) >= SKETCH)
    return _replace(delta, rank=rank, high_rank=high, energy=min(energy, 1.0))
