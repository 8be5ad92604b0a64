"""The zip reader: plain zips, PyTorch checkpoints, TorchScript archives and NumPy ``.npz``.

Every member is yielded as a child blob (stored members as a byte range of the file, no copy;
compressed members decompressed into a bounded :class:`~modelshield.formats._containers.Spool`)
unless the flavor module says it is raw tensor bytes or well-formed metadata. Bytes before the
first member, after the end record, or between members are yielded too (polyglots).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from modelshield._record import record
from modelshield.errors import LimitExceeded
from modelshield.formats import pytorch_zip, torchscript
from modelshield.formats._containers import (
    ARCHIVE_BOMB,
    CRC_MISMATCH,
    DECODERS,
    ENCRYPTED,
    FLAG_TAMPERED,
    HEADER_MISMATCH,
    LINK_MEMBER,
    PATH_TRAVERSAL,
    PREPENDED_DATA,
    TRAILING_DATA,
    UNSUPPORTED_METHOD,
    Budget,
    Decoder,
    Spool,
    crc_of_range,
    decode_stream,
    iter_range,
    raw_lzma1_decoder,
    unsafe_link,
    unsafe_path,
)
from modelshield.formats._sniff import sniff_zip
from modelshield.formats.interface import SNIFF_BYTES, Blob, Reader, ScanContext, register_reader
from modelshield.formats.zipfmt.parser import (
    FLAG_DESCRIPTOR,
    FLAG_ENCRYPTED,
    FLAG_STRONG_ENCRYPTION,
    Entry,
    Layout,
    MemoryStream,
    PagedFile,
    parse,
    read_at,
    validate_layout,
)
from modelshield.limits import MiB
from modelshield.types import Finding

#: Stored members up to this size get their CRC checked when scanned.
CRC_CHECK_MAX = 256 * MiB
#: Members of these archives carry the flavor as format hint (the pickle allowlist depends on it).
TORCH_FLAVORS = ("pytorch-zip", "torchscript")
METHOD_NAMES = {
    0: "stored",
    8: "deflate",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstd",
    95: "xz",
    98: "ppmd",
    99: "aes",
}


@record(frozen=False)
class _Payload:
    """A member's bytes: a range of the archive (stored) or a spool (decompressed)."""

    size: int
    head: bytes
    last: bytes
    start: int
    spool: Spool | None = None
    crc: int | None = None
    complete: bool = True
    decoded: bool = False

    def blob(self, parent: Blob, member: str, format_hint: str = "") -> Blob:
        """The child blob over these bytes."""
        if self.spool is not None:
            return self.spool.blob(parent, member, format_hint)
        if self.size <= len(self.head):  # already read whole (small members: data.pkl, configs)
            return parent.child(member, self.head, format_hint)
        return parent.child_range(member, self.start, self.size, format_hint)


#: Members whose bytes the vulnerability stage's facts need (kept when small; see ``_facts``).
FACT_MEMBERS = frozenset({"metadata.json", "config.json", "data.pkl", "version"})

#: Archives up to this size are parsed from memory (read once).
IN_MEMORY_BYTES = 1 << 20

#: Root members of a Keras v3 archive whose cross-check needs both.
KERAS_PARTS = frozenset({"config.json", "model.weights.h5"})


@register_reader
class ZipReader(Reader):
    """Lenient zip reader; reports the flavor (pytorch-zip, torchscript, npz, zip) as format."""

    name = "zip"
    priority = 90

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A local header or empty-archive record at the start, or a zip at the end (polyglot)."""
        return sniff_zip(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse the archive; yield structure findings, outside data, then every member."""
        budget = Budget(ctx.limits)
        with blob.open() as stream:
            size = stream.seek(0, io.SEEK_END)
            if size <= IN_MEMORY_BYTES:  # small archives: one read instead of dozens of seeks and reads
                stream.seek(0)
                stream = MemoryStream(stream.read())
            else:  # large ones on disk: positional reads through a page cache
                stream = cast(BinaryIO, PagedFile.over(stream, size) or stream)
            layout = parse(stream, size, ctx.limits)
            validate_layout(layout)
            flavor = pytorch_zip.classify([n for e in layout.entries for n in e.names])
            ctx.format = flavor
            for anomaly in layout.anomalies:
                yield ctx.finding(anomaly.rule_id, anomaly.message, offset=anomaly.offset, evidence=anomaly.evidence)
            yield from _outside_data(layout, blob, ctx)
            keras_parts: dict[str, Blob] = {}
            small: dict[str, bytes] = {}
            data = stream.data if type(stream) is MemoryStream and flavor in TORCH_FLAVORS else None
            for entry in layout.entries:
                ctx.check_time()
                if data is not None and _quiet_skip(entry, data, flavor, small):
                    continue
                for item in _member(entry, stream, blob, ctx, flavor, budget, small):
                    if isinstance(item, Blob) and item.members and item.members[-1] in KERAS_PARTS:
                        keras_parts[item.members[-1]] = item
                    yield item
            if not blob.members and not layout.anomalies and layout.first_local == 0:
                ctx.facts = _facts(blob, layout, small)
        if len(keras_parts) == len(KERAS_PARTS):  # a Keras v3 archive: weights vs declared layers
            from modelshield.tamper.keras_structure import check_keras_archive

            yield from check_keras_archive(keras_parts["config.json"], keras_parts["model.weights.h5"], ctx)


