"""``@record``: a slotted dataclass built without ``dataclasses`` and without compiling code.

``dataclasses`` compiles every generated method with ``exec`` when the class statement runs
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and, when frozen, ``__setattr__`` and
``__delattr__``), ~0.1-0.2 ms each, and importing it imports ``inspect`` (with ``ast``, ``dis``
and ``tokenize``): together a fifth of ``modelshield scan``'s start-up for the ~40 records a
scan touches, a third of which a scan never instantiates. A record instead gets:

* one ``__repr__``, ``__eq__`` and ``__hash__`` shared by every record, with the results of the
  generated ones (fields compared and hashed as a tuple, ``repr`` as ``Name(field=value, ...)``,
  fields with ``compare=False`` / ``repr=False`` left out);
* when frozen, one shared ``__setattr__`` / ``__delattr__`` raising
  ``dataclasses.FrozenInstanceError``, and its fields pickled as a list, like a frozen slotted
  dataclass;
* an ``__init__`` compiled on its first instantiation: the code ``dataclasses`` writes
  (positional or keyword arguments, defaults, default factories);
* ``__slots__``, ``__match_args__``, and ``__dataclass_fields__`` / ``__dataclass_params__`` made
  on first access, so ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work
  on records (code on the scan path uses :func:`replace` and :func:`field_names` from here).

A method defined in the class body is kept, as ``dataclasses`` does. Equality, hashing and
mutability follow ``dataclasses``' rules for the same ``frozen`` / ``eq`` / ``unsafe_hash``.
Field options are those of :func:`field` (``dataclasses.field`` with the same options works too);
``ClassVar`` annotations are class attributes, not fields. Not supported (refused with TypeError):
``InitVar``, ``KW_ONLY``, ``init=False`` and ``kw_only`` fields.
"""

from __future__ import annotations

import reprlib
import sys
import typing
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


