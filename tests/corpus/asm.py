"""A tiny pickle assembler: build opcode streams byte by byte, so a sample controls protocol and opcode path.

Two layers:

* :class:`Asm` appends raw opcodes (``a.op(...)``, ``a.global_(...)``, ``a.str(...)``) and returns the bytes.
* Expression values (:class:`G`, :class:`Call`, :class:`Attr`, plain ``str``/``int``/``bytes``/``tuple``/``list``/
  ``dict``/``None``/``bool``) compile to opcodes with :meth:`Asm.emit`, following the protocol's natural encoding.
  ``Raw`` drops hand-written bytes into an expression.
"""

from __future__ import annotations

import pickletools
import struct
from dataclasses import dataclass, field
from typing import Any

# Opcodes (see pickletools / Lib/pickle.py)
MARK = b"("
STOP = b"."
POP = b"0"
POP_MARK = b"1"
DUP = b"2"
FLOAT = b"F"
INT = b"I"
BININT = b"J"
BININT1 = b"K"
BININT2 = b"M"
LONG = b"L"
NONE = b"N"
PERSID = b"P"
BINPERSID = b"Q"
REDUCE = b"R"
STRING = b"S"
BINSTRING = b"T"
SHORT_BINSTRING = b"U"
UNICODE = b"V"
BINUNICODE = b"X"
APPEND = b"a"
BUILD = b"b"
GLOBAL = b"c"
DICT = b"d"
EMPTY_DICT = b"}"
APPENDS = b"e"
GET = b"g"
BINGET = b"h"
INST = b"i"
LONG_BINGET = b"j"
LIST = b"l"
EMPTY_LIST = b"]"
OBJ = b"o"
PUT = b"p"
BINPUT = b"q"
LONG_BINPUT = b"r"
SETITEM = b"s"
TUPLE = b"t"
EMPTY_TUPLE = b")"
SETITEMS = b"u"
BINFLOAT = b"G"
PROTO = b"\x80"
NEWOBJ = b"\x81"
EXT1 = b"\x82"
EXT2 = b"\x83"
EXT4 = b"\x84"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
LONG1 = b"\x8a"
LONG4 = b"\x8b"
BINBYTES = b"B"
SHORT_BINBYTES = b"C"
SHORT_BINUNICODE = b"\x8c"
BINUNICODE8 = b"\x8d"
BINBYTES8 = b"\x8e"
EMPTY_SET = b"\x8f"
ADDITEMS = b"\x90"
FROZENSET = b"\x91"
NEWOBJ_EX = b"\x92"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
FRAME = b"\x95"
BYTEARRAY8 = b"\x96"
NEXT_BUFFER = b"\x97"
READONLY_BUFFER = b"\x98"


@dataclass(frozen=True)
class G:
    """A global reference ``module.name`` (GLOBAL or STACK_GLOBAL depending on protocol/style)."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)`` compiled as ``func args-tuple REDUCE``."""

    func: Any
    args: tuple[Any, ...] = ()


def call(func: Any, *args: Any) -> Call:
    """Shorthand for :class:`Call`."""
    return Call(func, tuple(args))


def attr(obj: Any, name: str) -> Call:
    """``getattr(obj, name)`` through ``builtins.getattr``."""
    return Call(G("builtins", "getattr"), (obj, name))


def method(obj: Any, name: str, *args: Any) -> Call:
    """``getattr(obj, name)(*args)``."""
    return Call(attr(obj, name), tuple(args))


@dataclass(frozen=True)
class Raw:
    """Hand-written opcode bytes that push exactly one value."""

    data: bytes


