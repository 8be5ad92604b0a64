"""Symbolic values of the pickle VM and the per-stream IR handed to analyzers.

Nothing here is ever executed. The VM pushes these objects where a real unpickler would push
live objects:

* literals (int, float, str, bytes, bool, None) are plain Python constants; tuples are tuples;
* :class:`Large` stands for a byte/str payload the VM skipped (length + short prefix);
* :class:`SList`, :class:`SDict`, :class:`SSet` are containers (contents kept up to a cap);
* :class:`GlobalRef` is an imported global (``module.name``), one object per distinct name
  per stream, recording how the loader would use it (:data:`USE_CALL` ...);
* :class:`Call` is the result of invoking something (REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX);
* :class:`PersId` is the result of a persistent-id lookup, :class:`Buffer` an out-of-band buffer.

Per stream, the VM produces a :class:`PickleStream` with every :class:`CallSite` (what would be
invoked, with what arguments, where) and every :class:`GlobalRef`.
"""

from __future__ import annotations

from modelshield._record import field, record

#: The global is invoked as a function: REDUCE/INST/OBJ target, or called by a known higher-order helper.
USE_CALL = 1
#: The global is a class instantiated without calling ``__init__`` (NEWOBJ, copyreg reconstructors).
USE_CONSTRUCT = 2
#: The global object itself is mutated (BUILD/SETITEM/APPEND on a class, function or module).
USE_MUTATE = 4
#: The global appears inside a persistent id (resolved by the loader's persistent_load).
USE_PERSID = 8
#: The global was only called as a type lookup that resolved to a plain data type
#: (dill's ``_load_type('slice')``, written by joblib/pickle when dill is imported).
USE_TYPE_LOOKUP = 16

#: Container contents kept per container (the rest is only counted).
KEEP_ITEMS = 256


@record(frozen=False, eq=False)
class Large:
    """A payload the VM skipped without loading: its kind, length, first bytes and offset."""

    kind: str
    length: int
    prefix: bytes
    offset: int
    encoding: str = ""

    def __repr__(self) -> str:
        return f"<{self.kind} {self.length} bytes: {self.prefix[:16]!r}...>"


@record(frozen=False, eq=False)
class GlobalRef:
    """An imported global ``module.name`` (GLOBAL, STACK_GLOBAL, INST, EXT), shared per stream."""

    module: str
    name: str
    offset: int
    opcode_index: int
    via: str = "GLOBAL"
    count: int = 1
    uses: int = 0
    ext_code: int | None = None
    unresolved: bool = False

    @property
    def dotted(self) -> str:
        """``module.name`` for display."""
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return self.dotted


@record(frozen=False, eq=False)
class Call:
    """The symbolic result of invoking ``func`` with ``args`` (and ``kwargs``) via opcode ``kind``."""

    func: object
    args: object
    kind: str
    kwargs: object = None
    state: object = None
    items: list[object] = field(default_factory=list)
    item_count: int = 0

    def __repr__(self) -> str:
        return render(self)


@record(frozen=False, eq=False)
class PersId:
    """The symbolic result of a persistent-id lookup (PERSID/BINPERSID)."""

    pid: object

    def __repr__(self) -> str:
        return f"persistent_load({render(self.pid)})"


@record(frozen=False, eq=False)
class Buffer:
    """An out-of-band buffer (protocol 5 NEXT_BUFFER); ``readonly`` after READONLY_BUFFER."""

    index: int
    readonly: bool = False

    def __repr__(self) -> str:
        return f"<out-of-band buffer #{self.index}>"


class SList:
    """A list being built (EMPTY_LIST/LIST + APPEND(S)); keeps the first ``cap`` items."""

    __slots__ = ("items", "total", "cap")

    def __init__(self, cap: int = KEEP_ITEMS) -> None:
        self.items: list[object] = []
        self.total = 0
        self.cap = cap

    def add(self, values: list[object]) -> None:
        """Append values (only the first ``cap`` are kept)."""
        room = self.cap - len(self.items)
        if room > 0:
            self.items.extend(values[:room])
        self.total += len(values)

    def __repr__(self) -> str:
        return render(self)


class SDict:
    """A dict being built (EMPTY_DICT/DICT + SETITEM(S)); keeps the first KEEP_ITEMS pairs.

    ``dunder_keys`` records every ``__x__`` string key ever set, even past the cap, so state
    dicts that plant ``__reduce__``/``__setstate__`` cannot hide behind padding.
    """

    __slots__ = ("pairs", "total", "dunder_keys")

    def __init__(self) -> None:
        self.pairs: list[tuple[object, object]] = []
        self.total = 0
        self.dunder_keys: list[str] = []

    def set(self, key: object, value: object) -> None:
        """Record ``self[key] = value``."""
        if len(self.pairs) < KEEP_ITEMS:
            self.pairs.append((key, value))
        self.total += 1
        if type(key) is str and key[:2] == "__" and key[-2:] == "__" and len(key) > 4 and len(self.dunder_keys) < 32:
            self.dunder_keys.append(key)

    def set_many(self, items: list[object]) -> None:
        """Record ``self[k] = v`` for an even-length flat list ``[k1, v1, k2, v2, ...]``."""
        for i in range(0, len(items) - 1, 2):
            self.set(items[i], items[i + 1])

    def get(self, key: str) -> object:
        """The last kept value for a string key, or None."""
        found: object = None
        for k, v in self.pairs:
            if k == key:
                found = v
        return found

    def __repr__(self) -> str:
        return render(self)


