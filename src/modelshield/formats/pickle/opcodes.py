"""The pickle opcode table (protocols 0-5), as data.

The facts come from the pickle format specification (CPython ``Lib/pickletools.py``): each
opcode byte, its name, the protocol that introduced it and how its inline argument is encoded.
The VM decodes arguments by :class:`ArgKind` and dispatches on the opcode byte.
"""

from __future__ import annotations

import enum

from modelshield._record import record


class ArgKind(enum.IntEnum):
    """How an opcode's inline argument is encoded in the byte stream."""

    NONE = 0  #: no argument
    U1 = 1  #: unsigned byte
    U2 = 2  #: unsigned 2-byte little-endian
    I4 = 3  #: signed 4-byte little-endian
    U4 = 4  #: unsigned 4-byte little-endian
    U8 = 5  #: unsigned 8-byte little-endian (FRAME)
    F8 = 6  #: big-endian IEEE double (BINFLOAT)
    BYTES1 = 7  #: 1-byte length + bytes
    BYTES4 = 8  #: unsigned 4-byte length + bytes
    BYTES8 = 9  #: unsigned 8-byte length + bytes
    SBYTES4 = 10  #: signed 4-byte length + bytes (BINSTRING, LONG4)
    LINE = 11  #: one newline-terminated line
    LINE2 = 12  #: two newline-terminated lines (GLOBAL, INST)


@record
class Opcode:
    """One opcode: byte value, name, protocol that introduced it, argument encoding."""

    code: int
    name: str
    proto: int
    arg: ArgKind


_TABLE: tuple[tuple[str, str, int, ArgKind], ...] = (
    ("(", "MARK", 0, ArgKind.NONE),
    (".", "STOP", 0, ArgKind.NONE),
    ("0", "POP", 0, ArgKind.NONE),
    ("1", "POP_MARK", 1, ArgKind.NONE),
    ("2", "DUP", 0, ArgKind.NONE),
    ("F", "FLOAT", 0, ArgKind.LINE),
    ("I", "INT", 0, ArgKind.LINE),
    ("J", "BININT", 1, ArgKind.I4),
    ("K", "BININT1", 1, ArgKind.U1),
    ("L", "LONG", 0, ArgKind.LINE),
    ("M", "BININT2", 1, ArgKind.U2),
    ("N", "NONE", 0, ArgKind.NONE),
    ("P", "PERSID", 0, ArgKind.LINE),
    ("Q", "BINPERSID", 1, ArgKind.NONE),
    ("R", "REDUCE", 0, ArgKind.NONE),
    ("S", "STRING", 0, ArgKind.LINE),
    ("T", "BINSTRING", 1, ArgKind.SBYTES4),
    ("U", "SHORT_BINSTRING", 1, ArgKind.BYTES1),
    ("V", "UNICODE", 0, ArgKind.LINE),
    ("X", "BINUNICODE", 1, ArgKind.BYTES4),
    ("a", "APPEND", 0, ArgKind.NONE),
    ("b", "BUILD", 0, ArgKind.NONE),
    ("c", "GLOBAL", 0, ArgKind.LINE2),
    ("d", "DICT", 0, ArgKind.NONE),
    ("}", "EMPTY_DICT", 1, ArgKind.NONE),
    ("e", "APPENDS", 1, ArgKind.NONE),
    ("g", "GET", 0, ArgKind.LINE),
    ("h", "BINGET", 1, ArgKind.U1),
    ("i", "INST", 0, ArgKind.LINE2),
    ("j", "LONG_BINGET", 1, ArgKind.U4),
    ("l", "LIST", 0, ArgKind.NONE),
    ("]", "EMPTY_LIST", 1, ArgKind.NONE),
    ("o", "OBJ", 1, ArgKind.NONE),
    ("p", "PUT", 0, ArgKind.LINE),
    ("q", "BINPUT", 1, ArgKind.U1),
    ("r", "LONG_BINPUT", 1, ArgKind.U4),
    ("s", "SETITEM", 0, ArgKind.NONE),
    ("t", "TUPLE", 0, ArgKind.NONE),
    (")", "EMPTY_TUPLE", 1, ArgKind.NONE),
    ("u", "SETITEMS", 1, ArgKind.NONE),
    ("G", "BINFLOAT", 1, ArgKind.F8),
    ("\x80", "PROTO", 2, ArgKind.U1),
    ("\x81", "NEWOBJ", 2, ArgKind.NONE),
    ("\x82", "EXT1", 2, ArgKind.U1),
    ("\x83", "EXT2", 2, ArgKind.U2),
    ("\x84", "EXT4", 2, ArgKind.I4),
    ("\x85", "TUPLE1", 2, ArgKind.NONE),
    ("\x86", "TUPLE2", 2, ArgKind.NONE),
    ("\x87", "TUPLE3", 2, ArgKind.NONE),
    ("\x88", "NEWTRUE", 2, ArgKind.NONE),
    ("\x89", "NEWFALSE", 2, ArgKind.NONE),
    ("\x8a", "LONG1", 2, ArgKind.BYTES1),
    ("\x8b", "LONG4", 2, ArgKind.SBYTES4),
    ("B", "BINBYTES", 3, ArgKind.BYTES4),
    ("C", "SHORT_BINBYTES", 3, ArgKind.BYTES1),
    ("\x8c", "SHORT_BINUNICODE", 4, ArgKind.BYTES1),
    ("\x8d", "BINUNICODE8", 4, ArgKind.BYTES8),
    ("\x8e", "BINBYTES8", 4, ArgKind.BYTES8),
    ("\x8f", "EMPTY_SET", 4, ArgKind.NONE),
    ("\x90", "ADDITEMS", 4, ArgKind.NONE),
    ("\x91", "FROZENSET", 4, ArgKind.NONE),
    ("\x92", "NEWOBJ_EX", 4, ArgKind.NONE),
    ("\x93", "STACK_GLOBAL", 4, ArgKind.NONE),
    ("\x94", "MEMOIZE", 4, ArgKind.NONE),
    ("\x95", "FRAME", 4, ArgKind.U8),
    ("\x96", "BYTEARRAY8", 5, ArgKind.BYTES8),
    ("\x97", "NEXT_BUFFER", 5, ArgKind.NONE),
    ("\x98", "READONLY_BUFFER", 5, ArgKind.NONE),
)

#: Every opcode by byte value.
OPCODES: dict[int, Opcode] = {ord(c): Opcode(ord(c), name, proto, arg) for c, name, proto, arg in _TABLE}
#: Opcode byte value by name.
CODE: dict[str, int] = {op.name: op.code for op in OPCODES.values()}
#: Argument kind per byte value (-1 for bytes that are not opcodes); indexable by ``buf[pos]``.
ARG_KIND: tuple[int, ...] = tuple(int(OPCODES[b].arg) if b in OPCODES else -1 for b in range(256))
#: The highest pickle protocol this table knows.
HIGHEST_PROTOCOL = 5


def opcode_name(code: int) -> str:
    """Name of an opcode byte, or a hex description when it is not an opcode."""
    op = OPCODES.get(code)
    return op.name if op else f"<invalid opcode 0x{code:02x}>"
