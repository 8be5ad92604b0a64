"""A lenient zip parser over raw bytes (no :mod:`zipfile`).

Real loaders (PyTorch's miniz reader, unzip tools) accept archives that strict libraries
reject, so attackers tamper with exactly what strict libraries check. This parser reads both
views of an archive, the central directory (found through the end-of-central-directory record,
ZIP64 included) and the local file headers walked from the start of the file, merges them, and
records every disagreement as an :class:`Anomaly` instead of giving up.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import BinaryIO

from modelshield._record import field, record
from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._containers import check_members
from modelshield.formats.blob import WindowStream
from modelshield.limits import Limits

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
DESCRIPTOR_SIG = b"PK\x07\x08"

LOCAL = struct.Struct("<4sHHHHHIIIHH")
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
EOCD = struct.Struct("<4sHHHHIIH")
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
ZIP64_LOCATOR = struct.Struct("<4sIQI")

FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
#: File-type bits of a Unix mode, and the symbolic-link type (``stat.S_IFMT`` / ``stat.S_IFLNK``).
UNIX_FILE_TYPE = 0o170000
UNIX_SYMLINK = 0o120000
MAX_COMMENT = 0xFFFF
NEXT_SIGS = (LOCAL_SIG, CENTRAL_SIG, EOCD_SIG, ZIP64_EOCD_SIG)
#: Output decoded (and discarded) at most to find the end of a deflate member of unknown size.
MAX_PROBE_OUTPUT = 1 << 30
#: Flags a mismatch between local and central header is not worth reporting for.
IGNORED_FLAG_BITS = FLAG_DESCRIPTOR | FLAG_UTF8 | 0x0006


@record(frozen=False)
class Anomaly:
    """Something odd about the archive structure, to become a finding."""

    rule_id: str
    message: str
    offset: int | None = None
    evidence: str = ""


@record(frozen=False)
class LocalHeader:
    """A parsed local file header."""

    offset: int
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    data_offset: int


@record(frozen=False)
class Entry:
    """One member, merged from its central directory entry and its local header."""

    name: str
    header_offset: int
    data_offset: int
    method: int
    flags: int
    crc: int
    compressed_size: int
    uncompressed_size: int
    local_name: str = ""
    in_central: bool = True
    extra_names: tuple[str, ...] = ()
    #: The central directory's external attributes (a Unix mode in the high 16 bits) and creator system.
    external_attr: int = 0
    creator: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the member goes by (central first, then a differing local name)."""
        if self.local_name and self.local_name != self.name:
            return (self.name, self.local_name)
        return (self.name,)

    @property
    def is_link(self) -> bool:
        """The external attributes mark a symbolic link (``S_IFLNK`` in the Unix mode).

        Info-ZIP's ``unzip`` and many extractors create such a member as a link whose target is the
        member's data, so extracting the archive can point a model file at anything on the disk.
        """
        return (self.external_attr >> 16) & UNIX_FILE_TYPE == UNIX_SYMLINK

    @property
    def is_dir(self) -> bool:
        """A directory entry (name ends with a slash, no data)."""
        return self.name.endswith("/") and self.compressed_size == 0


@record(frozen=False)
class Layout:
    """The parsed structure of a zip file."""

    size: int
    entries: list[Entry] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    first_local: int | None = None
    central_start: int | None = None
    end: int | None = None
    comment: bytes = b""
    gaps: list[tuple[int, int]] = field(default_factory=list)


@record(frozen=False)
class _Eocd:
    offset: int
    end: int
    entries: int
    cd_size: int
    cd_offset: int
    comment: bytes


def decode_name(raw: bytes, flags: int) -> str:
    """Decode a member name: UTF-8 when flagged or valid, else code page 437."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace") if flags & FLAG_UTF8 else raw.decode("cp437")


class MemoryStream(io.BytesIO):
    """A small archive read whole: :func:`read_at` slices ``data`` instead of seeking and reading."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.data = data


