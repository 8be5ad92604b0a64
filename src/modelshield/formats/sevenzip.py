"""7z archives, through ``py7zr``: members decompressed into bounded spools, never to disk.

Scanners that did not look inside 7z archives were bypassed by shipping the payload there. The
member list is checked first (path traversal, links, member count), then every regular member is
decompressed with a size cap derived from the limits and yielded as a child blob. Encrypted
archives and members are reported as coverage gaps.
"""

from __future__ import annotations

import io
import lzma
import struct
import zlib
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from modelshield.errors import FormatError
from modelshield.formats._containers import (
    ARCHIVE_BOMB,
    ENCRYPTED,
    LINK_MEMBER,
    PATH_TRAVERSAL,
    RATIO_FLOOR,
    TRAILING_DATA,
    Budget,
    Spool,
    check_members,
    first_nonzero,
    unsafe_link,
    unsafe_path,
)
from modelshield.formats._sniff import sniff_7z
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.types import Finding

if TYPE_CHECKING:
    from py7zr.io import Py7zIO, WriterFactory

#: Signature header: magic, version, CRC, then next-header offset, size and CRC.
START_HEADER = struct.Struct("<6s2sIQQI")
START_HEADER_TAIL = struct.Struct("<QQI")
#: py7zr is not hardened against hostile headers; these are what it raises on them.
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    lzma.LZMAError,
    zlib.error,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    struct.error,
    UnicodeError,
    OverflowError,
    NotImplementedError,
    OSError,
    AssertionError,
)


def _errors() -> tuple[type[BaseException], ...]:
    from py7zr import exceptions

    return (exceptions.ArchiveError, exceptions.AbsolutePathError, *LIBRARY_ERRORS)