@record(frozen=False, eq=False)
class SSet:
    """A set (EMPTY_SET + ADDITEMS) or frozenset (FROZENSET)."""

    items: list[object] = field(default_factory=list)
    total: int = 0
    frozen: bool = False

    def add(self, values: list[object]) -> None:
        """Add values (only the first KEEP_ITEMS are kept)."""
        room = KEEP_ITEMS - len(self.items)
        if room > 0:
            self.items.extend(values[:room])
        self.total += len(values)


@record(frozen=False, unsafe_hash=True)  # a dozen per stream on the VM's hot path; nothing changes them after the VM
class CallSite:
    """One invocation (or implicit method call) loading the pickle would perform.

    ``kind`` is the opcode family: REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD, EXT, PERSID,
    or APPEND/SETITEM/ADDITEMS when those mutate something that is not a plain container.
    ``target`` is the GlobalRef called (or whose instance is built) when it is known; otherwise
    ``callable`` describes the computed callable. ``note`` carries structural red flags found
    by the VM (e.g. a BUILD on a global, dunder keys in a state dict).
    """

    kind: str
    callable: str
    target: GlobalRef | None
    rendered: str | None
    offset: int
    opcode_index: int
    raw_args: object = None
    note: str = ""

    @property
    def args(self) -> str:
        """The arguments as text; rendered on demand (most call sites never reach a report)."""
        if self.rendered is not None:
            return self.rendered
        if self.kind in ("BUILD", "APPEND", "SETITEM", "ADDITEMS", "PERSID"):
            return render(self.raw_args)
        return render_args(self.raw_args)

    def text(self) -> str:
        """The call as text, e.g. ``os.system('touch /tmp/x')``."""
        if self.kind == "BUILD":
            return f"BUILD {self.callable} with state {self.args}"
        if self.kind in ("APPEND", "SETITEM", "ADDITEMS"):
            return f"{self.kind} on {self.callable}: {self.args}"
        if self.kind == "PERSID":
            return f"persistent_load({self.args})"
        return f"{self.callable}{self.args}"


@record
class Embedded:
    """A payload passed to a loader re-entry function (e.g. bytes given to ``pickle.loads``).

    ``data`` holds small payloads; otherwise ``offset``/``length`` locate the raw bytes in the blob.
    ``transcode`` marks protocol-2 bytes written as UTF-8 text of a latin-1 string
    (``_codecs.encode(s, 'latin1')``): the real bytes are ``text.encode('latin-1')``.
    """

    via: str
    offset: int
    length: int
    data: bytes | None
    transcode: bool = False


@record
class PickleStream:
    """The IR of one pickle stream: everything loading it would import and invoke.

    ``offset``/``end`` are absolute byte offsets in the scanned blob; ``error`` is set when the
    stream is malformed (the parse stopped there, findings before it are kept); ``limit`` names
    the limit that stopped it, if any. ``call_counts`` counts every call per callable, including
    the ones past the per-callable recording cap. ``nested_in`` is the offset of the enclosing
    stream for embedded streams (joblib object arrays), else None.
    """

    offset: int
    end: int
    protocol: int | None
    calls: tuple[CallSite, ...]
    globals: tuple[GlobalRef, ...]
    opcode_count: int
    error: str | None = None
    error_offset: int | None = None
    limit: str | None = None
    call_counts: dict[str, int] = field(default_factory=dict)
    persids: tuple[CallSite, ...] = ()
    embedded: tuple[Embedded, ...] = ()
    joblib_arrays: int = 0
    skipped_bytes: int = 0
    nested_in: int | None = None
    value: object = None

    @property
    def stopped(self) -> bool:
        """True when the stream ended with STOP (no error)."""
        return self.error is None


def render(value: object, depth: int = 3, limit: int = 240) -> str:
    """A short, bounded, cycle-safe text form of a symbolic value."""
    text = _render(value, depth)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render_seq(values: list[object] | tuple[object, ...], total: int, depth: int) -> str:
    shown = [_render(v, depth - 1) for v in values[:8]]
    if total > len(shown):
        shown.append(f"...+{total - len(shown)}")
    return ", ".join(shown)


def _render(value: object, depth: int) -> str:
    if depth < 0:
        return "..."
    if isinstance(value, str | bytes | int | float | complex | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 120 else text[:117] + "..."
    if isinstance(value, tuple):
        inner = _render_seq(value, len(value), depth)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, GlobalRef | Large | Buffer | PersId):
        return repr(value)
    if isinstance(value, Call):
        return f"{_render(value.func, depth - 1)}{_render_args(value.args, depth)}"
    if isinstance(value, SList):
        return f"[{_render_seq(value.items, value.total, depth)}]"
    if isinstance(value, SSet):
        return (
            ("frozenset({" if value.frozen else "{")
            + _render_seq(value.items, value.total, depth)
            + ("})" if value.frozen else "}")
        )
    if isinstance(value, SDict):
        shown = [f"{_render(k, depth - 1)}: {_render(v, depth - 1)}" for k, v in value.pairs[:8]]
        if value.total > len(shown):
            shown.append(f"...+{value.total - len(shown)}")
        return "{" + ", ".join(shown) + "}"
    return f"<{type(value).__name__}>"


def _render_args(args: object, depth: int) -> str:
    if isinstance(args, tuple):
        return "(" + _render_seq(args, len(args), depth) + ")"
    return f"(*{_render(args, depth - 1)})"


def render_args(args: object, depth: int = 3, limit: int = 240) -> str:
    """Render call arguments as ``(a, b)`` (bounded)."""
    text = _render_args(args, depth)
    return text if len(text) <= limit else text[: limit - 4] + "...)"