class PagedFile(WindowStream):
    """A large archive on disk read with ``os.pread`` through a small cache of 4 KiB pages.

    The parser and the member checks read a few bytes at many places (headers, the first and last
    bytes of each member, descriptors) and often the same page twice; through a buffered file each
    read cost a seek and a refill. Large reads (decompression, CRCs) bypass the cache. As a
    :class:`WindowStream`, also a seekable raw stream for code that reads sequentially.
    """

    PAGE = 4096
    #: Pages kept at most (the cache is dropped when full).
    MAX_PAGES = 256

    def __init__(self, fd: int, size: int) -> None:
        super().__init__(self.read_at, size)
        self.fd = fd
        self.size = size
        self.pages: dict[int, bytes] = {}

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (fewer at the end of the file)."""
        if offset < 0 or size <= 0 or offset >= self.size:
            return b""
        size = min(size, self.size - offset)
        if size > 2 * self.PAGE:
            return self._pread(offset, size)
        first, last = offset // self.PAGE, (offset + size - 1) // self.PAGE
        parts = [self._page(index) for index in range(first, last + 1)]
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        start = offset - first * self.PAGE
        return data[start : start + size]

    def _page(self, index: int) -> bytes:
        page = self.pages.get(index)
        if page is None:
            if len(self.pages) >= self.MAX_PAGES:
                self.pages.clear()
            page = self.pages[index] = self._pread(index * self.PAGE, self.PAGE)
        return page

    def _pread(self, offset: int, size: int) -> bytes:
        data = os.pread(self.fd, size, offset)
        while 0 < len(data) < size:  # a short read before the end (not on regular files)
            more = os.pread(self.fd, size - len(data), offset + len(data))
            if not more:
                break
            data += more
        return data

    @classmethod
    def over(cls, stream: BinaryIO, size: int) -> PagedFile | None:
        """A paged view of ``stream`` when it is a file on disk (None otherwise: read it as is)."""
        if not hasattr(os, "pread"):
            return None
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        return cls(fd, size)


def read_at(stream: BinaryIO | PagedFile, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer at the end of the stream; none for a negative offset)."""
    if offset < 0 or size <= 0:
        return b""
    if type(stream) is MemoryStream:
        return stream.data[offset : offset + size]
    if isinstance(stream, PagedFile):
        return stream.read_at(offset, size)
    stream.seek(offset)
    return stream.read(size)


def parse(stream: BinaryIO, size: int, limits: Limits) -> Layout:
    """Parse the zip structure of ``stream``: central directory plus local header walk."""
    if type(stream) is MemoryStream:
        plain = parse_plain(stream.data, limits)
        if plain is not None:
            return plain
    layout = Layout(size)
    eocd = find_eocd(stream, size)
    central: list[Entry] = []
    if eocd is None:
        layout.anomalies.append(
            Anomaly(
                "PARSE-ERROR",
                "no end of central directory record: the zip is truncated or damaged; "
                "members were recovered from local headers",
            )
        )
    else:
        layout.end, layout.comment = eocd.end, eocd.comment
        central = _central_entries(stream, eocd, layout, limits)
    locals_ = _walk_locals(stream, layout, central, limits)
    _merge(stream, layout, central, locals_)
    return layout