@register_reader
class SevenZipReader(Reader):
    """7z archives (py7zr)."""

    name = "7z"
    priority = 90

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The 7z signature."""
        return sniff_7z(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """List members, report unsafe ones, decompress the rest into child blobs."""
        import py7zr
        from py7zr.exceptions import DecompressionBombError, PasswordRequired

        budget = Budget(ctx.limits)
        with blob.open() as stream:
            try:
                archive = py7zr.SevenZipFile(stream, mode="r")
            except PasswordRequired:
                yield ctx.finding(ENCRYPTED.id, "7z archive headers are encrypted; nothing could be analysed")
                return
            except _errors() as exc:
                raise FormatError(f"unreadable 7z archive: {type(exc).__name__}: {exc}") from None
            with archive:
                aliases = _alias_unsafe_names(archive)
                targets, links = yield from _safe_targets(archive, aliases, ctx)
                size = stream.seek(0, io.SEEK_END)
                cap = min(budget.remaining, max(RATIO_FLOOR, int(size * ctx.limits.max_compression_ratio)))
                archive.max_extract_size = cap
                factory = _SpoolFactory(budget, ctx)
                failed = True
                try:
                    if targets:
                        archive.extract(targets=targets, factory=cast("WriterFactory", factory))
                    failed = False
                except PasswordRequired:
                    yield ctx.finding(ENCRYPTED.id, "7z members are encrypted and could not be analysed")
                except DecompressionBombError:
                    yield ctx.finding(
                        ARCHIVE_BOMB.id,
                        f"7z content expands beyond {cap} bytes; only what was decompressed before was analysed",
                    )
                except _errors() as exc:
                    yield ctx.finding(
                        "PARSE-ERROR",
                        f"7z member data is corrupt ({type(exc).__name__}: {exc}); what was recovered was scanned",
                    )
                yield from _products(factory, links, aliases, failed, blob, ctx)
                yield from _link_findings(archive, links, aliases, ctx)
            yield from _trailing(stream, blob, size, ctx)


def _trailing(stream: BinaryIO, blob: Blob, size: int, ctx: ScanContext) -> Iterator[object]:
    """Bytes after the end header (the start header says where it ends): a polyglot."""
    stream.seek(START_HEADER.size - 20)
    raw = stream.read(20)
    if len(raw) < 20:
        return
    offset, length, _ = START_HEADER_TAIL.unpack(raw)
    end = START_HEADER.size + offset + length
    start = first_nonzero(stream, end, size) if end < size else None
    if start is not None:
        yield ctx.finding(TRAILING_DATA.id, f"{size - start} bytes follow the end of the 7z archive", offset=start)
        yield blob.child_range(f"trailing@{start}", start, size - start)


def _alias_unsafe_names(archive: Any) -> dict[str, str]:
    """Give members with unsafe names a harmless alias, so py7zr extracts them for scanning.

    py7zr refuses to extract such members at all, while other 7z tools strip the unsafe part
    and extract them: their content must be scanned. Returns alias -> original name.
    """
    aliases: dict[str, str] = {}
    for member in getattr(archive, "files", None) or []:
        info = getattr(member, "_file_info", None)
        if isinstance(info, dict) and unsafe_path(str(info.get("filename") or "")):
            alias = f"unsafe-member-{getattr(member, 'id', len(aliases))}"
            aliases[alias] = str(info["filename"])
            info["filename"] = alias
    return aliases


def _products(
    factory: _SpoolFactory, links: set[str], aliases: dict[str, str], failed: bool, blob: Blob, ctx: ScanContext
) -> Iterator[object]:
    """Extracted members as child blobs; symbolic links (whose content is the target) checked."""
    for key, spool in factory.products.items():
        name = aliases.get(key, key)
        if key not in links and (spool.size or not failed):
            yield spool.blob(blob, name)


def _link_findings(archive: Any, links: set[str], aliases: dict[str, str], ctx: ScanContext) -> Iterator[Finding]:
    """A high finding per symbolic link, with its target when py7zr gives it up.

    Links are extracted apart from the regular members, one at a time: py7zr refuses a link whose
    target is absolute with an error that would otherwise end the extraction of every member.
    """
    for key in sorted(links):
        name = aliases.get(key, key)
        target = ""
        factory = _SpoolFactory(Budget(ctx.limits), ctx)
        try:
            archive.reset()
            archive.extract(targets=[key], factory=cast("WriterFactory", factory))
            spool = factory.products.get(key)
            target = spool.head(4096).decode("utf-8", "replace") if spool is not None else ""
        except _errors() as exc:
            target = ""
            refusal = f"{type(exc).__name__}: {exc}"
        else:
            refusal = ""
        reason = unsafe_link(name, target) if target else ""
        if reason:
            yield ctx.finding(PATH_TRAVERSAL.id, f"7z link {name!r}: {reason}", detail=name, evidence=target)
        shown = f" to {target!r}" if target else f" (target not readable: {refusal or 'empty'})"
        yield ctx.finding(
            LINK_MEMBER.id,
            f"7z member {name!r} is a symbolic link{shown}" + (f" ({reason})" if reason else ""),
            detail=name,
            evidence=target,
        )


def _safe_targets(
    archive: Any, aliases: dict[str, str], ctx: ScanContext
) -> Generator[object, None, tuple[list[str], set[str]]]:
    """Yield findings for unsafe members; return the members to extract and which are links."""
    try:
        infos = archive.list()
    except _errors() as exc:
        raise FormatError(f"unreadable 7z member list: {type(exc).__name__}: {exc}") from None
    check_members(len(infos), ctx.limits)
    targets: list[str] = []
    links: set[str] = set()
    for info in infos:
        name = str(info.filename or "")
        original = aliases.get(name, name)
        reason = unsafe_path(original)
        if reason:
            yield ctx.finding(PATH_TRAVERSAL.id, f"7z member {original!r}: {reason}", detail=original)
        if info.is_symlink:
            links.add(name)  # extracted on its own (see _link_findings)
        elif not info.is_directory and not (reason and name == original):
            targets.append(name)
    return targets, links


class _SpoolFactory:
    """py7zr writer factory: each member goes into a bounded spool."""

    def __init__(self, budget: Budget, ctx: ScanContext) -> None:
        self.budget = budget
        self.ctx = ctx
        self.products: dict[str, Spool] = {}

    def create(self, filename: str) -> Py7zIO:
        """A writer for one member."""
        from py7zr.io import Py7zIO

        spool = Spool(self.budget)
        self.products[filename] = spool
        ctx = self.ctx

        class _Writer(Py7zIO):
            def write(self, s: bytes | bytearray) -> int:
                ctx.check_time()
                spool.write(bytes(s))
                return len(s)

            def read(self, size: int | None = None) -> bytes:
                return b""

            def seek(self, offset: int, whence: int = 0) -> int:
                return 0

            def flush(self) -> None:
                return None

            def size(self) -> int:
                return spool.size

        return _Writer()
