"""``@record`` behaves like ``@dataclass(frozen=True, slots=True)``: equality, hashing, repr, immutability."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import pickle
from typing import ClassVar

import pytest

from modelshield._record import field, field_names, record, replace


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


@dataclasses.dataclass(slots=True)
class MutableReference:
    name: str
    items: list[int] = dataclasses.field(default_factory=list)


@record(frozen=False)
class Mutable:
    name: str
    items: list[int] = dataclasses.field(default_factory=list)


@record(frozen=False, eq=False)
class ByIdentity:
    name: str


@record(frozen=False, unsafe_hash=True)
class HashedMutable:
    name: str
    size: int = 0


@record
class Frozen:
    name: str
    items: tuple[int, ...] = ()


def test_mutable_record_is_a_plain_slotted_dataclass() -> None:
    ours, ref = Mutable("a"), MutableReference("a")
    assert ours == Mutable("a", []) and ours != Mutable("a", [1]) and ours.items is not Mutable("a").items
    assert repr(ours).replace("Mutable", "MutableReference") == repr(ref)
    assert type(ours).__hash__ is None and type(ref).__hash__ is None
    with pytest.raises(TypeError):
        hash(ours)
    ours.items.append(1)
    ours.name = "b"
    assert ours == Mutable("b", [1]) and not hasattr(ours, "__dict__")
    assert pickle.loads(pickle.dumps(ours)) == ours
    assert dataclasses.replace(ours, name="c") == Mutable("c", [1])


def test_eq_false_compares_by_identity_and_unsafe_hash_hashes_values() -> None:
    one = ByIdentity("a")
    assert one == one and one != ByIdentity("a")  # noqa: PLR0124
    assert hash(one) == object.__hash__(one)
    assert HashedMutable("a") == HashedMutable("a", 0) and hash(HashedMutable("a", 2)) == hash(("a", 2))


def test_frozen_record_pickles_copies_and_refuses_changes() -> None:
    item = Frozen("a", (1, 2))
    assert pickle.loads(pickle.dumps(item)) == item and copy.deepcopy(item) == item and copy.copy(item) == item
    assert item.__getstate__() == ["a", (1, 2)]  # what a frozen slotted dataclass pickles
    with pytest.raises(dataclasses.FrozenInstanceError):
        del item.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.other = 1  # type: ignore[attr-defined]


def test_init_is_compiled_on_first_use_with_the_dataclass_signature() -> None:
    @record
    class Late:
        first: int
        second: str = "x"
        third: list[int] = dataclasses.field(default_factory=lambda: [7])

    assert Late.__init__.__code__.co_varnames[:3] == ("self", "args", "kwargs")  # nothing compiled yet
    assert Late(1) == Late(first=1, second="x", third=[7]) and Late(1, "y").second == "y"
    with pytest.raises(TypeError):
        Late()  # type: ignore[call-arg]
    assert list(inspect.signature(Late).parameters) == ["first", "second", "third"]
    assert Late.__init__.__qualname__.endswith("Late.__init__")


def test_methods_of_the_class_body_are_kept() -> None:
    @record
    class Shown:
        name: str

        def __repr__(self) -> str:
            return "shown"

    assert repr(Shown("a")) == "shown" and Shown("a") == Shown("a")


def test_field_without_default_after_one_with_a_default_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default argument 'second' follows default argument"):

        @record
        class Wrong:
            first: int = 0
            second: int  # type: ignore[misc]


@record
class WithOptions:
    name: str
    hidden: object = field(default=None, compare=False, repr=False)
    items: tuple[int, ...] = field(default=())
    extra: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "class attribute, not a field"


def test_dataclasses_functions_work_on_records() -> None:
    item = WithOptions("a", hidden=1)
    assert dataclasses.is_dataclass(WithOptions) and dataclasses.is_dataclass(item)
    assert [f.name for f in dataclasses.fields(item)] == ["name", "hidden", "items", "extra"]
    assert [(f.compare, f.repr) for f in dataclasses.fields(WithOptions)][1] == (False, False)
    assert dataclasses.asdict(item) == {"name": "a", "hidden": 1, "items": (), "extra": []}
    assert dataclasses.replace(item, name="b") == WithOptions("b") and dataclasses.replace(item).hidden == 1
    assert dataclasses.fields(Ours)[3].compare is False and dataclasses.fields(Single)[0].name == "only"
    assert WithOptions.__dataclass_params__.frozen and not Mutable.__dataclass_params__.frozen


def test_replace_and_field_names_without_dataclasses() -> None:
    item = WithOptions("a", hidden=1, items=(1,))
    assert replace(item, items=(2,)) == WithOptions("a", items=(2,)) and replace(item, name="b").hidden == 1
    assert field_names(item) == field_names(WithOptions) == ("name", "hidden", "items", "extra")
    assert WithOptions.__match_args__ == ("name", "hidden", "items", "extra") and WithOptions.kind.startswith("class")
    assert repr(item) == "WithOptions(name='a', items=(1,), extra=[])"
    with pytest.raises(TypeError):
        replace(item, unknown=1)


def test_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="mutable default"):

        @record
        class MutableDefault:
            items: list[int] = []

    with pytest.raises(ValueError, match="mutable default"):  # our field() given to @dataclass

        @dataclasses.dataclass
        class WrongSpecifier:
            size: int = field(default=0)

    with pytest.raises(TypeError, match="not a record"):
        field_names(Reference)