def parse_plain(data: bytes, limits: Limits) -> Layout | None:
    """The layout of a plain archive held in memory, in one pass; None when it is not plain.

    Plain means what zip writers produce when nothing is tampered with: the end record closes the
    file (no comment; a ZIP64 record right before it), the central directory sits right before
    those, members follow one another from byte 0 in central-directory order (each optionally
    followed by a signed 16-byte data descriptor), and each local header agrees with its central
    entry (name, method, flags; CRC and sizes unless a data descriptor carries them). Anything else returns None and
    :func:`parse` takes the general path, which reports every disagreement; for plain archives both
    give the same layout (``tests/formats/test_zip_fast_paths.py`` checks it on real and mutated archives).
    """
    size = len(data)
    eocd_at = size - EOCD.size
    if eocd_at < 0 or not data.startswith(EOCD_SIG, eocd_at):
        return None
    _, disk, cd_disk, disk_count, count, cd_size, cd_start, comment_len = EOCD.unpack_from(data, eocd_at)
    if comment_len or disk or cd_disk or disk_count != count:
        return None
    cd_end = eocd_at
    locator_at = eocd_at - ZIP64_LOCATOR.size
    if locator_at >= 0 and data.startswith(ZIP64_LOCATOR_SIG, locator_at):  # ZIP64 (torch writes it always)
        record_at = locator_at - ZIP64_EOCD.size
        if record_at < 0 or ZIP64_LOCATOR.unpack_from(data, locator_at)[2] != record_at:
            return None
        if not data.startswith(ZIP64_EOCD_SIG, record_at):
            return None
        *_, count, cd_size, cd_start = ZIP64_EOCD.unpack_from(data, record_at)
        cd_end = record_at
    if (
        not 0 < count < 0xFFFF
        or cd_start + cd_size != cd_end
        or cd_size > limits.max_header_bytes
        or count > limits.max_members
        or not data.startswith(CENTRAL_SIG, cd_start)
    ):
        return None
    entries: list[Entry] = []
    names: set[str] = set()
    central, local = CENTRAL.unpack_from, LOCAL.unpack_from
    pos, member_at = cd_start, 0
    for _ in range(count):
        if pos + CENTRAL.size > cd_end or not data.startswith(CENTRAL_SIG, pos):
            return None
        (
            _,
            made_by,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            _,
            _,
            attr,
            offset,
        ) = central(data, pos)
        name = decode_name(data[pos + CENTRAL.size : pos + CENTRAL.size + name_len], flags)
        pos += CENTRAL.size + name_len + extra_len + comment_len
        if offset != member_at or name in names or 0xFFFFFFFF in (csize, usize, offset):
            return None
        if member_at + LOCAL.size > cd_start or not data.startswith(LOCAL_SIG, member_at):
            return None
        _, _, l_flags, l_method, _, _, l_crc, l_csize, l_usize, l_name_len, l_extra_len = local(data, member_at)
        data_at = member_at + LOCAL.size + l_name_len + l_extra_len
        l_name = decode_name(data[member_at + LOCAL.size : member_at + LOCAL.size + l_name_len], l_flags)
        if l_name != name or l_method != method or (l_flags ^ flags) & ~IGNORED_FLAG_BITS:
            return None
        if not l_flags & FLAG_DESCRIPTOR and ((l_crc, l_csize) != (crc, csize) or 0xFFFFFFFF in (l_csize, l_usize)):
            return None  # without a data descriptor, the local header's CRC and sizes must be the central ones
        member_at = data_at + csize
        if member_at < cd_start and not data.startswith(LOCAL_SIG, member_at):
            # a signed 32-bit data descriptor (as torch writes) may follow the data, then the next record
            if not data.startswith(DESCRIPTOR_SIG, member_at):
                return None
            member_at += 16
            if member_at < cd_start and not data.startswith(LOCAL_SIG, member_at):
                return None
        if member_at > cd_start:
            return None
        names.add(name)
        entries.append(
            Entry(
                name, offset, data_at, method, flags, crc, csize, usize, name, external_attr=attr, creator=made_by >> 8
            )
        )
    if pos != cd_end or member_at != cd_start:
        return None
    return Layout(size, entries, first_local=0, central_start=cd_start, end=size)


def find_eocd(stream: BinaryIO, size: int) -> _Eocd | None:
    """Locate the end-of-central-directory record (ZIP64 aware) in the tail of the file."""
    tail_start = max(0, size - (EOCD.size + MAX_COMMENT))
    tail = read_at(stream, tail_start, size - tail_start)
    candidates: list[_Eocd] = []
    pos = tail.rfind(EOCD_SIG)
    while pos >= 0:
        if pos + EOCD.size <= len(tail):
            _, _, _, _, count, cd_size, cd_offset, comment_len = EOCD.unpack_from(tail, pos)
            offset = tail_start + pos
            comment = tail[pos + EOCD.size : pos + EOCD.size + comment_len]
            found = _Eocd(offset, offset + EOCD.size + len(comment), count, cd_size, cd_offset, comment)
            _apply_zip64(stream, found)
            if central_start(stream, found) is not None:
                return found
            candidates.append(found)
        pos = tail.rfind(EOCD_SIG, 0, pos)
    return candidates[0] if candidates else None