@dataclass
class Asm:
    """Opcode buffer for one pickle stream at a given protocol."""

    proto: int = 4
    stack_global: bool | None = None  # None: STACK_GLOBAL for proto >= 4, GLOBAL otherwise
    buf: bytearray = field(default_factory=bytearray)

    # ---------------------------------------------------------------- raw opcodes
    def op(self, *parts: bytes) -> Asm:
        """Append raw bytes."""
        for part in parts:
            self.buf += part
        return self

    def header(self) -> Asm:
        """PROTO n for protocol >= 2 (protocols 0 and 1 have no header)."""
        if self.proto >= 2:
            self.op(PROTO, bytes([self.proto]))
        return self

    def str(self, text: str) -> Asm:
        """Push a ``str`` with the protocol's natural opcode."""
        data = text.encode("utf-8")
        if self.proto == 0:
            assert text.isascii() and "\n" not in text, "protocol-0 strings here are single-line ASCII"
            return self.op(STRING, ascii(text).encode("ascii"), b"\n")
        if self.proto >= 4 and len(data) < 256:
            return self.op(SHORT_BINUNICODE, bytes([len(data)]), data)
        return self.op(BINUNICODE, struct.pack("<I", len(data)), data)

    def int(self, value: int) -> Asm:
        """Push an ``int``."""
        if self.proto == 0:
            return self.op(INT, str(value).encode(), b"\n")
        if 0 <= value < 256:
            return self.op(BININT1, bytes([value]))
        if -(2**31) <= value < 2**31:
            return self.op(BININT, struct.pack("<i", value))
        raise ValueError("int out of range for this assembler")

    def bytes_(self, data: bytes) -> Asm:
        """Push ``bytes`` (protocol < 3 goes through ``_codecs.encode(str, 'latin1')`` as CPython does)."""
        if self.proto >= 3:
            if len(data) < 256:
                return self.op(SHORT_BINBYTES, bytes([len(data)]), data)
            return self.op(BINBYTES, struct.pack("<I", len(data)), data)
        return self.emit(Call(G("_codecs", "encode"), (data.decode("latin1"), "latin1")))

    def global_(self, module: str, name: str) -> Asm:
        """Push ``module.name`` with GLOBAL (text opcode)."""
        return self.op(GLOBAL, module.encode("utf-8"), b"\n", name.encode("utf-8"), b"\n")

    def stack_global_(self, module: str, name: str) -> Asm:
        """Push ``module.name`` with two strings and STACK_GLOBAL."""
        return self.str(module).str(name).op(STACK_GLOBAL)

    def put(self, index: int) -> Asm:
        """Store top of stack in memo[index] (PUT text for proto 0, BINPUT/LONG_BINPUT otherwise)."""
        if self.proto == 0:
            return self.op(PUT, str(index).encode(), b"\n")
        if index < 256:
            return self.op(BINPUT, bytes([index]))
        return self.op(LONG_BINPUT, struct.pack("<I", index))

    def get(self, index: int) -> Asm:
        """Push memo[index]."""
        if self.proto == 0:
            return self.op(GET, str(index).encode(), b"\n")
        if index < 256:
            return self.op(BINGET, bytes([index]))
        return self.op(LONG_BINGET, struct.pack("<I", index))

    def stop(self) -> Asm:
        """STOP."""
        return self.op(STOP)

    # ---------------------------------------------------------------- expressions
    def emit(self, value: Any) -> Asm:
        """Compile an expression value to opcodes that push it."""
        if isinstance(value, Raw):
            return self.op(value.data)
        if isinstance(value, G):
            use_stack = self.stack_global if self.stack_global is not None else self.proto >= 4
            return self.stack_global_(value.module, value.name) if use_stack else self.global_(value.module, value.name)
        if isinstance(value, Call):
            self.emit(value.func)
            self.tuple_(value.args)
            return self.op(REDUCE)
        if value is None:
            return self.op(NONE)
        if isinstance(value, bool):
            if self.proto >= 2:
                return self.op(NEWTRUE if value else NEWFALSE)
            return self.op(INT, b"01\n" if value else b"00\n")
        if isinstance(value, int):
            return self.int(value)
        if isinstance(value, float):
            if self.proto == 0:
                return self.op(FLOAT, repr(value).encode(), b"\n")
            return self.op(BINFLOAT, struct.pack(">d", value))
        if isinstance(value, str):
            return self.str(value)
        if isinstance(value, bytes):
            return self.bytes_(value)
        if isinstance(value, tuple):
            return self.tuple_(value)
        if isinstance(value, list):
            return self.list_(value)
        if isinstance(value, dict):
            return self.dict_(value)
        raise TypeError(f"cannot emit {type(value).__name__}")

    def tuple_(self, items: tuple[Any, ...]) -> Asm:
        """Push a tuple of expressions."""
        if self.proto >= 2 and len(items) <= 3:
            for item in items:
                self.emit(item)
            return self.op([EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3][len(items)])
        if self.proto >= 1 and not items:
            return self.op(EMPTY_TUPLE)
        self.op(MARK)
        for item in items:
            self.emit(item)
        return self.op(TUPLE)

    def list_(self, items: list[Any]) -> Asm:
        """Push a list of expressions."""
        if self.proto == 0:
            self.op(MARK)
            for item in items:
                self.emit(item)
            return self.op(LIST)
        self.op(EMPTY_LIST, MARK)
        for item in items:
            self.emit(item)
        return self.op(APPENDS)

    def dict_(self, items: dict[Any, Any]) -> Asm:
        """Push a dict of expressions."""
        if self.proto == 0:
            self.op(MARK)
            for key, val in items.items():
                self.emit(key).emit(val)
            return self.op(DICT)
        self.op(EMPTY_DICT, MARK)
        for key, val in items.items():
            self.emit(key).emit(val)
        return self.op(SETITEMS)

    def build(self, frame: bool | int = False) -> bytes:
        """Return the stream bytes. ``frame``: wrap the body (after PROTO) in FRAMEs (True: one; int: frame size)."""
        data = bytes(self.buf)
        if not frame:
            return data
        assert self.proto >= 4 and data[:1] == PROTO
        head, body = data[:2], data[2:]
        if frame is True:
            return head + FRAME + struct.pack("<Q", len(body)) + body
        # split at opcode boundaries into frames of about ``frame`` bytes (opcodes never straddle frames)
        cuts = [pos - 2 for _, _, pos in pickletools.genops(data) if pos >= 2] + [len(body)]
        out, start = bytearray(head), 0
        for cut in cuts[1:]:
            if cut - start >= int(frame) or cut == len(body):
                out += FRAME + struct.pack("<Q", cut - start) + body[start:cut]
                start = cut
        return bytes(out)


def program(value: Any, proto: int = 4, *, frame: bool | int = False, stack_global: bool | None = None) -> bytes:
    """A whole stream that evaluates ``value`` and returns it: header, expression, STOP."""
    asm = Asm(proto, stack_global)
    asm.header().emit(value).stop()
    return asm.build(frame=frame and proto >= 4)
