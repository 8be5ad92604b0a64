"""The symbolic pickle VM: runs every opcode of protocols 0-5 without executing anything.

Public surface (stable):

* :func:`iter_pickle_streams` — parse every pickle stream of a binary stream (concatenated
  streams, joblib inline arrays and nested object-array streams, data after STOP) and yield
  :class:`~modelshield.formats.pickle.values.PickleStream` IR objects, findings (trailing data) and
  child blobs (trailing bytes, payloads handed to loader re-entry functions).
* :func:`parse_one_stream` — parse exactly one stream at the stream's position (used by readers of
  formats that embed pickles at known places, e.g. legacy torch files).
* :func:`sniff_pickle` — decide from the first bytes whether content is a pickle (any protocol).
* :class:`PickleVM` — the machine itself (one instance per stream).

The VM tracks stack, memo and marks with symbolic values (see ``values.py``), so every callable
loading would invoke, and with what arguments, ends up in the stream's call sites. Large payloads
are skipped with a seek (length and a short prefix are kept), so memory stays flat.
"""

from __future__ import annotations

import codecs
import copyreg
import gc
import io
import re
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from modelshield.errors import LimitExceeded
from modelshield.formats.interface import ScanContext
from modelshield.formats.pickle.joblib_arrays import is_array_wrapper, wrapper_layout
from modelshield.formats.pickle.opcodes import ARG_KIND, CODE, HIGHEST_PROTOCOL, ArgKind, opcode_name
from modelshield.formats.pickle.values import (
    KEEP_ITEMS,
    USE_CALL,
    USE_CONSTRUCT,
    USE_MUTATE,
    USE_PERSID,
    USE_TYPE_LOOKUP,
    Buffer,
    Call,
    CallSite,
    Embedded,
    GlobalRef,
    Large,
    PersId,
    PickleStream,
    SDict,
    SList,
    SSet,
    render,
)
from modelshield.formats.pickle.window import ByteWindow, Truncated
from modelshield.limits import Limits
from modelshield.rules import rule
from modelshield.types import Category, Severity

#: Byte/str payloads longer than this are skipped and kept as :class:`Large` placeholders.
KEEP_PAYLOAD = 256
#: Bytes of a skipped payload kept as its prefix.
PREFIX_BYTES = 64
#: Longest protocol-0 line kept whole (longer lines become Large placeholders).
LINE_KEEP = 64 * 1024
#: Call sites recorded per callable (the rest are counted only); flagged sites are always kept.
SITE_CAP = 64
#: Call sites recorded per stream at most.
MAX_SITES = 100_000
#: Opcodes between two checks of the time budget and limits.
CHECK_EVERY = 1 << 16
#: Bytes of trailing data that are ignored when they are only whitespace or NUL padding.
PADDING_TOLERANCE = 16

TRAILING_DATA = rule(
    "PICKLE-TRAILING-DATA",
    "Data after the end of the pickle",
    Severity.MEDIUM,
    Category.TAMPERING,
    "Bytes follow the pickle's STOP opcode and are not another pickle stream. Loaders ignore "
    "them, which is how polyglot files smuggle a second payload (an archive, a script) past "
    "tools that only look at the first stream. The bytes are scanned as a nested member.",
    "Find out what the trailing bytes are; re-serialise the model from a trusted source.",
)

# Semantics of well-known higher-order helpers: which positional argument the loader calls
# (USE_CALL) or instantiates without __init__ (USE_CONSTRUCT). Facts about what these functions do.
HIGHER_ORDER: dict[tuple[str, str], tuple[tuple[int, int], ...]] = {
    ("copyreg", "_reconstructor"): ((0, USE_CONSTRUCT), (1, USE_CALL)),
    ("copy_reg", "_reconstructor"): ((0, USE_CONSTRUCT), (1, USE_CALL)),
    ("copyreg", "__newobj__"): ((0, USE_CONSTRUCT),),
    ("copyreg", "__newobj_ex__"): ((0, USE_CONSTRUCT),),
    ("numpy.core.multiarray", "_reconstruct"): ((0, USE_CONSTRUCT),),
    ("numpy._core.multiarray", "_reconstruct"): ((0, USE_CONSTRUCT),),
    ("torch._utils", "_rebuild_from_type_v2"): ((0, USE_CALL), (1, USE_CONSTRUCT)),
    ("torch._utils", "_rebuild_from_type"): ((0, USE_CALL), (1, USE_CONSTRUCT)),
    ("torch._tensor", "_rebuild_from_type_v2"): ((0, USE_CALL), (1, USE_CONSTRUCT)),
    ("torch._utils", "_rebuild_wrapper_subclass"): ((0, USE_CONSTRUCT),),
    ("functools", "partial"): ((0, USE_CALL),),
    ("functools", "reduce"): ((0, USE_CALL),),
    ("builtins", "map"): ((0, USE_CALL),),
    ("builtins", "filter"): ((0, USE_CALL),),
    ("__builtin__", "map"): ((0, USE_CALL),),
    ("__builtin__", "apply"): ((0, USE_CALL),),
    ("pandas.core.indexes.base", "_new_Index"): ((0, USE_CONSTRUCT),),
}
#: Callable names whose first argument is a serialized payload that gets loaded (re-entry).
#: Functions that return a type by name (dill writes them when it is imported in the producer).
TYPE_LOOKUP_FUNCS = frozenset({("dill._dill", "_load_type"), ("dill.dill", "_load_type")})
#: Type names such lookups may resolve to ``builtins.<name>`` (plain data, no code).
PLAIN_DATA_TYPES = frozenset(
    {
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "range",
        "set",
        "slice",
        "str",
        "tuple",
    }
)
#: dill's ``_eval_repr`` (``eval`` of a string) and the only strings it is resolved for.
SINGLETON_REPR_FUNCS = frozenset({("dill._dill", "_eval_repr"), ("dill.dill", "_eval_repr")})
SINGLETONS: dict[str, object] = {"Ellipsis": Ellipsis, "NotImplemented": NotImplemented}
#: ``repr`` of a range (dill pickles ranges as ``_eval_repr('range(0, 3)')``); digits only.
RANGE_REPR = re.compile(r"range\((-?\d{1,19}), (-?\d{1,19})(?:, (-?\d{1,19}))?\)")
LOADER_NAMES = frozenset({"loads", "load", "_load_from_bytes", "load_from_bytes", "_loads", "unpickle"})

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_FIXED_LEN = {ArgKind.NONE: 0, ArgKind.U1: 1, ArgKind.U2: 2, ArgKind.I4: 4, ArgKind.U4: 4, ArgKind.U8: 8}
_FIXED_LEN.update({ArgKind.F8: 8, ArgKind.BYTES1: 1, ArgKind.BYTES4: 4, ArgKind.BYTES8: 8, ArgKind.SBYTES4: 4})
#: Bytes an opcode needs before its variable-length part (opcode byte + fixed argument).
_NEED = tuple(1 + _FIXED_LEN.get(ArgKind(k), 0) if k >= 0 else 1 for k in ARG_KIND)
_STOP = CODE["STOP"]