def _apply_zip64(stream: BinaryIO, eocd: _Eocd) -> None:
    if eocd.offset < ZIP64_LOCATOR.size:
        return
    locator = read_at(stream, eocd.offset - ZIP64_LOCATOR.size, ZIP64_LOCATOR.size)
    if len(locator) != ZIP64_LOCATOR.size or not locator.startswith(ZIP64_LOCATOR_SIG):
        return
    _, _, z64_offset, _ = ZIP64_LOCATOR.unpack(locator)
    for where in (z64_offset, eocd.offset - ZIP64_LOCATOR.size - ZIP64_EOCD.size):
        record = read_at(stream, where, ZIP64_EOCD.size) if where >= 0 else b""
        if len(record) == ZIP64_EOCD.size and record.startswith(ZIP64_EOCD_SIG):
            fields = ZIP64_EOCD.unpack(record)
            eocd.entries, eocd.cd_size, eocd.cd_offset = fields[7], fields[8], fields[9]
            eocd.offset = where  # the central directory ends before the ZIP64 record
            return


def central_start(stream: BinaryIO, eocd: _Eocd) -> int | None:
    """Where the central directory really starts (handles prepended data), or None."""
    if eocd.entries == 0 and eocd.cd_size == 0:
        return eocd.offset
    for where in (eocd.cd_offset, eocd.offset - eocd.cd_size):
        if 0 <= where < eocd.offset and read_at(stream, where, 4) == CENTRAL_SIG:
            return where
    return None


def _central_entries(stream: BinaryIO, eocd: _Eocd, layout: Layout, limits: Limits) -> list[Entry]:
    start = central_start(stream, eocd)
    if start is None:
        layout.anomalies.append(
            Anomaly(
                "ZIP-HEADER-MISMATCH",
                "the end of central directory record points to no central directory; "
                "members were recovered from local headers",
                eocd.offset,
            )
        )
        return []
    layout.central_start = start
    shift = start - eocd.cd_offset if start != eocd.cd_offset else 0
    length = eocd.offset - start
    if length > limits.max_header_bytes:
        raise LimitExceeded("max_header_bytes", limits.max_header_bytes, f"zip central directory of {length} bytes")
    data = read_at(stream, start, length)
    entries: list[Entry] = []
    pos = 0
    fixed, unpack, end = CENTRAL.size, CENTRAL.unpack_from, len(data)
    while pos + fixed <= end and data.startswith(CENTRAL_SIG, pos):  # one loop, no calls: runs per member
        (
            _,
            made_by,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            _,
            _,
            attr,
            offset,
        ) = unpack(data, pos)
        extra_at = pos + fixed + name_len
        name = decode_name(data[pos + fixed : extra_at], flags)
        if 0xFFFFFFFF in (usize, csize, offset):
            usize, csize, offset = _zip64_extra(data[extra_at : extra_at + extra_len], (usize, csize, offset))
        entries.append(
            Entry(name, offset + shift, -1, method, flags, crc, csize, usize, external_attr=attr, creator=made_by >> 8)
        )
        check_members(len(entries), limits)
        pos = extra_at + extra_len + comment_len
    if len(entries) != eocd.entries:
        layout.anomalies.append(
            Anomaly(
                "ZIP-HEADER-MISMATCH",
                f"the end of central directory record announces {eocd.entries} members, "
                f"the central directory holds {len(entries)}",
                eocd.offset,
            )
        )
    if pos < len(data):
        layout.anomalies.append(
            Anomaly(
                "ZIP-HEADER-MISMATCH", f"{len(data) - pos} unexpected bytes inside the central directory", start + pos
            )
        )
    return entries


def _zip64_extra(extra: bytes, values: tuple[int, ...]) -> tuple[int, ...]:
    """Replace 0xFFFFFFFF fields by their ZIP64 extra-field values, in order."""
    if 0xFFFFFFFF not in values:
        return values  # nothing to replace (the common case: no ZIP64 sizes)
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            out, at = list(values), 0
            for i, value in enumerate(values):
                if value == 0xFFFFFFFF and at + 8 <= len(body):
                    out[i] = struct.unpack_from("<Q", body, at)[0]
                    at += 8
            return tuple(out)
        pos += 4 + length
    return values


