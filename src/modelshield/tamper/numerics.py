"""Decoding tensor bytes into numbers, chunk by chunk, and the rounding steps of float formats.

Needs numpy (the ``tamper`` extra). Bytes are read with ``os.pread`` in bounded chunks of rows, so
memory stays flat whatever the model size (page cache is not resident memory of the process).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modelshield.errors import FormatError
from modelshield.tamper.tensors import ITEMSIZE, TensorRef

F64 = npt.NDArray[np.float64]
#: Elements decoded per chunk (a few arrays of this many float64 stay well under 100 MiB).
CHUNK_ELEMENTS = 1 << 20
#: Mantissa bits of the float formats a round-trip can go through.
MANTISSA = {"BF16": 7, "F16": 10, "F32": 23, "F64": 52}
_MIN_ULP = {"BF16": 2.0**-133, "F16": 2.0**-24, "F32": 2.0**-149, "F64": 2.0**-1074}
_PLAIN = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "u1",
}
#: Quantised GGUF types decoded here: name -> (elements per block, bytes per block).
QUANT = {"Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20)}


def decodable(ref: TensorRef) -> bool:
    """True when the values of ``ref`` can be decoded (others are compared byte for byte)."""
    if not ref.contiguous:
        return False
    if ref.dtype in QUANT:
        block = QUANT[ref.dtype][0]
        return bool(ref.shape) and ref.shape[-1] % block == 0
    return ref.dtype in _PLAIN or ref.dtype == "BF16"


def matrix_shape(ref: TensorRef) -> tuple[int, int]:
    """The 2-D view used for rank analysis: ``(shape[0], rest)``; 1-D tensors are one column."""
    if not ref.shape:
        return 1, 1
    rest = 1
    for dim in ref.shape[1:]:
        rest *= dim
    return ref.shape[0], rest


def row_bytes(ref: TensorRef) -> int:
    """Bytes of one row of the 2-D view."""
    _, cols = matrix_shape(ref)
    if ref.dtype in QUANT:
        block, size = QUANT[ref.dtype]
        return cols // block * size
    return cols * ITEMSIZE[ref.dtype]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Decoded rows ``[start, stop)`` of a tensor; ``step`` is the quantisation step per element (or None)."""

    start: int
    stop: int
    values: F64
    step: F64 | None


def iter_chunks(fd: int, ref: TensorRef, rows_per_chunk: int | None = None) -> Iterator[Chunk]:
    """Decode ``ref`` from the open file ``fd`` in chunks of whole rows."""
    rows, cols = matrix_shape(ref)
    per = rows_per_chunk or max(1, CHUNK_ELEMENTS // max(cols, 1))
    for start in range(0, rows, per):
        stop = min(rows, start + per)
        yield decode_rows(read_rows(fd, ref, start, stop), ref, start, stop)


def read_rows(fd: int, ref: TensorRef, start: int, stop: int) -> bytes:
    """The raw bytes of rows ``[start, stop)`` of the 2-D view of ``ref``."""
    stride = row_bytes(ref)
    raw = os.pread(fd, (stop - start) * stride, ref.offset + start * stride)
    if len(raw) != (stop - start) * stride:
        raise FormatError(f"tensor {ref.name!r}: file ends inside its data (offset {ref.offset + start * stride})")
    return raw


def decode_rows(raw: bytes, ref: TensorRef, start: int, stop: int) -> Chunk:
    """Decode raw bytes of rows ``[start, stop)``."""
    _, cols = matrix_shape(ref)
    values, step = decode(raw, ref.dtype)
    return Chunk(start, stop, values.reshape(stop - start, cols), None if step is None else step.reshape(-1, cols))


def decode(raw: bytes, dtype: str) -> tuple[F64, F64 | None]:
    """Values (float64) and, for quantised blocks, the per-element step."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64), None
    if dtype in _PLAIN:
        return np.frombuffer(raw, dtype=_PLAIN[dtype]).astype(np.float64), None
    if dtype in QUANT:
        return _dequantize(raw, dtype)
    raise FormatError(f"dtype {dtype} cannot be decoded")


def _dequantize(raw: bytes, dtype: str) -> tuple[F64, F64]:
    block, size = QUANT[dtype]
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    scale = blocks[:, 0:2].copy().view("<f2").astype(np.float64)
    if dtype == "Q8_0":
        q = blocks[:, 2:].copy().view(np.int8).astype(np.float64)
        values = q * scale
    else:
        body = 2 if dtype == "Q4_0" else 4
        packed = blocks[:, body:]
        q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float64)
        if dtype == "Q4_0":
            values = (q - 8.0) * scale
        else:
            minimum = blocks[:, 2:4].copy().view("<f2").astype(np.float64)
            values = q * scale + minimum
    step = np.broadcast_to(np.abs(scale), (len(blocks), block))
    return values.reshape(-1), np.ascontiguousarray(step).reshape(-1)


def ulp(magnitude: F64, fmt: str) -> F64:
    """Spacing of ``fmt`` floats at ``magnitude`` (one rounding step)."""
    _, exponent = np.frexp(magnitude)
    spacing = np.ldexp(1.0, exponent - 1 - MANTISSA[fmt])
    out: F64 = np.maximum(spacing, _MIN_ULP[fmt])
    return out


def representable(values: F64, fmt: str) -> bool:
    """True when every finite value is exactly representable in ``fmt``."""
    finite = values[np.isfinite(values)]
    if fmt == "F64":
        return True
    as32 = finite.astype(np.float32)
    if fmt == "F32":
        return bool(np.array_equal(as32.astype(np.float64), finite))
    if fmt == "F16":
        return bool(np.array_equal(finite.astype(np.float16).astype(np.float64), finite))
    if not np.array_equal(as32.astype(np.float64), finite):
        return False
    return not bool(np.any(as32.view(np.uint32) & 0xFFFF))


def round_to(values: F64, fmt: str) -> F64:
    """Round to nearest (ties to even) into ``fmt`` and back to float64."""
    if fmt == "F64":
        return values
    if fmt == "F16":
        return values.astype(np.float16).astype(np.float64)
    as32 = values.astype(np.float32)
    if fmt == "F32":
        return as32.astype(np.float64)
    bits = as32.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).astype(np.float64)
    return np.where(np.isfinite(values), out, values)