class Malformed(Exception):
    """Internal: the stream cannot be parsed further (reported in the stream's ``error``)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class Budget:
    """Per-file counters shared by every stream of one blob (opcodes, streams)."""

    __slots__ = ("limits", "opcodes", "streams", "ctx")

    def __init__(self, ctx: ScanContext | None, limits: Limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.opcodes = 0
        self.streams = 0


class PickleVM:
    """Runs one pickle stream symbolically from the window's position; see :meth:`run`."""

    def __init__(
        self,
        win: ByteWindow,
        budget: Budget,
        base_offset: int = 0,
        nested_in: int | None = None,
        keep_items: int = KEEP_ITEMS,
        keep_persids: int = SITE_CAP * 4,
    ) -> None:
        self.win = win
        self.keep_items = keep_items
        self.keep_persids = keep_persids
        self.budget = budget
        self.base_offset = base_offset
        self.nested_in = nested_in
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.marks: list[int] = []
        self.globals: dict[tuple[str, str], GlobalRef] = {}
        self.sites: list[CallSite] = []
        self.persids: list[CallSite] = []
        self.embedded: list[Embedded] = []
        self.call_counts: dict[str, int] = {}
        self.nested: list[PickleStream] = []
        self.protocol: int | None = None
        self.op_off = 0
        self.op_index = 0
        self.count = 0
        self.buffers = 0
        self.frame_end: int | None = None
        self.joblib_arrays = 0
        self.skipped = 0
        self.limit_error: LimitExceeded | None = None
        self._counted = 0

    # ------------------------------------------------------------------ driver

    def run(self) -> PickleStream:
        """Parse one stream; never raises for malformed input (the error goes in the IR).

        A hit limit is recorded in the IR and kept in ``limit_error`` for the caller to raise.
        """
        start = self.win.tell()
        error: str | None = None
        error_offset: int | None = None
        limit: str | None = None
        collecting = gc.isenabled()
        gc.disable()  # millions of short-lived symbolic objects: the cyclic GC would double the time
        try:
            self._loop()
        except Malformed as exc:
            error, error_offset = str(exc), exc.offset if exc.offset is not None else self._abs(self.op_off)
        except Truncated as exc:
            error, error_offset = str(exc), self._abs(exc.offset)
        except (IndexError, KeyError) as exc:
            error, error_offset = self._describe_failure(exc), self._abs(self.op_off)
        except UnicodeDecodeError:
            error, error_offset = f"string at byte {self._abs(self.op_off)} is not valid UTF-8", self._abs(self.op_off)
        except LimitExceeded as exc:
            self.limit_error = exc
            error, error_offset, limit = exc.message, self._abs(self.op_off), exc.limit
        except RecursionError:
            error, error_offset = "structure nested too deeply", self._abs(self.op_off)
        finally:
            if collecting:
                gc.enable()
        self.budget.opcodes += self.count - self._counted
        self._counted = self.count
        return PickleStream(
            offset=self._abs(start),
            end=self._abs(self.win.tell()),
            protocol=self.protocol,
            calls=tuple(self.sites),
            globals=tuple(self.globals.values()),
            opcode_count=self.count,
            error=error,
            error_offset=error_offset,
            limit=limit,
            call_counts=dict(self.call_counts),
            persids=tuple(self.persids),
            embedded=tuple(self.embedded),
            joblib_arrays=self.joblib_arrays,
            skipped_bytes=self.skipped,
            nested_in=self.nested_in,
            value=self.stack[-1] if error is None and self.stack else None,
        )

    def _describe_failure(self, exc: Exception) -> str:
        name = opcode_name(self.win.buf[self.op_off - self.win.base]) if self.op_off >= self.win.base else "opcode"
        if isinstance(exc, KeyError):
            return f"{name} at byte {self._abs(self.op_off)}: memo key {exc.args[0]!r} not found"
        return f"{name} at byte {self._abs(self.op_off)}: stack underflow"

    def _abs(self, offset: int) -> int:
        return self.base_offset + offset

    def _loop(self) -> None:  # noqa: C901 - the hot loop is kept in one function on purpose
        """Decode and dispatch opcodes until STOP. The most frequent opcodes are inlined."""
        win = self.win
        buf, pos, base = win.buf, win.pos, win.base
        end = len(buf)
        kinds, handlers, need = ARG_KIND, _HANDLERS, _NEED
        stack, memo, marks = self.stack, self.memo, self.marks
        max_memo, max_nesting = self.budget.limits.max_memo, self.budget.limits.max_nesting
        keep = self.keep_items
        unpack = struct.unpack_from
        n = self.count
        start = pos
        stream_end = win.size
        check_at = self._next_check(n)
        try:
            while True:
                if end - pos < 9:
                    if base + end < stream_end:  # more bytes in the stream: slide the window
                        win.pos = pos
                        win.fill(9)
                        buf, pos, base = win.buf, win.pos, win.base
                        end = len(buf)
                    if n >= check_at:  # inlined opcodes skip the check below; a window holds a bounded number
                        win.pos = pos
                        self.count = n
                        self._check_limits(n)
                        check_at = self._next_check(n)
                    start = pos
                    if pos >= end:
                        raise Truncated(base + pos, "stream ended without a STOP opcode")
                    if end - pos < need[buf[pos]]:
                        raise Truncated(base + pos, f"{opcode_name(buf[pos])} argument cut off")
                start = pos
                op = buf[pos]
                pos += 1
                n += 1
                # Inlined fast paths (same semantics as the op_* handlers), split on the opcode
                # value so that frequent opcodes are reached after a few comparisons. A branch
                # that does not ``continue`` falls through to the generic path below.
                if op >= 0x68:
                    if (op == 0x71 or op == 0x94 or op == 0x72) and stack:  # BINPUT, MEMOIZE, LONG_BINPUT
                        if op == 0x71:
                            key = buf[pos]
                            pos += 1
                        elif op == 0x94:
                            key = len(memo)
                        else:
                            key = unpack("<I", buf, pos)[0]
                            pos += 4
                        if len(memo) >= max_memo and key not in memo:
                            raise LimitExceeded("max_memo", max_memo, "pickle memo grew past max_memo")
                        memo[key] = stack[-1]
                        continue
                    if op == 0x68:  # BINGET
                        stack.append(memo[buf[pos]])
                        pos += 1
                        continue
                    if op == 0x8C:  # SHORT_BINUNICODE
                        length = buf[pos]
                        if length <= KEEP_PAYLOAD and pos + 1 + length <= end:
                            try:
                                stack.append(buf[pos + 1 : pos + 1 + length].decode("utf-8", "surrogatepass"))
                            except UnicodeDecodeError:
                                pass  # the generic path reports it
                            else:
                                pos += 1 + length
                                continue
                    elif op == 0x74:  # TUPLE
                        if marks:
                            k = marks.pop()
                            items = tuple(stack[k:])
                            del stack[k:]
                            stack.append(items)
                            continue
                    elif op == 0x85:  # TUPLE1
                        stack[-1] = (stack[-1],)
                        continue
                    elif op == 0x86:  # TUPLE2
                        second = stack.pop()
                        stack[-1] = (stack[-1], second)
                        continue
                    elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                        stack.append(op == 0x88)
                        continue
                    elif op == 0x87:  # TUPLE3
                        third = stack.pop()
                        second = stack.pop()
                        stack[-1] = (stack[-1], second, third)
                        continue
                    elif op == 0x7D:  # EMPTY_DICT
                        stack.append(SDict())
                        continue
                    elif op == 0x6A:  # LONG_BINGET
                        stack.append(memo[unpack("<I", buf, pos)[0]])
                        pos += 4
                        continue
                    elif op == 0x75 and marks:  # SETITEMS into a plain dict
                        k = marks[-1]
                        target = stack[k - 1] if 0 < k <= len(stack) else None
                        if type(target) is SDict and not (len(stack) - k) % 2:
                            marks.pop()
                            target.set_many(stack[k:])
                            del stack[k:]
                            continue
                else:
                    if op == 0x4B:  # BININT1
                        stack.append(buf[pos])
                        pos += 1
                        continue
                    if op == 0x28:  # MARK
                        marks.append(len(stack))
                        if len(marks) > max_nesting:
                            raise LimitExceeded("max_nesting", max_nesting, "pickle MARKs nested too deeply")
                        continue
                    if op == 0x52:  # REDUCE
                        if len(stack) >= 2:
                            args = stack.pop()
                            self.op_off = base + start
                            self.op_index = n - 1
                            self._invoke("REDUCE", stack.pop(), args)
                            continue
                    elif op == 0x58:  # BINUNICODE
                        length = unpack("<I", buf, pos)[0]
                        if length <= KEEP_PAYLOAD and pos + 4 + length <= end:
                            try:
                                stack.append(buf[pos + 4 : pos + 4 + length].decode("utf-8", "surrogatepass"))
                            except UnicodeDecodeError:
                                pass  # the generic path reports it
                            else:
                                pos += 4 + length
                                continue
                    elif op == 0x29:  # EMPTY_TUPLE
                        stack.append(())
                        continue
                    elif op == 0x4E:  # NONE
                        stack.append(None)
                        continue
                    elif op == 0x51:  # BINPERSID
                        if stack:
                            self.op_off = base + start
                            self.op_index = n - 1
                            self._persistent(stack.pop())
                            continue
                    elif op == 0x63:  # GLOBAL, when both lines are in the window and UTF-8
                        nl = buf.find(b"\n", pos)
                        nl2 = buf.find(b"\n", nl + 1) if nl >= 0 else -1
                        if nl2 >= 0:
                            try:
                                module, name = buf[pos:nl].decode("utf-8"), buf[nl + 1 : nl2].decode("utf-8")
                            except UnicodeDecodeError:
                                pass  # the generic path reports it
                            else:
                                self.op_off = base + start
                                self.op_index = n - 1
                                stack.append(self._global(module, name, "GLOBAL"))
                                pos = nl2 + 1
                                continue
                    elif op == 0x4A:  # BININT
                        stack.append(unpack("<i", buf, pos)[0])
                        pos += 4
                        continue
                    elif op == 0x4D:  # BININT2
                        stack.append(buf[pos] | (buf[pos + 1] << 8))
                        pos += 2
                        continue
                    elif op == 0x47:  # BINFLOAT
                        stack.append(unpack(">d", buf, pos)[0])
                        pos += 8
                        continue
                    elif op == 0x5D:  # EMPTY_LIST
                        stack.append(SList(cap=keep))
                        continue
                    elif op == 0x65 and marks:  # APPENDS into a plain list
                        k = marks[-1]
                        target = stack[k - 1] if 0 < k <= len(stack) else None
                        if type(target) is SList:
                            marks.pop()
                            target.add(stack[k:])
                            del stack[k:]
                            continue
                # Generic path: decode the argument by kind, then call the handler.
                kind = kinds[op]
                arg: object
                if kind == 0:
                    arg = pos
                elif kind == 1:
                    arg = buf[pos]
                    pos += 1
                elif kind == 2:
                    arg = buf[pos] | (buf[pos + 1] << 8)
                    pos += 2
                elif kind == 4:
                    arg = unpack("<I", buf, pos)[0]
                    pos += 4
                elif kind == 3:
                    arg = unpack("<i", buf, pos)[0]
                    pos += 4
                elif kind == 5:
                    arg = unpack("<Q", buf, pos)[0]
                    pos += 8
                elif kind == 6:
                    arg = unpack(">d", buf, pos)[0]
                    pos += 8
                elif kind < 0:
                    raise Malformed(f"invalid opcode 0x{op:02x} at byte {self._abs(base + start)}")
                else:
                    win.pos = pos
                    op_at = self.op_off = base + start
                    arg = self._var_arg(kind)
                    buf, pos, base = win.buf, win.pos, win.base
                    end = len(buf)
                    start = op_at - base  # the opcode's offset in the window (negative once it slid past)
                self.op_off = base + start
                self.op_index = n - 1
                if handlers[op](self, arg):
                    buf, pos, base = win.buf, win.pos, win.base
                    end = len(buf)
                if op == _STOP:
                    win.pos = pos
                    self.count = n
                    return
                if n >= check_at:
                    win.pos = pos
                    self.count = n
                    self._check_limits(n)
                    check_at = self._next_check(n)
        except BaseException:
            self.count = n
            if start >= 0 and base + start >= self.op_off:
                self.op_off = base + start
            self.op_index = n - 1
            raise

    def _next_check(self, n: int) -> int:
        left = self.budget.limits.max_opcodes - self.budget.opcodes
        return n + max(1, min(CHECK_EVERY, left))

    def _check_limits(self, n: int) -> None:
        budget = self.budget
        budget.opcodes += n - self._counted
        self._counted = n
        if budget.opcodes >= budget.limits.max_opcodes:
            raise LimitExceeded("max_opcodes", budget.limits.max_opcodes, "pickle has more opcodes than max_opcodes")
        if len(self.stack) > budget.limits.max_stack_depth:
            raise LimitExceeded("max_stack_depth", budget.limits.max_stack_depth, "pickle stack grew too deep")
        if budget.ctx is not None:
            budget.ctx.check_time()

    # ------------------------------------------------------------ arguments

    def _var_arg(self, kind: int) -> object:
        win = self.win
        if kind == ArgKind.BYTES1:
            return self._payload(win.read(1)[0])
        if kind == ArgKind.BYTES4:
            return self._payload(struct.unpack("<I", win.read(4))[0])
        if kind == ArgKind.SBYTES4:
            size = struct.unpack("<i", win.read(4))[0]
            if size < 0:
                raise Malformed(f"{opcode_name(self._opcode())} with negative length {size}")
            return self._payload(size)
        if kind == ArgKind.BYTES8:
            return self._payload(struct.unpack("<Q", win.read(8))[0])
        if kind == ArgKind.LINE:
            return self._line()
        return (self._line(), self._line())

    def _opcode(self) -> int:
        return self.win.buf[self.op_off - self.win.base] if self.op_off >= self.win.base else -1

    def _payload(self, size: int) -> bytes | Large:
        win = self.win
        if size <= KEEP_PAYLOAD:
            return win.read(size)
        offset = win.tell()
        prefix = win.peek(PREFIX_BYTES)
        win.skip_to(offset + size)
        self.skipped += size
        return Large("bytes", size, prefix, self._abs(offset))

    def _line(self) -> bytes | Large:
        win = self.win
        start = win.tell()
        while True:
            idx = win.buf.find(b"\n", win.pos)
            if idx >= 0:
                line = win.buf[win.pos : idx]
                win.pos = idx + 1
                return line
            have = len(win.buf) - win.pos
            if have >= LINE_KEEP:
                return self._long_line(start)
            before = len(win.buf) - win.pos
            win.fill(have + 4096)
            if len(win.buf) - win.pos == before:
                raise Truncated(win.base + len(win.buf), "line without newline")

    def _long_line(self, start: int) -> Large:
        win = self.win
        prefix = win.buf[win.pos : win.pos + PREFIX_BYTES]
        while True:
            idx = win.buf.find(b"\n", win.pos)
            if idx >= 0:
                win.pos = idx + 1
                length = win.tell() - start - 1
                self.skipped += length
                return Large("line", length, prefix, self._abs(start))
            win.pos = len(win.buf)
            win.fill(1)
            if win.pos >= len(win.buf):
                raise Truncated(win.tell(), "line without newline")

    # ------------------------------------------------------------ helpers

    def _pop_mark(self) -> list[object]:
        if not self.marks:
            raise Malformed(f"{opcode_name(self._opcode())} at byte {self._abs(self.op_off)}: no MARK on the stack")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def _global(self, module: str, name: str, via: str, ext_code: int | None = None) -> GlobalRef:
        key = (module, name)
        ref = self.globals.get(key)
        if ref is None:
            ref = GlobalRef(module, name, self._abs(self.op_off), self.op_index, via, 1, 0, ext_code)
            self.globals[key] = ref
        else:
            ref.count += 1
        return ref

    def _site(self, kind: str, func: object, args: object, note: str = "") -> None:
        target = func if isinstance(func, GlobalRef) else None
        label = target.dotted if target is not None else render(func, 2, 160)
        key = label if kind not in ("BUILD", "APPEND", "SETITEM", "ADDITEMS") else f"{kind} {label}"
        seen = self.call_counts.get(key, 0) + 1
        self.call_counts[key] = seen
        flagged = bool(note) or target is None
        if (seen <= SITE_CAP or flagged) and len(self.sites) < MAX_SITES:
            # Arguments are rendered when a finding shows them; symbolic values are not mutated
            # after the call except by later container opcodes, which only add detail.
            self.sites.append(CallSite(kind, label, target, None, self._abs(self.op_off), self.op_index, args, note))

    def _invoke(self, kind: str, func: object, args: object, kwargs: object = None) -> None:
        """Record a call of ``func`` and push its symbolic result."""
        if type(args) is tuple and len(args) == 1 and self._type_lookup(kind, func, args, kwargs):
            return
        if isinstance(func, PersId) and _is_module_persid(func.pid):
            func = func.pid[1]  # type: ignore[index] # torch's legacy persistent_load returns the class
        if isinstance(func, GlobalRef):
            func.uses |= USE_CONSTRUCT if kind in ("NEWOBJ", "NEWOBJ_EX") else USE_CALL
            semantics = HIGHER_ORDER.get((func.module, func.name))
            if semantics and isinstance(args, tuple):
                for index, use in semantics:
                    if index < len(args) and isinstance(args[index], GlobalRef):
                        args[index].uses |= use
            if func.name in LOADER_NAMES and isinstance(args, tuple) and args:
                self._note_embedded(func, args[0])
        shown = args if kwargs is None else (args, kwargs)
        self._site(kind, func, shown)
        self.stack.append(Call(func, args, kind, kwargs))

    def _type_lookup(self, kind: str, func: object, args: object, kwargs: object) -> bool:
        """Resolve dill's benign lookups instead of treating them as code reconstruction.

        ``dill._dill._load_type('<plain data type>')`` becomes ``builtins.<type>`` and
        ``dill._dill._eval_repr('Ellipsis' | 'NotImplemented' | 'range(a, b[, c])')`` the value (dill writes these when
        it is imported in the producing process). Any other argument (CodeType, FunctionType, an
        arbitrary expression) stays a call of the dangerous global.
        """
        if not (
            kind == "REDUCE"
            and kwargs is None
            and isinstance(func, GlobalRef)
            and isinstance(args, tuple)
            and len(args) == 1
            and isinstance(args[0], str)
        ):
            return False
        key, name = (func.module, func.name), args[0]
        if key in TYPE_LOOKUP_FUNCS and name in PLAIN_DATA_TYPES:
            result: object = self._global("builtins", name, f"{func.dotted}({name!r})")
        elif key in SINGLETON_REPR_FUNCS and name in SINGLETONS:
            result = SINGLETONS[name]
        elif key in SINGLETON_REPR_FUNCS and (match := RANGE_REPR.fullmatch(name)):
            result = range(*(int(n) for n in match.groups() if n is not None))
        else:
            return False
        func.uses |= USE_TYPE_LOOKUP
        self.stack.append(result)
        return True

    def _note_embedded(self, func: GlobalRef, payload: object) -> None:
        if (
            isinstance(payload, Call)
            and isinstance(payload.func, GlobalRef)
            and payload.func.dotted == "_codecs.encode"
        ):
            text = payload.args[0] if isinstance(payload.args, tuple) and payload.args else None
            if isinstance(text, str) and len(text) > 1:
                data = text.encode("latin-1", "replace")
                self.embedded.append(Embedded(func.dotted, self._abs(self.op_off), len(data), data))
            elif isinstance(text, Large) and text.encoding == "utf-8":
                self.embedded.append(Embedded(func.dotted, text.offset, text.length, None, transcode=True))
        elif isinstance(payload, Large) and payload.kind in ("bytes", "bytearray"):
            self.embedded.append(Embedded(func.dotted, payload.offset, payload.length, None))
        elif isinstance(payload, bytes) and len(payload) > 1:
            self.embedded.append(Embedded(func.dotted, self._abs(self.op_off), len(payload), payload))

    def _mutate(self, kind: str, target: object, payload: list[object]) -> None:
        """APPEND(S)/SETITEM(S)/ADDITEMS on ``target``: container update or implicit method call."""
        if isinstance(target, SList) and kind == "APPEND":
            target.add(payload)
        elif isinstance(target, SDict) and kind == "SETITEM":
            target.set_many(payload)
        elif isinstance(target, SSet) and kind == "ADDITEMS" and not target.frozen:
            target.add(payload)
        elif isinstance(target, Call):
            if len(target.items) < 32:
                target.items.extend(payload[: 32 - len(target.items)])
            target.item_count += len(payload)
        elif isinstance(target, GlobalRef):
            target.uses |= USE_MUTATE
            self._site(kind, target, tuple(payload[:8]), note=f"{kind} mutates the global object {target.dotted}")
        # Anything else would fail in a real loader; staying lenient can only add findings.

    def _memo_put(self, key: int) -> None:
        if not self.stack:
            raise Malformed(f"memo store at byte {self._abs(self.op_off)} with an empty stack")
        memo = self.memo
        if key not in memo and len(memo) >= self.budget.limits.max_memo:
            raise LimitExceeded("max_memo", self.budget.limits.max_memo, "pickle memo grew past max_memo")
        memo[key] = self.stack[-1]

    def _text(self, raw: object, what: str) -> str:
        if isinstance(raw, Large):
            return raw.prefix.decode("utf-8", "replace") + "..."
        assert isinstance(raw, bytes)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"{what} at byte {self._abs(self.op_off)} is not UTF-8: {raw[:40]!r}") from None

    def _line_int(self, raw: object, what: str) -> int:
        text = self._text(raw, what).strip()
        try:
            return int(text)
        except ValueError:
            raise Malformed(f"{what} at byte {self._abs(self.op_off)}: bad integer {text[:40]!r}") from None

    def _bad_opcode(self, arg: object) -> None:
        raise Malformed(f"invalid opcode at byte {self._abs(self.op_off)}")

    # ------------------------------------------------------------ opcodes: structure

    def op_mark(self, arg: object) -> None:
        """MARK: remember the stack height."""
        self.marks.append(len(self.stack))
        if len(self.marks) > self.budget.limits.max_nesting:
            raise LimitExceeded("max_nesting", self.budget.limits.max_nesting, "pickle MARKs nested too deeply")

    def op_stop(self, arg: object) -> None:
        """STOP: the stream's result is the top of the stack."""
        if not self.stack:
            raise Malformed(f"STOP at byte {self._abs(self.op_off)} with an empty stack")

    def op_pop(self, arg: object) -> None:
        """POP: discard the top item (or the topmost MARK when nothing is above it)."""
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        else:
            self.stack.pop()

    def op_pop_mark(self, arg: object) -> None:
        """POP_MARK: discard everything down to the topmost MARK."""
        self._pop_mark()

    def op_dup(self, arg: object) -> None:
        """DUP: push the top item again."""
        self.stack.append(self.stack[-1])

    def op_proto(self, arg: object) -> None:
        """PROTO: protocol version."""
        assert isinstance(arg, int)
        if arg > HIGHEST_PROTOCOL:
            raise Malformed(f"unsupported pickle protocol {arg} at byte {self._abs(self.op_off)}")
        if self.protocol is None:
            self.protocol = arg

    def op_frame(self, arg: object) -> None:
        """FRAME: a length hint; remember where the frame ends (joblib data must not be inside)."""
        assert isinstance(arg, int)
        self.frame_end = self.op_off + 9 + arg

    # ------------------------------------------------------------ opcodes: literals

    def op_none(self, arg: object) -> None:
        """NONE."""
        self.stack.append(None)

    def op_newtrue(self, arg: object) -> None:
        """NEWTRUE."""
        self.stack.append(True)

    def op_newfalse(self, arg: object) -> None:
        """NEWFALSE."""
        self.stack.append(False)

    def op_binint(self, arg: object) -> None:
        """BININT / BININT1 / BININT2: the decoded integer."""
        self.stack.append(arg)

    op_binint1 = op_binint
    op_binint2 = op_binint

    def op_binfloat(self, arg: object) -> None:
        """BINFLOAT: the decoded float."""
        self.stack.append(arg)

    def op_int(self, arg: object) -> None:
        """INT: decimal line (``00``/``01`` are the protocol-0 booleans)."""
        if arg == b"00" or arg == b"01":
            self.stack.append(arg == b"01")
            return
        self.stack.append(self._line_int(arg, "INT"))

    def op_long(self, arg: object) -> None:
        """LONG: decimal line with an optional trailing ``L``."""
        if isinstance(arg, bytes) and arg.endswith(b"L"):
            arg = arg[:-1]
        self.stack.append(self._line_int(arg, "LONG"))

    def op_float(self, arg: object) -> None:
        """FLOAT: decimal float line."""
        text = self._text(arg, "FLOAT")
        try:
            self.stack.append(float(text))
        except ValueError:
            raise Malformed(f"FLOAT at byte {self._abs(self.op_off)}: bad float {text[:40]!r}") from None

    def op_long1(self, arg: object) -> None:
        """LONG1 / LONG4: little-endian two's complement integer."""
        if isinstance(arg, Large):
            arg.kind = "long"
            self.stack.append(arg)
        else:
            assert isinstance(arg, bytes)
            self.stack.append(int.from_bytes(arg, "little", signed=True))

    op_long4 = op_long1

    def op_binbytes(self, arg: object) -> None:
        """BINBYTES / SHORT_BINBYTES / BINBYTES8: bytes (or a placeholder when large)."""
        self.stack.append(arg)

    op_short_binbytes = op_binbytes
    op_binbytes8 = op_binbytes

    def op_bytearray8(self, arg: object) -> None:
        """BYTEARRAY8: a bytearray (placeholder when large)."""
        if isinstance(arg, Large):
            arg.kind = "bytearray"
        self.stack.append(arg)

    def op_binunicode(self, arg: object) -> None:
        """BINUNICODE / SHORT_BINUNICODE / BINUNICODE8: UTF-8 text."""
        if isinstance(arg, Large):
            arg.kind = "str"
            arg.encoding = "utf-8"
            self.stack.append(arg)
            return
        assert isinstance(arg, bytes)
        try:
            self.stack.append(arg.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise Malformed(f"string at byte {self._abs(self.op_off)} is not UTF-8") from None

    op_short_binunicode = op_binunicode
    op_binunicode8 = op_binunicode

    def op_binstring(self, arg: object) -> None:
        """BINSTRING / SHORT_BINSTRING: Python 2 str (decoded as latin-1 here)."""
        if isinstance(arg, Large):
            arg.kind = "str"
            self.stack.append(arg)
        else:
            assert isinstance(arg, bytes)
            self.stack.append(arg.decode("latin-1"))

    op_short_binstring = op_binstring

    def op_string(self, arg: object) -> None:
        """STRING: quoted, backslash-escaped Python 2 str literal line."""
        if isinstance(arg, Large):
            arg.kind = "str"
            self.stack.append(arg)
            return
        assert isinstance(arg, bytes)
        if len(arg) < 2 or arg[:1] != arg[-1:] or arg[:1] not in (b"'", b'"'):
            raise Malformed(f"STRING at byte {self._abs(self.op_off)} is not quoted: {arg[:40]!r}")
        try:
            data = codecs.escape_decode(arg[1:-1])[0]
        except ValueError:
            raise Malformed(f"STRING at byte {self._abs(self.op_off)} has a bad escape") from None
        self.stack.append(_keep_str(data.decode("latin-1"), self._abs(self.op_off)))

    def op_unicode(self, arg: object) -> None:
        """UNICODE: raw-unicode-escape line."""
        if isinstance(arg, Large):
            arg.kind = "str"
            self.stack.append(arg)
            return
        assert isinstance(arg, bytes)
        try:
            text = arg.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise Malformed(f"UNICODE at byte {self._abs(self.op_off)} has a bad escape") from None
        self.stack.append(_keep_str(text, self._abs(self.op_off)))

    # ------------------------------------------------------------ opcodes: containers

    def op_empty_tuple(self, arg: object) -> None:
        """EMPTY_TUPLE."""
        self.stack.append(())

    def op_tuple(self, arg: object) -> None:
        """TUPLE: items down to the topmost MARK."""
        self.stack.append(tuple(self._pop_mark()))

    def op_tuple1(self, arg: object) -> None:
        """TUPLE1."""
        self.stack[-1] = (self.stack[-1],)

    def op_tuple2(self, arg: object) -> None:
        """TUPLE2."""
        second = self.stack.pop()
        self.stack[-1] = (self.stack[-1], second)

    def op_tuple3(self, arg: object) -> None:
        """TUPLE3."""
        third = self.stack.pop()
        second = self.stack.pop()
        self.stack[-1] = (self.stack[-1], second, third)

    def op_empty_list(self, arg: object) -> None:
        """EMPTY_LIST."""
        self.stack.append(SList(cap=self.keep_items))

    def op_list(self, arg: object) -> None:
        """LIST: items down to the topmost MARK."""
        lst = SList(cap=self.keep_items)
        lst.add(self._pop_mark())
        self.stack.append(lst)

    def op_empty_dict(self, arg: object) -> None:
        """EMPTY_DICT."""
        self.stack.append(SDict())

    def op_dict(self, arg: object) -> None:
        """DICT: key/value pairs down to the topmost MARK."""
        items = self._pop_mark()
        if len(items) % 2:
            raise Malformed(f"DICT at byte {self._abs(self.op_off)} with an odd number of items")
        mapping = SDict()
        for i in range(0, len(items), 2):
            mapping.set(items[i], items[i + 1])
        self.stack.append(mapping)

    def op_empty_set(self, arg: object) -> None:
        """EMPTY_SET."""
        self.stack.append(SSet())

    def op_frozenset(self, arg: object) -> None:
        """FROZENSET: items down to the topmost MARK."""
        value = SSet(frozen=True)
        value.add(self._pop_mark())
        self.stack.append(value)

    def op_append(self, arg: object) -> None:
        """APPEND: ``stack[-1].append(value)``."""
        value = self.stack.pop()
        self._mutate("APPEND", self.stack[-1], [value])

    def op_appends(self, arg: object) -> None:
        """APPENDS: ``stack[-1].extend(items)``."""
        items = self._pop_mark()
        self._mutate("APPEND", self.stack[-1], items)

    def op_setitem(self, arg: object) -> None:
        """SETITEM: ``stack[-1][key] = value``."""
        value = self.stack.pop()
        key = self.stack.pop()
        self._mutate("SETITEM", self.stack[-1], [key, value])

    def op_setitems(self, arg: object) -> None:
        """SETITEMS: several ``stack[-1][key] = value``."""
        items = self._pop_mark()
        if len(items) % 2:
            raise Malformed(f"SETITEMS at byte {self._abs(self.op_off)} with an odd number of items")
        self._mutate("SETITEM", self.stack[-1], items)

    def op_additems(self, arg: object) -> None:
        """ADDITEMS: ``stack[-1].add(item)`` for each item."""
        items = self._pop_mark()
        self._mutate("ADDITEMS", self.stack[-1], items)

    # ------------------------------------------------------------ opcodes: memo

    def op_put(self, arg: object) -> None:
        """PUT: decimal memo index line."""
        self._memo_put(self._line_int(arg, "PUT"))

    def op_binput(self, arg: object) -> None:
        """BINPUT / LONG_BINPUT."""
        assert isinstance(arg, int)
        self._memo_put(arg)

    op_long_binput = op_binput

    def op_memoize(self, arg: object) -> None:
        """MEMOIZE: store the top at index len(memo)."""
        self._memo_put(len(self.memo))

    def op_get(self, arg: object) -> None:
        """GET: decimal memo index line."""
        self.stack.append(self.memo[self._line_int(arg, "GET")])

    def op_binget(self, arg: object) -> None:
        """BINGET / LONG_BINGET."""
        self.stack.append(self.memo[arg])  # type: ignore[index]

    op_long_binget = op_binget

    # ------------------------------------------------------------ opcodes: globals and calls

    def op_global(self, arg: object) -> None:
        """GLOBAL: ``module\\nname\\n`` -> the imported object."""
        assert isinstance(arg, tuple)
        module, name = self._text(arg[0], "GLOBAL module"), self._text(arg[1], "GLOBAL name")
        self.stack.append(self._global(module, name, "GLOBAL"))

    def op_stack_global(self, arg: object) -> None:
        """STACK_GLOBAL: module and name strings from the stack (memo tricks included)."""
        name = self.stack.pop()
        module = self.stack.pop()
        texts = []
        for value in (module, name):
            if isinstance(value, Large) and value.kind == "str":
                texts.append(value.prefix.decode("utf-8", "replace") + "...")
            elif isinstance(value, str):
                texts.append(value)
            else:
                raise Malformed(f"STACK_GLOBAL at byte {self._abs(self.op_off)} on a non-str {render(value, 1, 60)}")
        self.stack.append(self._global(texts[0], texts[1], "STACK_GLOBAL"))

    def op_inst(self, arg: object) -> None:
        """INST: ``module\\nname\\n`` + MARKed args -> class(*args)."""
        assert isinstance(arg, tuple)
        args = tuple(self._pop_mark())
        module, name = self._text(arg[0], "INST module"), self._text(arg[1], "INST name")
        self._invoke("INST", self._global(module, name, "INST"), args)

    def op_obj(self, arg: object) -> None:
        """OBJ: MARK cls args... -> cls(*args)."""
        items = self._pop_mark()
        if not items:
            raise Malformed(f"OBJ at byte {self._abs(self.op_off)} without a class")
        self._invoke("OBJ", items[0], tuple(items[1:]))

    def op_reduce(self, arg: object) -> None:
        """REDUCE: func(*args)."""
        args = self.stack.pop()
        func = self.stack.pop()
        self._invoke("REDUCE", func, args)

    def op_newobj(self, arg: object) -> None:
        """NEWOBJ: cls.__new__(cls, *args)."""
        args = self.stack.pop()
        cls = self.stack.pop()
        self._invoke("NEWOBJ", cls, args)

    def op_newobj_ex(self, arg: object) -> None:
        """NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)."""
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._invoke("NEWOBJ_EX", cls, args, kwargs)

    def op_build(self, arg: object) -> bool:
        """BUILD: obj.__setstate__(state) or attribute updates; joblib arrays follow their wrapper."""
        state = self.stack.pop()
        obj = self.stack[-1]
        note = _build_note(obj, state)
        if isinstance(obj, GlobalRef):
            obj.uses |= USE_MUTATE
        self._site("BUILD", obj.func if isinstance(obj, Call) else obj, state, note)
        if isinstance(obj, Call):
            obj.state = state
            if is_array_wrapper(obj):
                assert isinstance(arg, int)
                self.win.pos = arg
                self._joblib_array(state)
                return True
        return False

    def op_ext1(self, arg: object) -> None:
        """EXT1 / EXT2 / EXT4: a global from the copyreg extension registry."""
        assert isinstance(arg, int)
        key = copyreg._inverted_registry.get(arg)  # type: ignore[attr-defined]
        if isinstance(key, tuple) and len(key) == 2:
            ref = self._global(str(key[0]), str(key[1]), "EXT", arg)
        else:
            ref = self._global("<copyreg extension>", f"code {arg}", "EXT", arg)
            ref.unresolved = True
        self.stack.append(ref)

    op_ext2 = op_ext1
    op_ext4 = op_ext1

    def op_persid(self, arg: object) -> None:
        """PERSID: ``persistent_load(line)``."""
        self._persistent(self._text(arg, "PERSID"))

    def op_binpersid(self, arg: object) -> None:
        """BINPERSID: ``persistent_load(stack.pop())``."""
        self._persistent(self.stack.pop())

    def _persistent(self, pid: object) -> None:
        if isinstance(pid, tuple) and not _is_module_persid(pid):
            for item in pid:
                if isinstance(item, GlobalRef):
                    item.uses |= USE_PERSID
        if len(self.persids) < self.keep_persids:
            self.persids.append(
                CallSite("PERSID", "persistent_load", None, None, self._abs(self.op_off), self.op_index, pid)
            )
        self.call_counts["persistent_load"] = self.call_counts.get("persistent_load", 0) + 1
        self.stack.append(PersId(pid))

    def op_next_buffer(self, arg: object) -> None:
        """NEXT_BUFFER: an out-of-band buffer (needs ``buffers=`` at load time)."""
        self.stack.append(Buffer(self.buffers))
        self.buffers += 1

    def op_readonly_buffer(self, arg: object) -> None:
        """READONLY_BUFFER: make the top buffer read-only."""
        top = self.stack[-1]
        if isinstance(top, Buffer):
            top.readonly = True

    # ------------------------------------------------------------ joblib

    def _joblib_array(self, state: object) -> None:
        layout = wrapper_layout(state)
        if isinstance(layout, str):
            raise Malformed(f"joblib array wrapper at byte {self._abs(self.op_off)}: {layout}")
        win = self.win
        if self.frame_end is not None and win.tell() < self.frame_end:
            raise Malformed(f"joblib array data at byte {self._abs(win.tell())} starts inside an unfinished frame")
        self.joblib_arrays += 1
        if layout.hasobject:
            inner = PickleVM(win, self.budget, self.base_offset, nested_in=self._abs(self.op_off))
            self._check_limits(self.count)
            nested = inner.run()
            self.nested.extend(inner.nested)
            self.nested.append(nested)
            if inner.limit_error is not None:
                raise inner.limit_error
            if nested.error is not None:
                raise Malformed(
                    f"embedded joblib object-array pickle is malformed: {nested.error}", nested.error_offset
                )
            return
        start = win.tell()
        if layout.aligned:
            padding = win.read(1)[0]
            win.skip_to(win.tell() + padding)
        win.skip_to(win.tell() + layout.nbytes)
        self.skipped += win.tell() - start


#: Opcode -> unbound handler, built once (binding 70 methods per stream cost more than small pickles).
_HANDLERS: list[Callable[[PickleVM, object], object]] = [PickleVM._bad_opcode] * 256
for _name, _code in CODE.items():
    _HANDLERS[_code] = getattr(PickleVM, "op_" + _name.lower())


def _is_module_persid(pid: object) -> bool:
    """torch's legacy ``('module', cls, source_file, source)`` persistent id."""
    return isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], GlobalRef)