def read_local(stream: BinaryIO, offset: int) -> LocalHeader | None:
    """Parse the local header at ``offset`` or return None when there is none."""
    if type(stream) is MemoryStream:  # small archives: unpack in place, no copies
        data = stream.data
        if offset < 0 or offset + LOCAL.size > len(data) or not data.startswith(LOCAL_SIG, offset):
            return None
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = LOCAL.unpack_from(data, offset)
        tail = data[offset + LOCAL.size : offset + LOCAL.size + name_len + extra_len]
    else:
        raw = read_at(stream, offset, LOCAL.size)
        if len(raw) < LOCAL.size or not raw.startswith(LOCAL_SIG):
            return None
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = LOCAL.unpack(raw)
        tail = read_at(stream, offset + LOCAL.size, name_len + extra_len)
    name = decode_name(tail[:name_len], flags)
    usize, csize = _zip64_extra(tail[name_len:], (usize, csize))[:2]
    return LocalHeader(offset, name, flags, method, crc, csize, usize, offset + LOCAL.size + name_len + extra_len)


def _walk_locals(stream: BinaryIO, layout: Layout, central: list[Entry], limits: Limits) -> list[LocalHeader]:
    """Walk local headers from the first one, skipping data by the best known size."""
    limit = layout.central_start if layout.central_start is not None else layout.size
    known = {e.header_offset: e.compressed_size for e in central}
    starts = [offset for offset in known if 0 <= offset < limit]
    first = min(starts) if starts else _find_sig(stream, 0, limit, LOCAL_SIG)
    headers: list[LocalHeader] = []
    data = stream.data if type(stream) is MemoryStream else None
    pos = first
    while pos is not None and pos < limit:
        header = read_local(stream, pos)
        if header is None:
            pos = _resync(stream, pos, limit, layout)
            continue
        headers.append(header)
        check_members(len(headers), limits)
        size = known.get(pos)
        end = header.data_offset + size if size is not None else _data_end(stream, header, None, limit)
        if data is not None and end < limit and data[end : end + 4] in NEXT_SIGS:
            pos = end  # the next record follows directly (no data descriptor): the common case
        else:
            pos = _skip_descriptor(stream, end, limit)
    layout.first_local = first
    return headers


def _resync(stream: BinaryIO, pos: int, limit: int, layout: Layout) -> int | None:
    """After a member, expect another header; otherwise search forward and report the gap."""
    if read_at(stream, pos, 4) in (CENTRAL_SIG, EOCD_SIG, ZIP64_EOCD_SIG):
        return None
    found = _find_sig(stream, pos + 1, limit, LOCAL_SIG)
    gap_end = found if found is not None else limit
    if gap_end > pos:
        layout.anomalies.append(
            Anomaly("ZIP-HEADER-MISMATCH", f"{gap_end - pos} bytes between members belong to no member", pos)
        )
        layout.gaps.append((pos, gap_end))
    return found


def _find_sig(stream: BinaryIO, start: int, end: int, sig: bytes, chunk: int = 1 << 20) -> int | None:
    pos = start
    while pos < end:
        data = read_at(stream, pos, min(chunk + 3, end - pos))
        if not data:
            return None
        hit = data.find(sig)
        if hit >= 0:
            return pos + hit
        pos += chunk
    return None


def _data_end(stream: BinaryIO, header: LocalHeader, central_size: int | None, limit: int) -> int:
    if central_size is not None:
        return header.data_offset + central_size
    if not (header.flags & FLAG_DESCRIPTOR and header.compressed_size == 0):
        return header.data_offset + header.compressed_size
    if header.method == 8:
        return _deflate_end(stream, header.data_offset, limit)
    found = _find_sig(stream, header.data_offset, limit, DESCRIPTOR_SIG)
    return found if found is not None else limit


def _deflate_end(stream: BinaryIO, start: int, limit: int) -> int:
    """End of a deflate stream of unknown length (decoded and discarded, bounded by ``limit``)."""
    obj = zlib.decompressobj(-15)
    pos, produced = start, 0
    try:
        while pos < limit and not obj.eof and produced < MAX_PROBE_OUTPUT:
            data = read_at(stream, pos, min(1 << 18, limit - pos))
            if not data:
                break
            pos += len(data)
            while data and not obj.eof:
                produced += len(obj.decompress(data, 1 << 20))
                data = obj.unconsumed_tail
    except zlib.error:
        return limit
    return pos - len(obj.unused_data) if obj.eof else limit


