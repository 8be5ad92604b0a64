"""``@record``: a frozen, slotted dataclass whose ``__repr__``, ``__eq__`` and ``__hash__`` are shared.

``dataclasses`` compiles six functions for every frozen class (``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``), ~0.35 ms each class; the ~40 records a
scan touches made that a fifth of ``modelshield scan``'s start-up. Here only ``__init__`` and the
two frozen guards are generated; the other three are one implementation for every record, with
the same results as the generated ones (fields compared and hashed as a tuple, ``repr`` as
``Name(field=value, ...)``, fields with ``compare=False`` / ``repr=False`` left out).
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")

#: class -> (getter of the compared fields as a tuple, getter of the hashed ones, repr field names)
_PLAN: dict[type, tuple[Callable[[Any], tuple[Any, ...]], Callable[[Any], tuple[Any, ...]], tuple[str, ...]]] = {}


def _tuple_getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return getter


def _plan(cls: type) -> tuple[Callable[[Any], tuple[Any, ...]], Callable[[Any], tuple[Any, ...]], tuple[str, ...]]:
    plan = _PLAN.get(cls)
    if plan is None:
        fields = dataclasses.fields(cls)
        compared = [f.name for f in fields if f.compare]
        hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
        plan = (_tuple_getter(compared), _tuple_getter(hashed), tuple(f.name for f in fields if f.repr))
        _PLAN[cls] = plan
    return plan


def _eq(self: object, other: object) -> Any:  # bool, or NotImplemented for another class
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = _plan(self.__class__)[0]
    return values(self) == values(other)


def _hash(self: object) -> int:
    return hash(_plan(self.__class__)[1](self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    names = _plan(self.__class__)[2]
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
    return f"{self.__class__.__qualname__}({inner})"


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True)
def record(cls: type[T] | None = None, /, *, frozen: bool = True) -> type[T] | Callable[[type[T]], type[T]]:
    """Class decorator: ``@dataclass(frozen=True, slots=True)`` with the shared methods above.

    ``@record(frozen=False)`` is for records built by the thousand on a hot path and never changed
    afterwards: a frozen ``__init__`` sets each field through ``object.__setattr__``, 4x the cost.
    """

    def make(cls: type[T]) -> type[T]:
        made = dataclasses.dataclass(frozen=frozen, slots=True, repr=False, eq=False)(cls)
        made.__eq__ = _eq  # type: ignore[method-assign]
        made.__hash__ = _hash  # type: ignore[method-assign]
        made.__repr__ = _repr  # type: ignore[method-assign]
        return made

    return make if cls is None else make(cls)
