"""Shared machinery of the container readers (zip, tar, 7z, compression wrappers).

* the rules every container reader reports (traversal, bombs, tampering, polyglot data);
* :class:`Budget`: the decompression and memory budget of one container read;
* :class:`Spool`: bounded storage for decompressed members (memory first, then an anonymous
  temporary file), turned into a child :class:`Blob`;
* :func:`decode_stream`: streaming decompression with bounded output, CRC and bomb checks;
* small helpers: member path checks, strict pickle sniffing, zero-run detection.

Nothing here executes what it reads.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, BinaryIO, Protocol

from modelshield._record import record
from modelshield.errors import LimitExceeded
from modelshield.formats.blob import Blob, WindowStream
from modelshield.limits import Limits, MiB
from modelshield.rules import rule
from modelshield.types import Category, Severity

READ_CHUNK = 256 * 1024
DECODE_PIECE = 1 * MiB
#: Below this output size the compression ratio is not judged (tiny files compress well).
RATIO_FLOOR = 1 * MiB

PATH_TRAVERSAL = rule(
    "ARCHIVE-PATH-TRAVERSAL",
    "Archive member escapes the extraction folder",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A member name (or link target) is absolute or climbs out of the extraction folder with "
    "'..' (zip-slip). Extracting the archive can overwrite files elsewhere on disk.",
    "Do not extract this archive; rebuild it from trusted sources.",
    ("CWE-22",),
)
LINK_MEMBER = rule(
    "ARCHIVE-LINK-MEMBER",
    "Archive member is a symbolic or hard link",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A member is a link (a zip entry whose Unix mode is a symlink, a tar symlink or hard link, a 7z "
    "symlink). Extracting the archive creates it, so a model file or a later member can point at, "
    "read or overwrite any file the extracting user can reach (/etc/passwd, ~/.ssh, a shared "
    "library). Model archives have no use for links.",
    "Do not extract this archive; rebuild it with regular files only, from trusted sources.",
    ("CWE-59", "CWE-22"),
)
ARCHIVE_BOMB = rule(
    "ARCHIVE-BOMB",
    "Decompression bomb",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A member expands far beyond its compressed size or beyond the decompression budget, or "
    "members overlap: a decompression bomb meant to exhaust memory or disk, or to blind scanners.",
    "Do not decompress this file. Raise --limit max_compression_ratio or max_decompressed_bytes only if you trust it.",
    ("CWE-409",),
)
HEADER_MISMATCH = rule(
    "ZIP-HEADER-MISMATCH",
    "Zip headers disagree",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The central directory and the local file headers of a zip describe members differently "
    "(names, methods, sizes, hidden or missing members). Different loaders then see different "
    "files: a classic way to show a scanner one thing and a loader another.",
    "Rebuild the archive with a standard tool from trusted content.",
)
CRC_MISMATCH = rule(
    "ZIP-CRC-MISMATCH",
    "Zip member CRC does not match its content",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The CRC-32 recorded for a member differs from the CRC of its bytes. PyTorch's reader does "
    "not check CRCs, so a member edited after saving still loads.",
    "Obtain an intact copy from a trusted source.",
)
FLAG_TAMPERED = rule(
    "ZIP-FLAG-TAMPERED",
    "Zip member flags are tampered",
    Severity.MEDIUM,
    Category.TAMPERING,
    "A member is marked encrypted but its bytes are plain; strict zip libraries (and scanners "
    "built on them) refuse it while lenient loaders read it. A known scanner bypass.",
    "Treat the file as hostile; rebuild it from trusted content.",
)
UNSUPPORTED_METHOD = rule(
    "ZIP-UNSUPPORTED-METHOD",
    "Zip member uses an unsupported compression method",
    Severity.MEDIUM,
    Category.COVERAGE,
    "A member is compressed with a method the scanner cannot decode, so its content was not analysed.",
    "Repack the archive with stored or deflate members and scan again.",
)
ENCRYPTED = rule(
    "ARCHIVE-ENCRYPTED",
    "Encrypted archive content",
    Severity.MEDIUM,
    Category.COVERAGE,
    "Archive content is encrypted (or unreadable), so it could not be analysed. Encryption is a "
    "common way to carry payloads past scanners.",
    "Decrypt the archive and scan the plain content.",
)
TRAILING_DATA = rule(
    "TRAILING-DATA",
    "Data after the end of the container",
    Severity.MEDIUM,
    Category.TAMPERING,
    "Bytes follow the end of the container's valid content. Loaders ignore them, other tools may "
    "not: the file is a polyglot. The trailing bytes are scanned as a separate member.",
    "Strip the trailing bytes or rebuild the file from trusted content.",
)
PREPENDED_DATA = rule(
    "PREPENDED-DATA",
    "Data before the start of the container",
    Severity.MEDIUM,
    Category.TAMPERING,
    "Bytes precede the container's first header. A loader that sniffs the start of the file "
    "(torch.load does) may read these bytes instead of the archive: the file is a polyglot. "
    "The prepended bytes are scanned as a separate member.",
    "Strip the prepended bytes or rebuild the file from trusted content.",
)


class Budget:
    """Decompression budget of one container read: total output and bytes held in memory."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.decompressed = 0
        self.in_memory = 0

    @property
    def remaining(self) -> int:
        """Decompressed bytes still allowed."""
        return max(0, self.limits.max_decompressed_bytes - self.decompressed)