def _keep_str(text: str, offset: int) -> str | Large:
    if len(text) <= KEEP_PAYLOAD:
        return text
    return Large("str", len(text), text[:PREFIX_BYTES].encode("utf-8", "replace"), offset)


def _dunder_keys(state: object) -> list[str]:
    keys: list[str] = []
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, SDict):
            keys.extend(part.dunder_keys)
    return keys


def _build_note(obj: object, state: object) -> str:
    """Structural red flags of a BUILD (the 'BUILD gadget')."""
    notes = []
    if isinstance(obj, GlobalRef):
        notes.append(f"BUILD sets attributes on the global object {obj.dotted} itself")
    keys = _dunder_keys(state)
    if keys:
        notes.append("state sets special attributes " + ", ".join(sorted(set(keys))))
    return "; ".join(notes)


# ---------------------------------------------------------------------------- entry points


def parse_one_stream(
    stream: BinaryIO,
    ctx: ScanContext | None,
    base_offset: int = 0,
    budget: Budget | None = None,
    keep_items: int = KEEP_ITEMS,
) -> tuple[list[PickleStream], LimitExceeded | None]:
    """Parse one pickle stream at ``stream``'s current position.

    Returns the streams (nested joblib object-array streams first, then the stream itself) and
    the limit error to raise, if one stopped the parse. The stream is left positioned right after
    the parsed bytes (STOP), so callers can continue with what follows. ``keep_items`` raises the
    number of list items and persistent ids kept (for readers that need whole lists).
    """
    limits = ctx.limits if ctx is not None else Limits()
    budget = budget or Budget(ctx, limits)
    win = ByteWindow(stream, stream.tell())
    vm = PickleVM(win, budget, base_offset, keep_items=keep_items, keep_persids=max(keep_items, SITE_CAP * 4))
    result = vm.run()
    stream.seek(win.tell())
    return [*vm.nested, result], vm.limit_error


