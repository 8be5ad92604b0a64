"""The VM's inlined opcode fast paths give exactly what the generic handlers give.

The reference VM is the same ``_loop`` with the fast-path block cut out, so every opcode goes
through its ``op_*`` handler. Both run on real pickles of every protocol, on attack payloads and
on thousands of mutations of them; their IR must be the same, field by field.
"""

from __future__ import annotations

import collections
import inspect
import io
import pickle
import random
import textwrap
from typing import Any

import pytest
from tests.formats._pickle_payloads import payloads

from modelshield.formats.pickle import vm
from modelshield.formats.pickle.values import PickleStream, render
from modelshield.formats.pickle.window import CHUNK, ByteWindow
from modelshield.limits import Limits


def _generic_vm() -> type[vm.PickleVM]:
    source = textwrap.dedent(inspect.getsource(vm.PickleVM._loop))
    start = source.index("# Inlined fast paths")
    stop = source.index("# Generic path")
    start, stop = source.rindex("\n", 0, start) + 1, source.rindex("\n", 0, stop) + 1
    assert "if op >= 0x68:" in source[start:stop], "the fast-path block moved: update this test"
    namespace: dict[str, Any] = {}
    exec(compile(source[:start] + source[stop:], "<generic _loop>", "exec"), vars(vm), namespace)  # noqa: S102
    return type("GenericVM", (vm.PickleVM,), {"_loop": namespace["_loop"]})


GENERIC = _generic_vm()
LIMITS = Limits(max_opcodes=200_000)


def _run(cls: type[vm.PickleVM], data: bytes) -> tuple[object, ...]:
    budget = vm.Budget(None, LIMITS)
    machine = cls(vm.ByteWindow(io.BytesIO(data)), budget)
    return _shape(machine.run()) + (machine.limit_error is not None,)


def _shape(stream: PickleStream) -> tuple[object, ...]:
    def sites(calls: tuple[Any, ...]) -> list[tuple[object, ...]]:
        return [(c.kind, c.callable, c.offset, c.opcode_index, c.args, c.note) for c in calls]

    return (
        stream.offset,
        stream.end if stream.error is None else None,  # where a broken stream stopped reading is not used
        stream.protocol,
        stream.error,
        stream.error_offset,
        stream.limit,
        stream.opcode_count,
        stream.call_counts,
        sites(stream.calls),
        sites(stream.persids),
        [(g.module, g.name, g.offset, g.opcode_index, g.via, g.count, g.uses, g.unresolved) for g in stream.globals],
        [(e.via, e.offset, e.length, e.data, e.transcode) for e in stream.embedded],
        stream.skipped_bytes,
        stream.joblib_arrays,
        render(stream.value, 6, 4000),
    )


class _Reduced:
    def __init__(self, value: object) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (collections.OrderedDict, ((("k", self.value),),))


def _samples(tmp: str) -> list[bytes]:
    values: list[object] = [
        None,
        [None, True, False, 0, 255, 256, 65535, 65536, -1, 2**31, 2**64, -(2**70), 1.5, -0.0],
        {"a": 1, "b": [1, 2, 3], "c": (1,), "d": (1, 2), "e": (1, 2, 3), "f": (1, 2, 3, 4)},
        ["short", "é" * 10, "x" * 300, b"b" * 10, b"B" * 300, bytearray(b"ba")],
        {frozenset({1, 2}), (3, 4)},
        [[[]], {}, {"nested": {"deep": [1, {"x": (2, 3)}]}}],
        collections.OrderedDict(a=1, b=2),
        [_Reduced(1), _Reduced("two"), _Reduced([3])],
        {f"k{i}": list(range(i)) for i in range(40)},
        [bytes(CHUNK + 100), "tail", (1, 2)],  # a payload past the read window, then short opcodes
    ]
    out = [pickle.dumps(value, protocol=proto) for value in values for proto in range(6)]
    out.extend(payloads(f"{tmp}/canary", tmp).values())
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2, 3), "b": torch.zeros(3)}, buf, _use_new_zipfile_serialization=False)
    out.append(buf.getvalue())
    return out


def test_fast_paths_give_the_generic_ir(tmp_path: object) -> None:
    samples = _samples(str(tmp_path))
    rng = random.Random(1234)
    checked = 0
    for data in samples:
        variants = [data]
        for _ in range(40 if len(data) < 5000 else 5):
            mutated = bytearray(data)
            if rng.random() < 0.2:
                del mutated[rng.randrange(len(mutated)) :]
            else:
                for _ in range(rng.choice((1, 1, 2, 3))):
                    at = rng.randrange(len(mutated))
                    mutated[at] = rng.choice((rng.randrange(256), *b"().0tRQhqc\x85\x86\x87\x8c\x94Xe\x75}"))
            variants.append(bytes(mutated))
        for blob in variants:
            assert _run(vm.PickleVM, blob) == _run(GENERIC, blob), blob[:80]
            checked += 1
    assert checked > 2000


def test_the_reference_really_skips_the_fast_paths() -> None:
    # The cut block must be the inlined one: without it, a BINPUT still works (via its handler).
    data = pickle.dumps([("a", "a")], protocol=2)
    assert _run(GENERIC, data) == _run(vm.PickleVM, data)
    assert vm.PickleVM._loop is not GENERIC._loop
    window = ByteWindow(io.BytesIO(data))
    assert GENERIC(window, vm.Budget(None, LIMITS)).run().error is None
