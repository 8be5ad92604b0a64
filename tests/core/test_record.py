"""``@record`` behaves like ``@dataclass(frozen=True, slots=True)``: equality, hashing, repr, immutability."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from modelshield._record import record


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    hidden: object = dataclasses.field(default=None, compare=False, repr=False)
    ratio: float = 1.0


@record
class Ours:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()
    hidden: object = dataclasses.field(default=None, compare=False, repr=False)
    ratio: float = 1.0


@record
class Single:
    only: int


CASES = [
    (("a",), {}),
    (("a", 3, ("x", "y")), {}),
    (("a",), {"hidden": [1, 2]}),
    (("b", 0, (), None, math.nan), {}),
    (("ü", -1, ("z",)), {"ratio": 2.5}),
]


@pytest.mark.parametrize("args, kwargs", CASES)
def test_same_equality_hash_and_repr_as_a_dataclass(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    ref_a, ref_b = Reference(*args, **kwargs), Reference(*args, **kwargs)  # type: ignore[arg-type]
    our_a, our_b = Ours(*args, **kwargs), Ours(*args, **kwargs)  # type: ignore[arg-type]
    assert (our_a == our_b) == (ref_a == ref_b)
    assert (our_a == our_a) == (ref_a == ref_a)  # noqa: PLR0124 - identity shortcut, as a tuple compares
    assert hash(our_a) == hash(ref_a)
    assert repr(our_a).replace("Ours", "Reference") == repr(ref_a)
    assert dataclasses.replace(our_a, size=9).size == 9
    assert pickle.loads(pickle.dumps(our_a)) == our_a or math.isnan(our_a.ratio)


def test_compare_false_fields_are_ignored_and_other_classes_differ() -> None:
    assert Ours("a", hidden=1) == Ours("a", hidden=2)
    assert Ours("a") != Ours("b")
    assert Ours("a") != Reference("a")
    assert Ours("a").__eq__("a") is NotImplemented
    assert Single(1) == Single(1) and hash(Single(1)) == hash((1,)) and repr(Single(1)) == "Single(only=1)"


def test_frozen_and_slotted() -> None:
    item = Ours("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.name = "b"  # type: ignore[misc]
    assert not hasattr(item, "__dict__")
    assert {Ours("a"), Ours("a")} == {Ours("a")}