def iter_pickle_streams(stream: BinaryIO, ctx: ScanContext, base_offset: int = 0) -> Iterator[object]:
    """Yield the IR of every pickle stream in ``stream`` from its current position.

    Offsets in the IR are ``base_offset + position in stream``. Yields PickleStream objects
    (nested streams before their parent), then a PICKLE-TRAILING-DATA finding and a child blob when
    non-pickle bytes follow the last STOP, and child blobs for payloads handed to loader re-entry
    functions. Raises LimitExceeded (after yielding what was found) when a limit stops the parse.
    """
    budget = Budget(ctx, ctx.limits)
    win = ByteWindow(stream, stream.tell())
    while True:
        if budget.streams >= ctx.limits.max_pickle_streams:
            raise LimitExceeded(
                "max_pickle_streams", ctx.limits.max_pickle_streams, "too many pickle streams in one file"
            )
        budget.streams += 1
        vm = PickleVM(win, budget, base_offset)
        result = vm.run()
        yield from vm.nested
        yield result
        _mark_joblib(ctx, result, vm.nested)
        yield from _embedded_children(ctx, [result, *vm.nested])
        if vm.limit_error is not None:
            raise vm.limit_error
        if result.error is not None or win.remaining() <= 0:
            return
        head = win.peek(4096)
        if sniff_pickle(head, complete=win.remaining() <= len(head)):
            continue
        yield from _trailing(ctx, base_offset + win.tell(), win.remaining(), head)
        return


