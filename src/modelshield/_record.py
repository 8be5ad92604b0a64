"""``@record``: a slotted dataclass that compiles no code when its class is created.

``dataclasses`` compiles every generated method with ``exec`` when the class statement runs
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and, when frozen, ``__setattr__`` and
``__delattr__``), ~0.1-0.2 ms each; the ~40 records a scan touches made that a fifth of
``modelshield scan``'s start-up, and a third of them are never instantiated by a scan. Here:

* ``__repr__``, ``__eq__``, ``__hash__`` are one implementation for every record, with the results
  of the generated ones (fields compared and hashed as a tuple, ``repr`` as
  ``Name(field=value, ...)``, fields with ``compare=False`` / ``repr=False`` left out);
* frozen records share one ``__setattr__`` / ``__delattr__`` (raising ``FrozenInstanceError``)
  and pickle their fields as a list, like a frozen slotted dataclass;
* ``__init__`` is compiled on the first instantiation (the same code ``dataclasses`` writes:
  positional or keyword arguments, defaults, default factories).

A method defined in the class body is kept, as ``dataclasses`` does. Equality, hashing and
mutability follow ``dataclasses``' rules for the same ``frozen`` / ``eq`` / ``unsafe_hash``.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")

#: A field without a default (or factory).
_NOTHING: Any = dataclasses.MISSING


class _Field:
    """What a record needs to know about one field."""

    __slots__ = ("name", "default", "factory", "compare", "hash", "repr")

    def __init__(self, name: str, default: Any, factory: Any, compare: bool, hash: bool | None, repr: bool) -> None:
        self.name = name
        self.default = default
        self.factory = factory
        self.compare = compare
        self.hash = compare if hash is None else hash
        self.repr = repr


class _Spec:
    """One record class: its fields, whether it is frozen, and (built on first use) its comparers."""

    __slots__ = ("fields", "names", "frozen", "compared", "hashed", "shown")

    def __init__(self, fields: tuple[_Field, ...], frozen: bool) -> None:
        self.fields = fields
        self.names = tuple(f.name for f in fields)
        self.frozen = frozen
        self.compared: Callable[[Any], tuple[Any, ...]] | None = None
        self.hashed: Callable[[Any], tuple[Any, ...]] = _tuple_getter([f.name for f in fields if f.hash])
        self.shown = tuple(f.name for f in fields if f.repr)


#: record class -> its spec
_SPECS: dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:  # a subclass of a record
        spec = next(_SPECS[base] for base in cls.__mro__ if base in _SPECS)
        _SPECS[cls] = spec
    return spec


def _tuple_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return getter


def _eq(self: object, other: object) -> Any:  # bool, or NotImplemented for another class
    if other.__class__ is not self.__class__:
        return NotImplemented
    spec = _spec(self.__class__)
    values = spec.compared
    if values is None:
        values = spec.compared = _tuple_getter([f.name for f in spec.fields if f.compare])
    return values(self) == values(other)


def _hash(self: object) -> int:
    return hash(_spec(self.__class__).hashed(self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in _spec(self.__class__).shown)
    return f"{self.__class__.__qualname__}({inner})"


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: object) -> list[Any]:
    return [getattr(self, name) for name in _spec(self.__class__).names]


def _setstate(self: object, state: list[Any]) -> None:
    for name, value in zip(_spec(self.__class__).names, state, strict=False):
        object.__setattr__(self, name, value)


def _compile_init(cls: type) -> Callable[..., None]:
    """Write, compile and install ``cls.__init__`` (what ``dataclasses`` would have generated)."""
    spec = _SPECS[cls]
    namespace: dict[str, Any] = {"__record_set": object.__setattr__, "__record_nothing": _NOTHING}
    params: list[str] = []
    body: list[str] = []
    for index, f in enumerate(spec.fields):
        value = f.name
        if f.factory is not _NOTHING:
            namespace[f"__record_factory{index}"] = f.factory
            params.append(f"{f.name}=__record_nothing")
            value = f"__record_factory{index}() if {f.name} is __record_nothing else {f.name}"
        elif f.default is not _NOTHING:
            namespace[f"__record_default{index}"] = f.default
            params.append(f"{f.name}=__record_default{index}")
        else:
            params.append(f.name)
        body.append(f"__record_set(self, {f.name!r}, {value})" if spec.frozen else f"self.{f.name} = {value}")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, namespace)  # the source above: built from the field names only
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    type.__setattr__(cls, "__init__", init)
    return init


def _lazy_init(cls: type) -> Callable[..., None]:
    """An ``__init__`` that compiles the real one on first call, installs it and runs it."""

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        _compile_init(cls)(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _check_order(cls: type, fields: tuple[_Field, ...]) -> None:
    seen_default = False
    for f in fields:
        if f.default is not _NOTHING or f.factory is not _NOTHING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument")
        if f.name == "self":
            raise TypeError(f"{cls.__qualname__}: a record field cannot be called 'self'")


def _finish(made: type, frozen: bool, eq: bool, unsafe_hash: bool, body: dict[str, Any]) -> None:
    """Install the shared methods on ``made`` (the slotted class), keeping those of the class body."""
    fields = tuple(
        _Field(f.name, f.default, f.default_factory, f.compare, f.hash, f.repr) for f in dataclasses.fields(made)
    )
    _check_order(made, fields)
    _SPECS[made] = _Spec(fields, frozen)
    methods: dict[str, Any] = {"__init__": _lazy_init(made), "__repr__": _repr}
    if frozen:
        methods.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
        methods.update(__getstate__=_getstate, __setstate__=_setstate)
    if eq:
        methods["__eq__"] = _eq
        methods["__hash__"] = _hash if frozen or unsafe_hash else None
    if body.get("__hash__", _NOTHING) is None and "__eq__" in body:
        del body["__hash__"]  # Python's implicit None for a body that defines __eq__, not an explicit one
    for name, method in methods.items():
        if name not in body:
            setattr(made, name, method)


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True, eq: bool = True, unsafe_hash: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def record(
    cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True, unsafe_hash: bool = False
) -> type[T] | Callable[[type[T]], type[T]]:
    """Class decorator: ``@dataclass(frozen=True, slots=True)`` without code compiled at class creation.

    ``frozen``, ``eq`` and ``unsafe_hash`` mean what they mean for ``@dataclass``:
    ``@record(frozen=False)`` is a plain ``@dataclass(slots=True)`` (value equality, unhashable),
    ``@record(frozen=False, eq=False)`` one compared by identity. A frozen ``__init__`` sets each
    field through ``object.__setattr__``, 4x the cost: records built by the thousand on a hot path
    and never changed afterwards are ``@record(frozen=False, unsafe_hash=True)``.
    """

    def make(cls: type[T]) -> type[T]:
        body = dict(cls.__dict__)
        made = dataclasses.dataclass(init=False, repr=False, eq=False, frozen=False, slots=True)(cls)
        _finish(made, frozen, eq, unsafe_hash, body)
        return made

    return make if cls is None else make(cls)