def _pread_stream(backing: IO[bytes], size: int) -> WindowStream:
    """An independent read-only view of a temporary file (positional reads, no shared offset)."""
    fd = backing.fileno()

    def read_at(position: int, count: int) -> bytes:
        # ``backing`` stays referenced by this closure: the temporary file lives while a view is open
        return os.pread(fd, count, position) if not backing.closed else b""

    return WindowStream(read_at, size)


class Spool:
    """Bounded sink for decompressed bytes: memory while the budget allows, then a temp file."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self._last = b""
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        if self._file is None and self._budget.in_memory + len(data) > self._budget.limits.max_member_in_memory:
            import tempfile  # only when a member outgrows memory

            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child blob
            self._file.write(self._memory)
            self._budget.in_memory -= len(self._memory)
            self._memory = bytearray()
        if self._file is None:
            self._memory += data
            self._budget.in_memory += len(data)
        else:
            self._file.write(data)
        self.size += len(data)
        if data:
            self._last = data[-1:]

    def tail(self) -> bytes:
        """The last byte written (empty when nothing was)."""
        return self._last

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes written so far."""
        if self._file is None:
            return bytes(self._memory[:size])
        self._file.flush()
        return os.pread(self._file.fileno(), size, 0)

    def blob(self, parent: Blob, member: str, format_hint: str = "") -> Blob:
        """A child blob of ``parent`` over the spooled bytes."""
        if self._file is None:
            return parent.child(member, bytes(self._memory), format_hint)
        self._file.flush()
        backing, size = self._file, self.size
        return Blob(
            parent.path,
            (*parent.members, member),
            size,
            lambda: io.BufferedReader(_pread_stream(backing, size)),
            format_hint,
        )


class Decoder(Protocol):
    """What :func:`decode_stream` needs of a decompressor (the bz2/lzma/lz4 object API)."""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Decompress ``data``, returning at most ``max_length`` bytes."""

    @property
    def eof(self) -> bool:
        """True once the end of the stream was reached."""

    @property
    def needs_input(self) -> bool:
        """False while output is pending without new input."""

    @property
    def unused_data(self) -> bytes:
        """Bytes after the end of the stream."""


class ZlibDecoder:
    """Adapts ``zlib.decompressobj`` (deflate, zlib or gzip framing) to :class:`Decoder`."""

    def __init__(self, wbits: int) -> None:
        self._obj = zlib.decompressobj(wbits)
        self._tail = b""
        self._needs_input = True

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Decompress ``data`` (after any input held back), at most ``max_length`` bytes."""
        buf = self._tail + data if self._tail else data
        out = self._obj.decompress(buf, max(max_length, 0))
        self._tail = self._obj.unconsumed_tail
        self._needs_input = not self._tail and (max_length <= 0 or len(out) < max_length)
        return out

    @property
    def eof(self) -> bool:
        """True once the end of the stream was reached."""
        return self._obj.eof

    @property
    def needs_input(self) -> bool:
        """False while output or input is pending."""
        return self._needs_input

    @property
    def unused_data(self) -> bytes:
        """Bytes after the end of the stream."""
        return self._obj.unused_data