def _mark_joblib(ctx: ScanContext, result: PickleStream, nested: list[PickleStream]) -> None:
    if ctx.format not in ("", "pickle"):
        return
    if result.joblib_arrays or any(
        g.module.startswith(("joblib.", "sklearn.externals.joblib")) for g in result.globals
    ):
        ctx.format = "joblib"


def _embedded_children(ctx: ScanContext, streams: list[PickleStream]) -> Iterator[object]:
    """Child blobs for payloads handed to loader re-entry functions (scanned in turn)."""
    for result in streams:
        for item in result.embedded[:16]:
            name = f"embedded@{item.offset}"
            if item.data is not None:
                yield ctx.blob.child(name, item.data)
            elif not item.transcode:
                yield ctx.blob.child_range(name, item.offset, item.length)
            elif item.length <= ctx.limits.max_member_in_memory:
                with ctx.blob.open() as stream:
                    stream.seek(item.offset)
                    text = stream.read(item.length).decode("utf-8", "surrogatepass")
                yield ctx.blob.child(name, text.encode("latin-1", "replace"))
            else:
                yield ctx.finding(
                    "LIMIT-EXCEEDED",
                    f"payload of {item.length} bytes handed to {item.via} is too large to scan in memory",
                    evidence=f"max_member_in_memory={ctx.limits.max_member_in_memory}",
                    offset=item.offset,
                )


