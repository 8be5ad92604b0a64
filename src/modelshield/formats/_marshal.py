"""A minimal reader of Python's ``marshal`` format that extracts strings, never builds code.

Keras Lambda layers carry ``marshal.dumps(func.__code__)`` in base64. ``marshal.loads`` on
untrusted bytes is unsafe in-process, so this module walks the serialization itself and
collects what a reviewer needs: the global/attribute names a function uses (``co_names``),
its string constants and the names of nested functions. Code object layouts of CPython 3.8-3.10
and 3.11+ are tried in turn; when neither parses, printable strings are carved from the bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from modelshield.errors import FormatError

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
_FLAG_REF = 0x80
_SIMPLE = {ord("0"): None, ord("N"): None, ord("F"): False, ord("T"): True, ord("S"): None, ord("."): None}


@dataclass
class MarshalSummary:
    """What a marshalled code object reveals: names used, string constants, function names."""

    names: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    parsed: bool = True

    def all_strings(self) -> list[str]:
        """Names, constants and function names, in that order, without duplicates."""
        return list(dict.fromkeys([*self.names, *self.strings, *self.functions]))


@dataclass
class _Code:
    names: tuple[object, ...]
    consts: tuple[object, ...]
    name: object


class _Reader:
    def __init__(self, data: bytes, layout: int) -> None:
        self.data = data
        self.pos = 0
        self.refs: list[object] = []
        self.count = 0
        self.layout = layout  # number of int32 fields before co_code (5: 3.11+, 6: 3.8-3.10)
        self.summary = MarshalSummary()

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise FormatError(f"marshal data truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def int32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def length(self, short: bool = False) -> int:
        size = self.take(1)[0] if short else self.int32()
        if size < 0 or size > len(self.data):
            raise FormatError(f"marshal length {size} out of range at byte {self.pos}")
        return size

    def obj(self, depth: int = 0) -> object:
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_OBJECTS:
            raise FormatError("marshal data nested too deeply or too large")
        code = self.take(1)[0]
        flag, kind = code & _FLAG_REF, chr(code & ~_FLAG_REF)
        slot = len(self.refs)
        if flag:
            self.refs.append(None)
        value = self._value(kind, code & ~_FLAG_REF, depth)
        if flag:
            self.refs[slot] = value
        return value

    def _value(self, kind: str, code: int, depth: int) -> object:
        if code in _SIMPLE:
            return _SIMPLE[code]
        if kind == "i":
            return self.int32()
        if kind == "I":
            return struct.unpack("<q", self.take(8))[0]
        if kind == "g":
            return struct.unpack("<d", self.take(8))[0]
        if kind == "y":
            self.take(16)
            return None
        if kind in "fx":
            for _ in range(2 if kind == "x" else 1):
                self.take(self.length(short=True))
            return None
        if kind == "l":
            self.take(2 * abs(self.int32()))
            return 0
        if kind in "stuaAzZ":
            raw = self.take(self.length(short=kind in "zZ"))
            return raw if kind == "s" else raw.decode("utf-8", "surrogatepass")
        if kind == "r":
            index = self.int32()
            if not 0 <= index < len(self.refs):
                raise FormatError(f"marshal back-reference {index} out of range")
            return self.refs[index]
        if kind in "([<>)":
            size = self.length(short=kind == ")")
            return tuple(self.obj(depth + 1) for _ in range(size))
        if kind == "{":
            items = []
            while self.data[self.pos : self.pos + 1] != b"0":
                items.append((self.obj(depth + 1), self.obj(depth + 1)))
            self.pos += 1
            return tuple(items)
        if kind == "c":
            return self._code(depth)
        raise FormatError(f"unknown marshal type {kind!r} at byte {self.pos - 1}")

    def _code(self, depth: int) -> _Code:
        for _ in range(self.layout):
            self.int32()
        self.obj(depth + 1)  # co_code
        consts = self.obj(depth + 1)
        names = self.obj(depth + 1)
        tail = 4 if self.layout == 5 else 5  # localsplus names/kinds, filename; or varnames..filename
        for _ in range(tail - 1):
            self.obj(depth + 1)
        name = self.obj(depth + 1)
        if self.layout == 5:
            self.obj(depth + 1)  # qualname
        self.int32()  # firstlineno
        self.obj(depth + 1)  # linetable / lnotab
        if self.layout == 5:
            self.obj(depth + 1)  # exception table
        if not isinstance(consts, tuple) or not isinstance(names, tuple):
            raise FormatError("marshal code object without consts/names tuples")
        summary = self.summary
        summary.names.extend(n for n in names if isinstance(n, str))
        summary.strings.extend(c for c in consts if isinstance(c, str))
        if isinstance(name, str):
            summary.functions.append(name)
        return _Code(names, consts, name)


_PRINTABLE = re.compile(rb"[\x20-\x7e]{3,}")


def marshal_strings(data: bytes) -> MarshalSummary:
    """Names and string constants of a marshalled code object, without unmarshalling it."""
    for layout in (5, 6):
        reader = _Reader(data, layout)
        try:
            top = reader.obj()
        except (FormatError, UnicodeDecodeError, IndexError):
            continue
        if isinstance(top, _Code) and reader.pos == len(data):
            return reader.summary
    carved = [m.decode("ascii") for m in _PRINTABLE.findall(data)]
    return MarshalSummary(strings=list(dict.fromkeys(carved))[:500], parsed=False)