def _outside_data(layout: Layout, blob: Blob, ctx: ScanContext) -> Iterator[object]:
    starts = [e.header_offset for e in layout.entries if e.header_offset >= 0]
    start = min(starts) if starts else layout.central_start
    if start:
        yield ctx.finding(PREPENDED_DATA.id, f"{start} bytes precede the first zip header", offset=0)
        yield blob.child_range("prepended@0", 0, start)
    if layout.end is not None and layout.end < layout.size:
        extra = layout.size - layout.end
        yield ctx.finding(TRAILING_DATA.id, f"{extra} bytes follow the end of the zip", offset=layout.end)
        yield blob.child_range(f"trailing@{layout.end}", layout.end, extra)
    for gap_start, gap_end in layout.gaps:
        yield blob.child_range(f"gap@{gap_start}", gap_start, gap_end - gap_start)
    if layout.comment and not _is_text(layout.comment):
        yield blob.child("comment", layout.comment)


def _is_text(data: bytes) -> bool:
    return all(b in (9, 10, 13) or 32 <= b < 127 for b in data)


def _facts(blob: Blob, layout: Layout, small: dict[str, bytes]) -> object:
    """Framework facts from the members already read (None: the vulnerability stage reads the file)."""
    from modelshield.advisories.requirements import facts_from_members

    return facts_from_members(blob.path, [e.name for e in layout.entries], small)


def _quiet_skip(entry: Entry, data: bytes, flavor: str, small: dict[str, bytes]) -> bool:
    """True when :func:`_member` would yield nothing for ``entry``, decided on slices of ``data``.

    That is a stored, unencrypted, complete member of a torch archive, with one safe name, that
    holds raw tensor bytes or well-formed metadata: most members of a checkpoint. Anything else
    (and any doubt) is left to :func:`_member`. Small fact members are kept in ``small`` as there.
    """
    name = entry.name
    if (
        entry.method != 0
        or entry.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)
        or (entry.local_name and entry.local_name != name)
        or name.endswith("/")
        or unsafe_path(name)
        or entry.is_link
    ):
        return False
    start, size = entry.data_offset, entry.compressed_size
    if start < 0 or start + size > len(data):
        return False
    if size and data[start + size - 1] == 0x2E:  # ends like a pickle (STOP): member_action decides
        return False
    # pytorch_zip.member_action for one name whose bytes do not end in STOP (so not a pickle): storage
    # and metadata names are never TorchScript code, so these two tests are all that is left of it.
    if not (
        pytorch_zip.is_storage_name(name)
        or size <= pytorch_zip.METADATA_MAX
        and pytorch_zip.is_metadata(name, data[start : start + size])
    ):
        return False
    if size <= SNIFF_BYTES and name.rsplit("/", 1)[-1] in FACT_MEMBERS:
        small[name] = data[start : start + size]
    return True


