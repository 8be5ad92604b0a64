"""Unit tests of the symbolic pickle VM, one opcode family at a time (nothing is ever loaded)."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct

import pytest
from tests.formats._pickle_payloads import g0, os_system, s0, u4

from modelshield.errors import LimitExceeded
from modelshield.formats.interface import Blob, ScanContext
from modelshield.formats.pickle import (
    USE_CALL,
    USE_CONSTRUCT,
    Buffer,
    Call,
    GlobalRef,
    Large,
    PersId,
    PickleStream,
    SDict,
    SList,
    SSet,
    iter_pickle_streams,
    parse_one_stream,
    sniff_pickle,
)
from modelshield.formats.pickle.vm import KEEP_PAYLOAD
from modelshield.limits import Limits


def run(data: bytes) -> PickleStream:
    """Parse one stream from bytes."""
    streams, limit = parse_one_stream(io.BytesIO(data), None)
    assert limit is None
    return streams[-1]


def ctx_for(data: bytes, limits: Limits | None = None) -> ScanContext:
    blob = Blob("mem.pkl", (), len(data), lambda: io.BytesIO(data))
    return ScanContext(blob, limits or Limits())


def test_literals_of_every_protocol_round_trip_symbolically() -> None:
    value = [None, True, False, 7, -300, 70000, 2**80, -(2**70), 1.5, "txt", "é", (1,), (1, 2), (1, 2, 3), ()]
    for proto in range(6):
        result = run(pickle.dumps(value, protocol=proto))
        assert result.error is None and result.calls == ()
        assert isinstance(result.value, SList)
        assert result.value.items == value, proto


def test_bytes_are_literals_from_protocol_3_and_codec_calls_before() -> None:
    assert run(pickle.dumps(b"raw", protocol=3)).value == b"raw"
    old = run(pickle.dumps(b"raw", protocol=2))
    assert [c.text() for c in old.calls] == ["_codecs.encode('raw', 'latin1')"]


def test_dicts_sets_frozensets_and_containers() -> None:
    result = run(pickle.dumps({"k": {1, 2}, "f": frozenset([3])}, protocol=4))
    assert isinstance(result.value, SDict)
    values = dict(result.value.pairs)
    assert isinstance(values["k"], SSet) and sorted(values["k"].items) == [1, 2]  # type: ignore[type-var]
    assert isinstance(values["f"], SSet) and values["f"].frozen


def test_text_opcodes_put_get_dup_pop_and_pop_mark() -> None:
    data = b"(I1\nI2\n1(I3\np0\n0g0\n2t."
    result = run(data)
    assert result.error is None and result.value == (3, 3)


def test_memo_binput_longbinput_memoize_and_gets() -> None:
    data = b"\x80\x04K\x05q\x01K\x06r\x00\x01\x00\x00K\x07\x94h\x01j\x00\x01\x00\x00h\x02\x87."
    result = run(data)
    assert result.value == (5, 6, 7)


def test_large_payloads_are_skipped_with_offset_and_prefix() -> None:
    blob = b"A" * (KEEP_PAYLOAD * 10)
    data = b"\x80\x04\x8e" + struct.pack("<Q", len(blob)) + blob + b"."
    result = run(data)
    assert isinstance(result.value, Large)
    assert (result.value.length, result.value.offset, result.value.prefix[:4]) == (len(blob), 11, b"AAAA")
    assert result.skipped_bytes == len(blob)


def test_bytearray_and_out_of_band_buffers() -> None:
    data = b"\x80\x05\x96" + struct.pack("<Q", 3) + b"abc\x97\x98\x86."
    result = run(data)
    first, second = result.value  # type: ignore[misc]
    assert first == b"abc" and isinstance(second, Buffer) and second.readonly


def test_global_stack_global_inst_obj_newobj_newobj_ex_are_call_sites() -> None:
    data = (
        b"\x80\x04"
        + g0("m", "f")
        + b"K\x01\x85R0"
        + u4("m2")
        + u4("g")
        + b"\x93)R0"
        + b"(K\x02im3\nC\n0"
        + b"("
        + g0("m4", "D")
        + b"K\x03o0"
        + g0("m5", "E")
        + b")\x810"
        + g0("m6", "F")
        + b")}\x92."
    )
    result = run(data)
    assert [(c.kind, c.callable) for c in result.calls] == [
        ("REDUCE", "m.f"),
        ("REDUCE", "m2.g"),
        ("INST", "m3.C"),
        ("OBJ", "m4.D"),
        ("NEWOBJ", "m5.E"),
        ("NEWOBJ_EX", "m6.F"),
    ]
    uses = {g.dotted: g.uses for g in result.globals}
    assert uses["m.f"] == USE_CALL and uses["m5.E"] == USE_CONSTRUCT and uses["m6.F"] == USE_CONSTRUCT
    assert result.calls[0].text() == "m.f(1)"


def test_stack_global_strings_from_memo_and_global_called_through_memo() -> None:
    data = (
        b"\x80\x04" + u4("os") + b"\x94" + u4("system") + b"\x94" + b"00h\x00h\x01\x93\x940h\x02" + u4("id") + b"\x85R."
    )
    result = run(data)
    (ref,) = result.globals
    assert ref.dotted == "os.system" and ref.uses & USE_CALL and ref.via == "STACK_GLOBAL"
    assert result.calls[0].text() == "os.system('id')"


def test_same_global_many_times_is_one_ref_with_a_count() -> None:
    data = b"(" + (g0("a", "b") + b")R") * 100 + b"l."
    result = run(data)
    (ref,) = result.globals
    assert ref.count == 100 and result.call_counts["a.b"] == 100 and len(result.calls) <= 64


def test_copyreg_reconstructor_marks_the_class_as_constructed() -> None:
    data = g0("copy_reg", "_reconstructor") + b"(" + g0("user", "Cls") + g0("__builtin__", "object") + b"NtR."
    result = run(data)
    uses = {g.dotted: g.uses for g in result.globals}
    assert uses["user.Cls"] == USE_CONSTRUCT and uses["__builtin__.object"] == USE_CALL


def test_build_records_state_and_flags_gadgets() -> None:
    plain = run(b"\x80\x02" + g0("m", "C") + b")\x81}" + u4("a") + b"K\x01sb.")
    assert [c.kind for c in plain.calls] == ["NEWOBJ", "BUILD"] and not plain.calls[1].note
    on_global = run(b"\x80\x02" + g0("m", "C") + b"N}" + u4("f") + b"K\x01s\x86b.")
    assert "global object m.C" in on_global.calls[0].note
    dunder = run(b"\x80\x02" + g0("m", "C") + b")\x81N}" + u4("__reduce__") + b"K\x01s\x86b.")
    assert "__reduce__" in dunder.calls[-1].note


def test_setitem_on_a_global_is_flagged() -> None:
    result = run(g0("os", "environ") + s0("LD_PRELOAD") + s0("/tmp/x.so") + b"s.")
    assert result.calls[0].kind == "SETITEM" and "mutates the global object os.environ" in result.calls[0].note


def test_ext_codes_resolve_through_copyreg_or_stay_unresolved() -> None:
    import copyreg

    data = b"\x80\x02\x82\x7b)R."
    assert run(data).globals[0].unresolved
    copyreg.add_extension("mod", "fn", 0x7B)
    try:
        ref = run(data).globals[0]
    finally:
        copyreg.remove_extension("mod", "fn", 0x7B)
    assert (ref.dotted, ref.via, ref.ext_code, ref.unresolved) == ("mod.fn", "EXT", 0x7B, False)


def test_persistent_ids_text_and_binary() -> None:
    result = run(b"(Pabc\n\x80\x02" + s0("storage") + g0("torch", "FloatStorage") + s0("0") + b"\x87Ql.")
    assert [p.raw_args for p in result.persids][0] == "abc"
    second = result.persids[1].raw_args
    assert isinstance(second, tuple) and second[0] == "storage" and isinstance(second[1], GlobalRef)
    assert isinstance(result.value, SList) and isinstance(result.value.items[0], PersId)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\x80\x02K\x01\xff.", "invalid opcode 0xff"),
        (b"\x80\x02K\x01", "truncated"),
        (b"\x80\x02h\x09.", "memo key 9 not found"),
        (b"\x80\x020.", "stack underflow"),
        (b"\x80\x02t.", "no MARK"),
        (b"\x80\x09N.", "unsupported pickle protocol 9"),
        (b"Sunquoted\n.", "not quoted"),
        (b"\x80\x02B\xff\xff\x00\x00ab.", "truncated"),
        (b".", "empty stack"),
        (b"\x80\x04\x8c\x02\xff\xfe.", "UTF-8"),
    ],
)
def test_malformed_streams_report_what_and_where(data: bytes, needle: str) -> None:
    result = run(data)
    assert result.error is not None and needle in result.error
    assert result.error_offset is not None


def test_findings_before_a_break_are_kept() -> None:
    result = run(os_system("/tmp/x", 2)[:-1] + b"\xff")
    assert result.error and [c.callable for c in result.calls] == ["posix.system"]


def test_iter_streams_concatenated_trailing_and_offsets() -> None:
    first, second = pickle.dumps([1], protocol=2), pickle.dumps({"a": 1}, protocol=4)
    tail = b"hello, this is plain text after the pickles\n"
    data = first + second + tail
    items = list(iter_pickle_streams(io.BytesIO(data), ctx_for(data)))
    streams = [i for i in items if isinstance(i, PickleStream)]
    assert [(s.offset, s.end) for s in streams] == [(0, len(first)), (len(first), len(first) + len(second))]
    blobs = [i for i in items if isinstance(i, Blob)]
    assert [b.member for b in blobs] == [f"trailing@{len(first) + len(second)}"]
    assert blobs[0].head() == tail


def test_base_offset_shifts_every_reported_offset() -> None:
    data = b"junk" + os_system("/tmp/x", 2)
    stream = io.BytesIO(data)
    stream.seek(4)
    items = list(iter_pickle_streams(stream, ctx_for(data), base_offset=0))
    (result,) = [i for i in items if isinstance(i, PickleStream)]
    assert result.offset == 4 and result.calls[0].offset > 4


def test_limits_raise_after_the_partial_stream_is_yielded() -> None:
    data = b"\x80\x02" + g0("os", "system") + b"0" + b"N0" * 200 + b"N."
    gen = iter_pickle_streams(io.BytesIO(data), ctx_for(data, Limits(max_opcodes=50)))
    first = next(gen)
    assert isinstance(first, PickleStream) and first.limit == "max_opcodes" and first.globals
    with pytest.raises(LimitExceeded):
        next(gen)
    deep = b"(" * 100 + b"N."
    result, limit = parse_one_stream(io.BytesIO(deep), ctx_for(deep, Limits(max_nesting=10)))
    assert limit is not None and limit.limit == "max_nesting"
    memo = b"\x80\x02" + b"N\x94" * 20 + b"."
    _, limit = parse_one_stream(io.BytesIO(memo), ctx_for(memo, Limits(max_memo=5)))
    assert limit is not None and limit.limit == "max_memo"


def test_opcode_limit_holds_for_streams_of_inlined_opcodes_only() -> None:
    # NONE and BININT1 take the VM's inlined fast paths; a stream of nothing else (and no STOP)
    # must still hit max_opcodes, checked whenever the read window slides.
    for body in (b"N" * 2_000_000, b"K\x01" * 1_000_000):
        data = b"\x80\x02" + body
        result, limit = parse_one_stream(io.BytesIO(data), ctx_for(data, Limits(max_opcodes=10_000)))
        assert limit is not None and limit.limit == "max_opcodes"
        assert result[-1].limit == "max_opcodes"  # type: ignore[attr-defined]


def test_joblib_inline_arrays_are_skipped_and_object_arrays_parsed(tmp_path: object) -> None:
    np = pytest.importorskip("numpy")
    joblib = pytest.importorskip("joblib")
    path = os.path.join(str(tmp_path), "x.joblib")
    joblib.dump(
        {"w": np.arange(1000, dtype=np.float64), "o": np.array(["a", 1], dtype=object), "s": np.array(["ab"])}, path
    )
    with open(path, "rb") as fh:
        data = fh.read()
    items = list(iter_pickle_streams(io.BytesIO(data), ctx_for(data)))
    streams = [i for i in items if isinstance(i, PickleStream)]
    assert all(s.error is None for s in streams)
    outer = streams[-1]
    assert outer.joblib_arrays == 3 and outer.skipped_bytes >= 8000 and outer.end == len(data)
    nested = [s for s in streams if s.nested_in is not None]
    assert len(nested) == 1 and nested[0].protocol == 5


@pytest.mark.parametrize("proto", range(6))
def test_sniff_accepts_pickles_of_every_protocol(proto: int) -> None:
    data = pickle.dumps({"a": [1, 2, 3], "b": "text" * 2000}, protocol=proto)
    assert sniff_pickle(data[:4096], complete=len(data) <= 4096)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps({"a": [1, 2, 3]}).encode(),
        b"[1, 2, 3]",
        b"Hello world, this is a plain text file.\n",
        b"class Foo:\n    pass\n",
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
        b"BM6\x00\x00\x00\x00\x00\x00\x006\x00\x00\x00",
        b"0",
        b".",
    ],
)
def test_sniff_rejects_json_text_and_binary(data: bytes) -> None:
    assert not sniff_pickle(data, complete=True)


def test_sniff_accepts_a_payload_followed_by_garbage() -> None:
    assert sniff_pickle(g0("os", "system") + b"(" + s0("id") + b"tR\xff\xff", complete=True)


def test_call_results_and_containers_render_boundedly() -> None:
    nested = b"\x80\x02N" + b"\x85" * 500 + b"."
    result = run(nested)
    assert result.error is None
    assert len(repr(Call(GlobalRef("m", "f", 0, 0), (result.value,), "REDUCE"))) < 300


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_payloads_larger_than_the_read_window_then_a_short_tail(protocol: int) -> None:
    # Payloads past the window are skipped with a seek; the few opcodes left after the last one
    # (BUILD, SETITEM, STOP: fewer than 9 bytes) must still be read to STOP. A benign NumPy pickle
    # of this shape was once reported as truncated.
    np = pytest.importorskip("numpy")
    from modelshield.formats.pickle.window import CHUNK

    count = CHUNK // 8 + 1000  # each array's bytes are larger than one window
    data = pickle.dumps({"a": [np.full(count, 1.0), np.full(count, 2.0)], "z": np.zeros(3)}, protocol=protocol)
    items = list(iter_pickle_streams(io.BytesIO(data), ctx_for(data)))
    (stream,) = [i for i in items if isinstance(i, PickleStream)]
    assert stream.error is None and stream.end == len(data)
    assert stream.skipped_bytes >= 2 * count * 8


def test_large_numpy_pickle_is_benign_end_to_end(tmp_path: object) -> None:
    np = pytest.importorskip("numpy")
    from modelshield.scan import scan

    path = os.path.join(str(tmp_path), "arrays.pkl")
    with open(path, "wb") as fh:
        pickle.dump({"arrays": [np.full(200_000, float(i)) for i in range(4)], "meta": {"n": 4}}, fh, protocol=4)
    report = scan(path)
    assert not report.blocking, [f.rule_id for f in report.findings]
    assert not report.coverage_gaps


class _CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(-1 if size is None else size)
        return super().read(size)


def test_window_reads_start_small_after_a_seek_and_grow_to_a_chunk() -> None:
    from modelshield.formats.pickle.window import CHUNK, FIRST_READ, ByteWindow

    data = bytes(range(256)) * (4 * CHUNK // 256)
    stream = _CountingStream(data)
    window = ByteWindow(stream)
    window.skip_to(CHUNK + 7)  # past the (empty) buffer: a seek
    got = [window.read(100)]
    while window.remaining() > 10:  # sequential reading from there on, across every refill
        got.append(window.read(min(5000, window.remaining() - 10)))
    assert b"".join(got) == data[CHUNK + 7 : -10]
    assert stream.reads[:4] == [FIRST_READ, 4 * FIRST_READ, 16 * FIRST_READ, CHUNK] and set(stream.reads[3:]) == {CHUNK}
    again = ByteWindow(stream)
    assert again.read(10) == data[:10] and stream.reads[-1] == FIRST_READ  # the start reads small too
    again.skip_to(3 * CHUNK)
    assert again.peek(64) == data[3 * CHUNK : 3 * CHUNK + 64] and stream.reads[-1] == FIRST_READ  # after a seek