def _skip_descriptor(stream: BinaryIO, pos: int, limit: int) -> int:
    """Skip an optional data descriptor (with or without signature, 32 or 64-bit sizes)."""
    head = read_at(stream, pos, 4)
    if pos >= limit or head in NEXT_SIGS:
        return pos
    for length in (16, 24) if head == DESCRIPTOR_SIG else (12, 20):
        if pos + length == limit or read_at(stream, pos + length, 4) in NEXT_SIGS:
            return pos + length
    return pos


def _merge(stream: BinaryIO, layout: Layout, central: list[Entry], walked: list[LocalHeader]) -> None:
    by_offset = {h.offset: h for h in walked}
    seen: set[int] = set()
    for entry in central:
        header = by_offset.get(entry.header_offset) or read_local(stream, entry.header_offset)
        if header is None:
            layout.anomalies.append(
                Anomaly(
                    "ZIP-HEADER-MISMATCH",
                    f"central directory entry {entry.name!r} points to no local header",
                    entry.header_offset,
                    entry.name,
                )
            )
            continue
        seen.add(header.offset)
        entry.data_offset, entry.local_name = header.data_offset, header.name
        _compare(entry, header, layout)
        layout.entries.append(entry)
    for header in walked:
        if header.offset in seen:
            continue
        if central:
            layout.anomalies.append(
                Anomaly(
                    "ZIP-HEADER-MISMATCH",
                    f"local header {header.name!r} is not listed in the central directory (hidden member)",
                    header.offset,
                    header.name,
                )
            )
        size = _data_end(stream, header, None, layout.central_start or layout.size) - header.data_offset
        layout.entries.append(
            Entry(
                header.name,
                header.offset,
                header.data_offset,
                header.method,
                header.flags,
                header.crc,
                size,
                header.uncompressed_size,
                header.name,
                in_central=False,
            )
        )
    _check_duplicates_and_overlaps(layout)


def _compare(entry: Entry, header: LocalHeader, layout: Layout) -> None:
    diffs: list[str] = []
    if header.name != entry.name:
        diffs.append(f"name {header.name!r} in the local header, {entry.name!r} in the central directory")
    if header.method != entry.method:
        diffs.append(f"method {header.method} (local) vs {entry.method} (central)")
    if (header.flags ^ entry.flags) & ~IGNORED_FLAG_BITS:
        diffs.append(f"flags {header.flags:#06x} (local) vs {entry.flags:#06x} (central)")
    if not header.flags & FLAG_DESCRIPTOR and (header.crc, header.compressed_size) != (
        entry.crc,
        entry.compressed_size,
    ):
        diffs.append(
            f"crc/size {header.crc:#010x}/{header.compressed_size} (local) vs "
            f"{entry.crc:#010x}/{entry.compressed_size} (central)"
        )
    if diffs:
        layout.anomalies.append(
            Anomaly("ZIP-HEADER-MISMATCH", f"member {entry.name!r}: " + "; ".join(diffs), header.offset, entry.name)
        )


def _check_duplicates_and_overlaps(layout: Layout) -> None:
    names: dict[str, int] = {}
    for entry in layout.entries:
        names[entry.name] = names.get(entry.name, 0) + 1
        if names[entry.name] > 1:
            entry.extra_names = (f"{entry.name}#{names[entry.name]}",)
            layout.anomalies.append(
                Anomaly(
                    "ZIP-HEADER-MISMATCH",
                    f"member name {entry.name!r} appears {names[entry.name]} times; "
                    "loaders disagree on which copy wins",
                    entry.header_offset,
                    entry.name,
                )
            )
    spans = sorted((e.header_offset, e.data_offset + e.compressed_size, e.name) for e in layout.entries)
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        if start < end:
            layout.anomalies.append(
                Anomaly(
                    "ARCHIVE-BOMB",
                    f"members {name!r} and {other!r} overlap (overlapping-member zip bomb or tampering)",
                    start,
                )
            )
            return


def validate_layout(layout: Layout) -> None:
    """Raise FormatError when nothing at all was found (not a zip after all)."""
    if not layout.entries and layout.end is None:
        raise FormatError("no zip member and no end of central directory record found")
