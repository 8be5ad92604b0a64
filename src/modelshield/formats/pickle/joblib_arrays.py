"""joblib's inline array format, evaluated symbolically.

``joblib.dump`` replaces each numpy array by a ``joblib.numpy_pickle.NumpyArrayWrapper`` and writes
the array right after the wrapper's BUILD opcode: for plain dtypes an optional padding-length byte
plus padding (joblib >= 1.2, when ``numpy_array_alignment_bytes`` is set), then
``prod(shape) * itemsize`` raw bytes; for object dtypes a nested pickle stream. The VM asks
:func:`wrapper_layout` how many bytes to skip (or whether to parse a nested stream).
"""

from __future__ import annotations

import re

from modelshield._record import record
from modelshield.formats.pickle.values import Call, GlobalRef, SDict

_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")
_FIXED_SIZES = {"b": 1, "?": 1, "M": 8, "m": 8, "O": 8}
_RECONSTRUCTORS = {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("copyreg", "__newobj__")}
#: Class names joblib (and old sklearn-vendored joblib) use for inline arrays.
WRAPPER_NAMES = frozenset({"NumpyArrayWrapper"})
#: Maximum elements in a shape product we accept (beyond any real file).
MAX_BYTES = 1 << 62


@record
class ArrayLayout:
    """What follows a wrapper's BUILD: ``nbytes`` raw bytes, or a nested pickle (``hasobject``)."""

    nbytes: int
    hasobject: bool
    aligned: bool
    shape: tuple[int, ...]
    dtype: str


def constructed_class(value: object) -> GlobalRef | None:
    """The class a symbolic object was instantiated from, when it is a known global."""
    if not isinstance(value, Call):
        return None
    func = value.func
    if value.kind in ("NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"):
        return func if isinstance(func, GlobalRef) else None
    if isinstance(func, GlobalRef) and (func.module, func.name) in _RECONSTRUCTORS:
        args = value.args
        if isinstance(args, tuple) and args and isinstance(args[0], GlobalRef):
            return args[0]
        return None
    return func if isinstance(func, GlobalRef) else None


def is_array_wrapper(value: object) -> bool:
    """True when ``value`` is an instance of joblib's NumpyArrayWrapper."""
    cls = constructed_class(value)
    return cls is not None and cls.name in WRAPPER_NAMES and cls.module.endswith("numpy_pickle")


def wrapper_layout(state: object) -> ArrayLayout | str:
    """The inline data layout described by a wrapper's BUILD state, or why it cannot be known."""
    if not isinstance(state, SDict):
        return "wrapper state is not a dict"
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        return f"wrapper shape is not a tuple of ints: {shape!r}"
    if any(d < 0 for d in shape):
        return f"negative dimension in wrapper shape {shape!r}"
    dtype = _dtype_info(state.get("dtype"))
    if isinstance(dtype, str):
        return dtype
    typestr, itemsize, hasobject = dtype
    count = 1
    for dim in shape:
        count *= dim
    nbytes = count * itemsize
    if nbytes > MAX_BYTES:
        return f"wrapper describes an impossible array size ({nbytes} bytes)"
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return ArrayLayout(nbytes, hasobject, aligned, tuple(shape), typestr)


def _dtype_info(dtype: object) -> tuple[str, int, bool] | str:
    """(typestr, itemsize, hasobject) of a symbolic ``numpy.dtype(...)`` call."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return f"wrapper dtype is not a numpy.dtype call: {dtype!r}"
    typestr = dtype.args[0]
    if not isinstance(typestr, str):
        return f"wrapper dtype type string is not a str: {typestr!r}"
    match = _TYPESTR.match(typestr)
    if match is None:
        return f"unknown dtype type string {typestr!r}"
    char, digits = match.group(1), match.group(2)
    state = dtype.state
    elsize = state[5] if isinstance(state, tuple) and len(state) > 7 and isinstance(state[5], int) else -1
    flags = state[7] if isinstance(state, tuple) and len(state) > 7 and isinstance(state[7], int) else 0
    hasobject = char == "O" or bool(flags & 1)
    if elsize > 0:
        return typestr, elsize, hasobject
    if char in _FIXED_SIZES:
        return typestr, _FIXED_SIZES[char], hasobject
    if not digits:
        return f"cannot size dtype {typestr!r}"
    size = int(digits)
    return typestr, size * 4 if char == "U" else size, hasobject