def _trailing(ctx: ScanContext, offset: int, length: int, head: bytes) -> Iterator[object]:
    if length <= PADDING_TOLERANCE and not head.strip(b" \t\r\n\x00"):
        return
    yield ctx.finding(
        TRAILING_DATA.id,
        f"{length} bytes after the last pickle stream are not a pickle",
        evidence=f"starts with {head[:32]!r}",
        offset=offset,
    )
    yield ctx.blob.child_range(f"trailing@{offset}", offset, length)


def sniff_pickle(head: bytes, complete: bool) -> bool:
    """True when ``head`` starts a pickle stream (any protocol), by trial-parsing it.

    ``complete`` says ``head`` is the whole content. Accepted: a stream that reaches STOP; a head
    that runs out mid-stream after enough valid opcodes (or after a PROTO header); a stream that
    breaks only after importing or calling something with a plausible name (a payload followed by
    garbage). JSON, text and random bytes fail within a few opcodes.
    """
    if not head or ARG_KIND[head[0]] < 0:
        return False
    if head[0] == CODE["PROTO"] and len(head) > 2 and 2 <= head[1] <= 5 and _valid_opcodes(head, 3) >= 3:
        # A PROTO header and a few well-formed opcodes decide it; the full trial parse of the head only
        # matters when that is unsure (claiming more content as pickle never hides a payload).
        return True
    budget = Budget(None, _SNIFF_LIMITS)
    vm = PickleVM(ByteWindow(io.BytesIO(head)), budget)
    result = vm.run()
    named = [g for g in result.globals if g.via != "EXT"]
    plausible = [g for g in named if _IDENT.match(g.module) and _IDENT.match(g.name)]
    if plausible and result.opcode_count >= 3:
        return True  # something would be imported: report it, whatever follows
    if len(plausible) < len(named):
        return False
    if result.error is None:
        return True
    proto_first = head[0] == CODE["PROTO"] and result.protocol is not None
    if proto_first and result.opcode_count >= 3:
        return True
    truncated = "truncated" in result.error
    return truncated and not complete and result.opcode_count >= (1 if proto_first else 8)