class _Nothing:
    """No default (or no default factory)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nothing>"


_NOTHING: Any = _Nothing()


class _FieldOptions:
    """What :func:`field` returns: the options of one field, read when the record is built.

    Unhashable, so that ``@dataclass`` given one by mistake refuses it as a mutable default
    instead of silently making it the default value.
    """

    __slots__ = ("default", "factory", "compare", "repr")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, default: Any, factory: Any, compare: bool, repr: bool) -> None:
        self.default = default
        self.factory = factory
        self.compare = compare
        self.repr = repr


@overload
def field(*, default: T, compare: bool = True, repr: bool = True) -> T: ...


@overload
def field(*, default_factory: Callable[[], T], compare: bool = True, repr: bool = True) -> T: ...


@overload
def field(*, compare: bool = True, repr: bool = True) -> Any: ...


def field(*, default: Any = _NOTHING, default_factory: Any = _NOTHING, compare: bool = True, repr: bool = True) -> Any:
    """Options of one record field, like ``dataclasses.field``: a default or a default factory,
    and whether the field takes part in equality and hashing (``compare``) and in ``repr``."""
    if default is not _NOTHING and default_factory is not _NOTHING:
        raise ValueError("cannot specify both default and default_factory")
    return _FieldOptions(default, default_factory, compare, repr)


class _Field:
    """One field of a record."""

    __slots__ = ("name", "type", "default", "factory", "compare", "hash", "repr")

    def __init__(
        self, name: str, type: Any, default: Any, factory: Any, compare: bool, hash: bool | None, repr: bool
    ) -> None:
        self.name = name
        self.type = type
        self.default = default
        self.factory = factory
        self.compare = compare
        self.hash = hash  # as given: None = as compare
        self.repr = repr


class _Spec:
    """One record class: its fields, its flags, and the getters the shared methods use."""

    __slots__ = ("fields", "names", "frozen", "eq", "unsafe_hash", "compared", "hashed", "shown")

    def __init__(self, fields: tuple[_Field, ...], frozen: bool, eq: bool, unsafe_hash: bool) -> None:
        self.fields = fields
        self.names = tuple(f.name for f in fields)
        self.frozen = frozen
        self.eq = eq
        self.unsafe_hash = unsafe_hash
        self.compared = _tuple_getter([f.name for f in fields if f.compare])
        self.hashed = _tuple_getter([f.name for f in fields if (f.compare if f.hash is None else f.hash)])
        self.shown = tuple(f.name for f in fields if f.repr)


def _tuple_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return getter


def _spec(cls: type) -> _Spec:
    spec = getattr(cls, "__record__", None)
    if not isinstance(spec, _Spec):
        raise TypeError(f"{cls.__qualname__} is not a record")
    return spec


def _eq(self: Any, other: Any) -> Any:  # bool, or NotImplemented for another class
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = self.__record__.compared
    return values(self) == values(other)


def _hash(self: Any) -> int:
    return hash(self.__record__.hashed(self))


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record__.shown)
    return f"{self.__class__.__qualname__}({inner})"


def _frozen_setattr(self: object, name: str, value: object) -> None:
    from dataclasses import FrozenInstanceError  # only when something tries to change a record

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, name) for name in self.__record__.names]


def _setstate(self: Any, state: list[Any]) -> None:
    for name, value in zip(self.__record__.names, state, strict=False):
        object.__setattr__(self, name, value)


def _compile_init(cls: type) -> Callable[..., None]:
    """Write, compile and install ``cls.__init__`` (what ``dataclasses`` would have generated)."""
    spec = _spec(cls)
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


def _lazy_init(cls_box: list[type]) -> Callable[..., None]:
    """An ``__init__`` that compiles the real one on first call, installs it and runs it."""

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        _compile_init(cls_box[0])(self, *args, **kwargs)

    return __init__


class _AsDataclass:
    """``__dataclass_fields__`` / ``__dataclass_params__`` of a record, made on first access.

    Made by ``dataclasses`` itself from a throwaway class with the same fields, so the field
    objects are the real ones; they are then stored on the record in place of this descriptor.
    """

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, obj: object, owner: type) -> Any:
        import dataclasses  # whoever asks is using dataclasses already

        spec = _spec(owner)
        namespace: dict[str, Any] = {"__module__": owner.__module__, "__qualname__": owner.__qualname__}
        namespace["__annotations__"] = {f.name: f.type for f in spec.fields}
        for f in spec.fields:
            options: dict[str, Any] = {"compare": f.compare, "hash": f.hash, "repr": f.repr}
            if f.factory is not _NOTHING:
                options["default_factory"] = f.factory
            elif f.default is not _NOTHING:
                options["default"] = f.default
            namespace[f.name] = dataclasses.field(**options)
        shadow: type = dataclasses.dataclass(
            type(owner.__name__, (), namespace),
            init=False,
            repr=False,
            eq=spec.eq,
            frozen=spec.frozen,
            unsafe_hash=spec.unsafe_hash,
            match_args=False,
        )
        for name in ("__dataclass_fields__", "__dataclass_params__"):
            type.__setattr__(owner, name, getattr(shadow, name))
        return getattr(owner, self.attribute)


def _is_classvar(annotation: object) -> bool:
    if isinstance(annotation, str):
        head = annotation.partition("[")[0].strip()
        if head in ("InitVar", "dataclasses.InitVar", "KW_ONLY", "dataclasses.KW_ONLY"):
            raise TypeError(f"{head} is not supported by @record")
        return head in ("ClassVar", "typing.ClassVar")
    return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar


def _options(cls: type, name: str, value: Any) -> tuple[Any, Any, bool, bool | None, bool]:
    """(default, factory, compare, hash, repr) of a field from its class-body value."""
    if isinstance(value, _FieldOptions):
        return value.default, value.factory, value.compare, None, value.repr
    dataclasses = sys.modules.get("dataclasses")  # a dataclasses.Field only exists once it is imported
    if dataclasses is not None and isinstance(value, dataclasses.Field):
        if not value.init or value.kw_only is True:
            raise TypeError(f"{cls.__qualname__}.{name}: init=False and kw_only fields are not supported by @record")
        missing = dataclasses.MISSING
        default = _NOTHING if value.default is missing else value.default
        factory = _NOTHING if value.default_factory is missing else value.default_factory
        return default, factory, value.compare, value.hash, value.repr
    if value is not _NOTHING and type(value).__hash__ is None:
        raise ValueError(f"mutable default {type(value)} for field {name} is not allowed: use default_factory")
    return value, _NOTHING, True, None, True


def _fields(cls: type, frozen: bool) -> tuple[tuple[_Field, ...], list[str]]:
    """The fields of ``cls`` (those of record bases first) and the names that need a new slot."""
    fields: dict[str, _Field] = {}
    inherited: set[str] = set()
    for base in reversed(cls.__mro__[1:]):
        spec = base.__dict__.get("__record__")
        if isinstance(spec, _Spec):
            if spec.frozen != frozen:
                raise TypeError(f"{cls.__qualname__}: a frozen and a mutable record cannot inherit from each other")
            fields.update((f.name, f) for f in spec.fields)
            inherited.update(spec.names)
    own: list[str] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        fields[name] = _Field(name, annotation, *_options(cls, name, cls.__dict__.get(name, _NOTHING)))
        own.append(name)
    seen_default = False
    for f in fields.values():
        if f.default is not _NOTHING or f.factory is not _NOTHING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument")
        if f.name == "self":
            raise TypeError(f"{cls.__qualname__}: a record field cannot be called 'self'")
    return tuple(fields.values()), [name for name in own if name not in inherited]


def _build(cls: type, frozen: bool, eq: bool, unsafe_hash: bool) -> type:
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__} already specifies __slots__ (a record makes its own)")
    fields, slots = _fields(cls, frozen)
    spec = _Spec(fields, frozen, eq, unsafe_hash)
    body = dict(cls.__dict__)
    for name in (*slots, "__dict__", "__weakref__"):
        body.pop(name, None)
    if body.get("__hash__", _NOTHING) is None and "__eq__" in body:
        del body["__hash__"]  # Python's implicit None for a body that defines __eq__, not an explicit one
    box: list[type] = []
    init = _lazy_init(box)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    added: dict[str, Any] = {
        "__slots__": tuple(slots),
        "__qualname__": cls.__qualname__,
        "__record__": spec,
        "__match_args__": spec.names,
        "__init__": init,
        "__repr__": _repr,
        "__dataclass_fields__": _AsDataclass("__dataclass_fields__"),
        "__dataclass_params__": _AsDataclass("__dataclass_params__"),
    }
    if frozen:
        added.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
        added.update(__getstate__=_getstate, __setstate__=_setstate)
    if eq:
        added.update(__eq__=_eq, __hash__=_hash if frozen or unsafe_hash else None)
    for name, value in added.items():
        body.setdefault(name, value)
    made = type(cls)(cls.__name__, cls.__bases__, body)
    box.append(made)
    return made


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True, eq: bool = True, unsafe_hash: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(
    cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True, unsafe_hash: bool = False
) -> type[T] | Callable[[type[T]], type[T]]:
    """Class decorator: ``@dataclass(frozen=True, slots=True)`` without its start-up cost.

    ``frozen``, ``eq`` and ``unsafe_hash`` mean what they mean for ``@dataclass``:
    ``@record(frozen=False)`` is a plain ``@dataclass(slots=True)`` (value equality, unhashable),
    ``@record(frozen=False, eq=False)`` one compared by identity. A frozen ``__init__`` sets each
    field through ``object.__setattr__``, 4x the cost: records built by the thousand on a hot path
    and never changed afterwards are ``@record(frozen=False, unsafe_hash=True)``.
    """

    def make(cls: type[T]) -> type[T]:
        made: type[T] = _build(cls, frozen, eq, unsafe_hash)
        return made

    return make if cls is None else make(cls)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with some fields changed (``dataclasses.replace`` for records)."""
    for name in _spec(obj.__class__).names:
        if name not in changes:
            changes[name] = getattr(obj, name)
    made: T = obj.__class__(**changes)
    return made


def field_names(record_or_class: object) -> tuple[str, ...]:
    """The field names of a record (or record class), in order."""
    cls = record_or_class if isinstance(record_or_class, type) else record_or_class.__class__
    return _spec(cls).names