def _member(
    entry: Entry,
    stream: BinaryIO,
    blob: Blob,
    ctx: ScanContext,
    flavor: str,
    budget: Budget,
    small: dict[str, bytes] | None = None,
) -> Iterator[object]:
    if entry.is_link:
        yield from _link(entry, stream, ctx, budget)
        return
    if entry.is_dir:
        return
    names = entry.names
    for name in names:
        reason = unsafe_path(name)
        if reason:
            yield ctx.finding(
                PATH_TRAVERSAL.id, f"zip member {name!r}: {reason}", offset=entry.header_offset, detail=name
            )
    if entry.flags & FLAG_STRONG_ENCRYPTION or entry.method == 99:
        yield ctx.finding(
            ENCRYPTED.id,
            f"zip member {entry.name!r} is encrypted (strong/AES encryption) and was not analysed",
            offset=entry.header_offset,
            detail=entry.name,
        )
        return
    payload, problems = _payload(entry, stream, ctx, budget)
    if payload is None:
        yield from problems
        return
    if small is not None and payload.size <= len(payload.head) and entry.name.rsplit("/", 1)[-1] in FACT_MEMBERS:
        small[entry.name] = payload.head
    action = pytorch_zip.member_action(flavor, names, payload.head, payload.last, payload.size)
    if entry.flags & FLAG_ENCRYPTED:
        yield _encryption_finding(entry, payload, stream, problems, ctx)
    else:
        yield from problems
        if action is not pytorch_zip.Action.SKIP:  # skipped tensor storages are not hashed
            yield from _integrity(entry, payload, stream, ctx)
    member = entry.extra_names[0] if entry.extra_names else entry.name
    if action is pytorch_zip.Action.CODE:
        yield from _check_code(member, payload.blob(blob, member), ctx)
    elif action is pytorch_zip.Action.SCAN:
        yield payload.blob(blob, member, flavor if flavor in TORCH_FLAVORS else "")
    if budget.decompressed > ctx.limits.max_decompressed_bytes:
        raise LimitExceeded(
            "max_decompressed_bytes", ctx.limits.max_decompressed_bytes, "zip decompression budget spent"
        )


#: A link target longer than this is not a path (its bytes are scanned as a member instead).
LINK_TARGET_MAX = 4096


def _link(entry: Entry, stream: BinaryIO, ctx: ScanContext, budget: Budget) -> Iterator[object]:
    """A high finding for a symlink member, naming its target (the member's data)."""
    payload, problems = _payload(entry, stream, ctx, budget)
    yield from problems
    target = ""
    if payload is not None and payload.size <= min(len(payload.head), LINK_TARGET_MAX):
        target = payload.head.decode("utf-8", "replace")
    for name in entry.names:
        reason = unsafe_path(name)
        if reason:
            yield ctx.finding(
                PATH_TRAVERSAL.id, f"zip member {name!r}: {reason}", offset=entry.header_offset, detail=name
            )
    escape = unsafe_link(entry.name, target) if target else ""
    yield ctx.finding(
        LINK_MEMBER.id,
        f"zip member {entry.name!r} is a symbolic link"
        + (f" to {target!r}" if target else "")
        + (f" ({escape})" if escape else ""),
        offset=entry.header_offset,
        detail=entry.name,
        evidence=f"external attributes 0x{entry.external_attr:08x} (mode {entry.external_attr >> 16:o}), "
        f"creator system {entry.creator}; target {target!r}",
    )


def _payload(entry: Entry, stream: BinaryIO, ctx: ScanContext, budget: Budget) -> tuple[_Payload | None, list[Finding]]:
    """Locate (stored) or decompress (other methods) a member's bytes; problems as findings."""
    if type(stream) is MemoryStream and entry.method == 0 and entry.data_offset >= 0:
        data = stream.data  # the common case, a small archive read whole: slices, no seeks
        start = entry.data_offset
        available = max(0, min(entry.compressed_size, len(data) - start))
        if available == entry.compressed_size:
            head = data[start : start + min(SNIFF_BYTES, available)]
            last = data[start + available - 1 : start + available] if available else b""
            return _Payload(available, head, last, start), []
    size = stream.size if isinstance(stream, PagedFile) else stream.seek(0, io.SEEK_END)
    available = max(0, min(entry.compressed_size, size - entry.data_offset))
    problems: list[Finding] = []
    if available < entry.compressed_size:
        problems.append(
            ctx.finding(
                "PARSE-ERROR",
                f"zip member {entry.name!r} is truncated: {available} of {entry.compressed_size} bytes present",
                offset=entry.data_offset,
                detail=entry.name,
            )
        )
    if entry.method == 0:
        head = read_at(stream, entry.data_offset, min(SNIFF_BYTES, available))
        last = read_at(stream, entry.data_offset + available - 1, 1) if available else b""
        return _Payload(available, head, last, entry.data_offset), problems
    make = _decoder_for(entry, stream, available)
    if make is None:
        method = METHOD_NAMES.get(entry.method, "unknown")
        problems.append(
            ctx.finding(
                UNSUPPORTED_METHOD.id,
                f"zip member {entry.name!r} uses compression method {entry.method} ({method}); not analysed",
                offset=entry.header_offset,
                detail=entry.name,
            )
        )
        return None, problems
    decoder, skip = make
    spool = Spool(budget)
    chunks = iter_range(stream, entry.data_offset + skip, available - skip)
    outcome = decode_stream(chunks, decoder, spool.write, budget, compressed_size=available, check_time=ctx.check_time)
    where = entry.data_offset + skip + outcome.consumed
    if outcome.bomb:
        problems.append(
            ctx.finding(
                ARCHIVE_BOMB.id,
                f"zip member {entry.name!r}: {outcome.bomb}; only the first {spool.size} bytes were analysed",
                offset=entry.header_offset,
                detail=entry.name,
            )
        )
    elif outcome.error:
        problems.append(
            ctx.finding(
                "PARSE-ERROR",
                f"zip member {entry.name!r}: corrupt compressed data near byte {where} ({outcome.error}); "
                f"{spool.size} bytes recovered",
                offset=where,
                detail=entry.name,
            )
        )
    elif not outcome.complete:
        problems.append(
            ctx.finding(
                "PARSE-ERROR",
                f"zip member {entry.name!r}: compressed data ends early at byte {where}; {spool.size} bytes recovered",
                offset=where,
                detail=entry.name,
            )
        )
    last = spool.tail()
    return _Payload(
        spool.size,
        spool.head(SNIFF_BYTES),
        last,
        entry.data_offset,
        spool,
        outcome.crc,
        outcome.complete and not outcome.bomb,
        True,
    ), problems