#: Inline argument sizes by ArgKind value (plain ints: the walk below runs on every sniff).
_ARG_FIXED = {
    int(k): n
    for k, n in {ArgKind.U1: 1, ArgKind.U2: 2, ArgKind.I4: 4, ArgKind.U4: 4, ArgKind.U8: 8, ArgKind.F8: 8}.items()
}
_ARG_SIZED = {
    int(ArgKind.BYTES1): (1, "<B"),
    int(ArgKind.BYTES4): (4, "<I"),
    int(ArgKind.BYTES8): (8, "<Q"),
    int(ArgKind.SBYTES4): (4, "<i"),
}
_ARG_LINES = {int(ArgKind.LINE): 1, int(ArgKind.LINE2): 2}


def _valid_opcodes(head: bytes, wanted: int) -> int:
    """How many well-formed opcodes (known byte, complete argument) open ``head``, up to ``wanted``.

    A structural walk only (no stack or memo semantics): the cheap first test of :func:`sniff_pickle`.
    """
    pos, count, end = 0, 0, len(head)
    while count < wanted and pos < end:
        kind = ARG_KIND[head[pos]]
        if kind < 0:
            break
        pos += 1
        if kind in _ARG_FIXED:
            pos += _ARG_FIXED[kind]
        elif kind in _ARG_SIZED:
            width, fmt = _ARG_SIZED[kind]
            if pos + width > end:
                break
            length = struct.unpack_from(fmt, head, pos)[0]
            if length < 0:
                break
            pos += width + length
        elif kind in _ARG_LINES:
            for _ in range(_ARG_LINES[kind]):
                newline = head.find(b"\n", pos)
                if newline < 0:
                    return count
                pos = newline + 1
        if pos > end:
            break
        count += 1
    return count


_SNIFF_LIMITS = Limits(max_opcodes=100_000, max_memo=100_000, max_stack_depth=100_000, max_nesting=10_000)
