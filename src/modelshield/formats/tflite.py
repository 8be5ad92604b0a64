"""TensorFlow Lite flatbuffers (``TFL3`` file identifier at offset 4): custom ops listed and judged.

Only the ``operator_codes`` table of the Model is read (random access with bounds checks; tensor
buffers are never loaded). Flex ops (``Flex<TensorFlowOp>``) run full TensorFlow kernels through
the Flex delegate, so a Flex op that is a Python or file-system op is judged like the op itself;
other custom ops need a native kernel registered by the application (medium).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._sniff import sniff_tflite
from modelshield.formats._tf_ops import TF_OPS
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.tensorflow import _FILE_OPS, _PYTHON_OPS, FILE_OP, PYTHON_OP
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

BUILTIN_CUSTOM = 32
MAX_OPERATOR_CODES = 100_000
#: Custom ops shipped with TFLite's own op resolver or its common support libraries.
KNOWN_CUSTOM_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess",
        "Mfcc",
        "AudioSpectrogram",
        "MaxPoolingWithArgmax2D",
        "MaxUnpooling2D",
        "Convolution2DTransposeBias",
        "RandomUniform",
        "RandomStandardNormal",
        "Multinomial",
        "Atan2",
        "Sign",
        "Irfft2d",
        "Rfft2d",
        "ImageProjectiveTransformV2",
        "ImageProjectiveTransformV3",
        "SentencepieceTokenizeOp",
        "TFSentencepieceTokenizeOp",
        "WhitespaceTokenizer",
        "NgramsStringJoin",
        "RaggedTensorToTensor",
    }
)

CUSTOM_OP = rule(
    "TFLITE-CUSTOM-OP",
    "TFLite model needs a custom op",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "The model uses a custom operator that is not part of TFLite; the application must register "
    "a native kernel for it, which is not shipped or reviewed here.",
    "Find out which library provides the op and review it before loading.",
)


class FlatBuffer:
    """Random access to a flatbuffer in a stream, every offset checked against the size."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size

    def read(self, pos: int, n: int) -> bytes:
        """``n`` bytes at ``pos`` or FormatError."""
        if pos < 0 or n < 0 or pos + n > self.size:
            raise FormatError(f"flatbuffer offset {pos}+{n} outside the file ({self.size} bytes)")
        self.stream.seek(pos)
        data = self.stream.read(n)
        if len(data) != n:
            raise FormatError(f"flatbuffer truncated at {pos}")
        return data

    def u32(self, pos: int) -> int:
        """Unsigned 32-bit little-endian at ``pos``."""
        return int(struct.unpack("<I", self.read(pos, 4))[0])

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table`` (None when absent)."""
        (soffset,) = struct.unpack("<i", self.read(table, 4))
        vtable = table - soffset
        vsize = struct.unpack("<H", self.read(vtable, 2))[0]
        if vsize < 4 or vsize % 2:
            raise FormatError(f"flatbuffer vtable at {vtable} has bad size {vsize}")
        slot = 4 + 2 * index
        if slot + 2 > vsize:
            return None
        (offset,) = struct.unpack("<H", self.read(vtable + slot, 2))
        return table + offset if offset else None

    def deref(self, pos: int) -> int:
        """Follow the uoffset stored at ``pos``."""
        return pos + self.u32(pos)

    def vector(self, pos: int, limit: int) -> list[int]:
        """Positions of the elements of the vector of offsets referenced at ``pos``."""
        start = self.deref(pos)
        count = self.u32(start)
        if count > limit or count * 4 > self.size:
            raise LimitExceeded("max_members", limit, f"flatbuffer vector of {count} entries")
        return [start + 4 + 4 * i for i in range(count)]

    def string(self, pos: int, limit: int = 4096) -> str:
        """The string referenced at ``pos`` (truncated to ``limit`` bytes)."""
        start = self.deref(pos)
        length = self.u32(start)
        return self.read(start + 4, min(length, limit)).decode("utf-8", "replace")


def operator_codes(buf: FlatBuffer) -> list[tuple[int, str | None]]:
    """(builtin code, custom code) of every OperatorCode of the Model."""
    model = buf.deref(0)
    codes_field = buf.field(model, 1)
    if codes_field is None:
        return []
    out: list[tuple[int, str | None]] = []
    for element in buf.vector(codes_field, MAX_OPERATOR_CODES):
        table = buf.deref(element)
        deprecated = buf.field(table, 0)
        builtin_field = buf.field(table, 3)
        code = buf.read(deprecated, 1)[0] if deprecated is not None else 0
        if builtin_field is not None:
            code = max(code, struct.unpack("<i", buf.read(builtin_field, 4))[0])
        custom_field = buf.field(table, 1)
        out.append((code, buf.string(custom_field) if custom_field is not None else None))
    return out


def judge_custom(name: str, ctx: ScanContext) -> Finding | None:
    """A finding for one custom op name, or None when it is a standard one."""
    if name.startswith("Flex"):
        op = name[4:]
        if op in _PYTHON_OPS:
            return ctx.finding(PYTHON_OP.id, f"Flex op {name} runs Python code", evidence=name)
        if op in _FILE_OPS or op == "WriteFile":
            return ctx.finding(FILE_OP.id, f"Flex op {name} touches the file system", evidence=name)
        if op in TF_OPS:
            return None
    if name in KNOWN_CUSTOM_OPS:
        return None
    return ctx.finding(CUSTOM_OP.id, f"custom op {name!r} needs a native kernel", evidence=name)


@register_reader
class TfliteReader(Reader):
    """TFLite flatbuffer models."""

    name = "tflite"
    priority = 75

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """``TFL3`` at offset 4."""
        return sniff_tflite(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Judge every custom operator code."""
        with blob.open() as stream:
            codes = operator_codes(FlatBuffer(stream, blob.size))
        for code, custom in codes:
            if custom is not None and (code == BUILTIN_CUSTOM or custom):
                finding = judge_custom(custom, ctx)
                if finding is not None:
                    yield finding