def _decoder_for(entry: Entry, stream: BinaryIO, available: int) -> tuple[Callable[[], Decoder], int] | None:
    """Decoder factory and the number of method-specific header bytes to skip."""
    if entry.method == 8:
        return DECODERS["deflate"], 0
    if entry.method == 12:
        return DECODERS["bzip2"], 0
    if entry.method == 95:
        return DECODERS["xz"], 0
    if entry.method == 14 and available >= 9:
        header = read_at(stream, entry.data_offset, 4)
        props_size = int.from_bytes(header[2:4], "little")
        props = read_at(stream, entry.data_offset + 4, props_size)
        return (lambda: raw_lzma1_decoder(props)), 4 + props_size
    return None


def _encryption_finding(
    entry: Entry, payload: _Payload, stream: BinaryIO, problems: list[Finding], ctx: ScanContext
) -> Finding:
    """Encrypted flag set: plain bytes mean the flag was tampered with (scanned either way)."""
    if payload.decoded:
        plain = payload.complete and not problems
    else:
        plain = payload.size <= CRC_CHECK_MAX and crc_of_range(stream, payload.start, payload.size) == entry.crc
        plain = plain or _recognised(payload.head)
    if plain:
        return ctx.finding(
            FLAG_TAMPERED.id,
            f"zip member {entry.name!r} is flagged encrypted but holds plain data; "
            "strict zip readers skip it, lenient loaders read it",
            offset=entry.header_offset,
            evidence=f"flags={entry.flags:#06x}",
            detail=entry.name,
        )
    return ctx.finding(
        ENCRYPTED.id,
        f"zip member {entry.name!r} is encrypted and could not be analysed",
        offset=entry.header_offset,
        detail=entry.name,
    )


def _recognised(head: bytes) -> bool:
    from modelshield.formats.interface import detect

    probe = Blob("", (), len(head), lambda: io.BytesIO(head))
    return detect(probe, head) is not None


def _integrity(entry: Entry, payload: _Payload, stream: BinaryIO, ctx: ScanContext) -> Iterator[Finding]:
    """CRC and declared-size checks of a member that is scanned."""
    crc_known = entry.in_central or not entry.flags & FLAG_DESCRIPTOR
    if not crc_known or not payload.complete:
        return
    crc = payload.crc
    if crc is None and payload.size <= CRC_CHECK_MAX:
        crc = crc_of_range(stream, payload.start, payload.size)
    if crc is not None and crc != entry.crc:
        yield ctx.finding(
            CRC_MISMATCH.id,
            f"zip member {entry.name!r}: CRC-32 is {crc:#010x}, the header says {entry.crc:#010x}",
            offset=entry.header_offset,
            detail=entry.name,
        )
    if payload.size != entry.uncompressed_size:
        yield ctx.finding(
            HEADER_MISMATCH.id,
            f"zip member {entry.name!r}: {payload.size} bytes of content, the header says {entry.uncompressed_size}",
            offset=entry.header_offset,
            detail=entry.name,
        )


def _check_code(member: str, child: Blob, ctx: ScanContext) -> Iterator[Finding]:
    with child.open() as stream:
        source = stream.read(ctx.limits.max_member_in_memory).decode("utf-8", "replace")
    yield from torchscript.check_code(member, source, ctx)