class DecoderError(ValueError):
    """A decompressor's own error (``lzma.LZMAError``), re-raised as a ValueError.

    So :data:`DECODE_ERRORS` names no lzma class and the lzma module is only imported by a
    stream that needs it. ``str()`` is the original's ``Name: message``, as reports show it.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__}: {original}")


class _LzmaDecoder:
    """An ``lzma.LZMADecompressor`` raising :class:`DecoderError` instead of ``lzma.LZMAError``."""

    __slots__ = ("_obj", "_error")

    def __init__(self, **options: Any) -> None:
        import lzma

        self._error = lzma.LZMAError
        try:
            self._obj = lzma.LZMADecompressor(**options)
        except lzma.LZMAError as exc:
            raise DecoderError(exc) from exc

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        """Decompress ``data``, returning at most ``max_length`` bytes."""
        try:
            return self._obj.decompress(data, max_length)
        except self._error as exc:
            raise DecoderError(exc) from exc

    @property
    def eof(self) -> bool:
        """True once the end of the stream was reached."""
        return self._obj.eof

    @property
    def needs_input(self) -> bool:
        """False while output is pending without new input."""
        return self._obj.needs_input

    @property
    def unused_data(self) -> bytes:
        """Bytes after the end of the stream."""
        return self._obj.unused_data


def raw_lzma1_decoder(props: bytes) -> Decoder:
    """A raw LZMA1 decoder from the 5 property bytes (zip method 14 and friends)."""
    import lzma

    if len(props) < 5 or props[0] >= 9 * 5 * 5:
        raise DecoderError(lzma.LZMAError("bad LZMA properties"))
    lc, rest = props[0] % 9, props[0] // 9
    filt = {
        "id": lzma.FILTER_LZMA1,
        "lc": lc,
        "lp": rest % 5,
        "pb": rest // 5,
        "dict_size": int.from_bytes(props[1:5], "little"),
    }
    return _LzmaDecoder(format=lzma.FORMAT_RAW, filters=[filt])


def xz_decoder() -> Decoder:
    """An xz stream decoder."""
    import lzma

    return _LzmaDecoder(format=lzma.FORMAT_XZ)


def lzma_alone_decoder() -> Decoder:
    """A legacy ``.lzma`` (LZMA-alone) stream decoder."""
    import lzma

    return _LzmaDecoder(format=lzma.FORMAT_ALONE)


def bzip2_decoder() -> Decoder:
    """A bzip2 stream decoder."""
    import bz2

    return bz2.BZ2Decompressor()


def lz4_decoder() -> Decoder:
    """An lz4 frame decoder."""
    import lz4.frame  # type: ignore[import-untyped]

    decoder: Decoder = lz4.frame.LZ4FrameDecompressor()
    return decoder


#: Exceptions decompressors raise on corrupt input (lzma's own as :class:`DecoderError`, a ValueError).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error,
    OSError,
    EOFError,
    RuntimeError,
    ValueError,
)

#: Named decoder factories (restartable for concatenated streams).
DECODERS: dict[str, Callable[[], Decoder]] = {
    "deflate": lambda: ZlibDecoder(-15),
    "zlib": lambda: ZlibDecoder(15),
    "gzip": lambda: ZlibDecoder(31),
    "bzip2": bzip2_decoder,
    "xz": xz_decoder,
    "lzma-alone": lzma_alone_decoder,
    "lz4": lz4_decoder,
}


@record(frozen=False)
class DecodeOutcome:
    """How a streaming decompression ended."""

    size: int = 0
    consumed: int = 0
    crc: int = 0
    complete: bool = False
    error: str = ""
    bomb: str = ""
    streams: int = 0


def iter_range(stream: BinaryIO, start: int, length: int | None, chunk: int = READ_CHUNK) -> Iterator[bytes]:
    """Read ``[start, start+length)`` (to EOF when length is None) in chunks."""
    stream.seek(start)
    left = length
    while left is None or left > 0:
        data = stream.read(chunk if left is None else min(chunk, left))
        if not data:
            return
        if left is not None:
            left -= len(data)
        yield data


def decode_stream(
    chunks: Iterator[bytes],
    make_decoder: Callable[[], Decoder],
    sink: Callable[[bytes], None],
    budget: Budget,
    *,
    compressed_size: int | None = None,
    restart: Callable[[bytes], bool] | None = None,
    check_time: Callable[[], None] | None = None,
) -> DecodeOutcome:
    """Decompress ``chunks`` into ``sink`` with bounded output; never raises on corrupt data.

    ``restart(rest)`` says whether bytes after the end of a stream begin another stream of the
    same kind (multi-member gzip, xz, bz2, lz4). The outcome tells where decoding stopped and
    why: complete, truncated (neither complete nor error), corrupt (``error``) or a bomb.
    """
    out = DecodeOutcome(streams=1)
    fed = 0
    pending = b""
    try:
        decoder = make_decoder()
        for chunk in chunks:
            fed += len(chunk)
            pending = pending + chunk if pending else chunk
            while True:
                piece = decoder.decompress(pending, DECODE_PIECE)
                pending = b""
                if piece:
                    out.crc = zlib.crc32(piece, out.crc)
                    out.size += len(piece)
                    budget.decompressed += len(piece)
                    out.bomb = _bomb_reason(out.size, compressed_size or fed, budget)
                    if out.bomb:
                        out.consumed = fed
                        sink(piece[: max(0, len(piece) - (budget.decompressed - budget.limits.max_decompressed_bytes))])
                        return out
                    sink(piece)
                if check_time is not None:
                    check_time()
                if decoder.eof:
                    rest = decoder.unused_data or b""
                    if rest and restart is not None and restart(rest):
                        decoder, pending = make_decoder(), rest
                        out.streams += 1
                        continue
                    out.consumed, out.complete = fed - len(rest), True
                    return out
                if decoder.needs_input:
                    break
    except DECODE_ERRORS as exc:
        out.error = str(exc) if isinstance(exc, DecoderError) else f"{type(exc).__name__}: {exc}"
    out.consumed = fed
    return out


def _bomb_reason(size: int, compressed: int, budget: Budget) -> str:
    limits = budget.limits
    if budget.decompressed > limits.max_decompressed_bytes:
        return f"decompressed output exceeds max_decompressed_bytes={limits.max_decompressed_bytes}"
    if size > RATIO_FLOOR and size > max(compressed, 1) * limits.max_compression_ratio:
        return f"expands more than {limits.max_compression_ratio:g}x ({compressed} compressed bytes gave {size}+)"
    return ""


def crc_of_range(stream: BinaryIO, start: int, length: int) -> int:
    """CRC-32 of a byte range (streamed)."""
    crc = 0
    for chunk in iter_range(stream, start, length):
        crc = zlib.crc32(chunk, crc)
    return crc


def unsafe_path(name: str) -> str:
    """Why extracting a member called ``name`` escapes the target folder ('' when it does not)."""
    if ".." not in name and name[:1] not in ("/", "\\") and name[1:2] != ":":
        return ""  # the common case, decided without splitting
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "absolute path"
    depth = 0
    for part in norm.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "climbs out of the extraction folder with '..'"
        elif part not in ("", "."):
            depth += 1
    return ""


def unsafe_link(name: str, target: str) -> str:
    """Why a link member ``name`` -> ``target`` points outside the extraction folder ('' if not)."""
    if target.replace("\\", "/").startswith("/"):
        return f"link to absolute path {target!r}"
    parent = name.replace("\\", "/").rsplit("/", 1)[0] if "/" in name else ""
    joined = f"{parent}/{target}" if parent else target
    return f"link to {target!r} outside the extraction folder" if unsafe_path(joined) else ""


_TEXT_GLOBAL = re.compile(rb"^[c(](?:[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n)?")


def looks_like_pickle(head: bytes, last: bytes) -> bool:
    """Strict check that bytes hold a pickle: protocol header or text opcodes, ending in STOP.

    Used for members that are normally raw tensor bytes, where a loose check would flag noise.
    """
    if not head or last != b".":
        return False
    if head[0] == 0x80:
        return len(head) > 1 and 2 <= head[1] <= 5
    return head[:1] in (b"c", b"(") and bool(_TEXT_GLOBAL.match(head)) and (head[:1] == b"(" or head.count(b"\n") >= 2)


def first_nonzero(stream: BinaryIO, start: int, end: int) -> int | None:
    """Offset of the first non-zero byte in ``[start, end)``, or None when all are zero."""
    pos = start
    for chunk in iter_range(stream, start, end - start):
        stripped = chunk.lstrip(b"\0")
        if stripped:
            return pos + len(chunk) - len(stripped)
        pos += len(chunk)
    return None


def check_members(count: int, limits: Limits) -> None:
    """Raise LimitExceeded when an archive has more members than allowed."""
    if count > limits.max_members:
        raise LimitExceeded("max_members", limits.max_members, f"archive has more than {limits.max_members} members")
