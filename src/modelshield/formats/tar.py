"""Tar archives (plain; compressed tars arrive here through the compression wrappers).

:mod:`tarfile` is used to list headers only (GNU, PAX and ustar variants); nothing is ever
extracted to disk. Regular members are yielded as byte ranges of the archive (no copy). The
legacy PyTorch format (``torch.save(..., _use_new_zipfile_serialization=False)`` before 1.6 wrote
a tar of ``sys_info``, ``pickle``, ``storages`` and ``tensors``) is reported as
``torch-legacy-tar``; its pickles are members like any other.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from modelshield.errors import FormatError
from modelshield.formats._containers import (
    LINK_MEMBER,
    PATH_TRAVERSAL,
    TRAILING_DATA,
    check_members,
    first_nonzero,
    unsafe_link,
    unsafe_path,
)
from modelshield.formats._sniff import TAR_BLOCK as BLOCK
from modelshield.formats._sniff import sniff_tar
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.types import Finding

LEGACY_TORCH_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})
#: What tarfile raises on malformed headers (it has no single error base for all of them).
TAR_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, ValueError, UnicodeError, OverflowError)


@register_reader
class TarReader(Reader):
    """Tar archives, including the legacy PyTorch tar checkpoint."""

    name = "tar"
    priority = 80

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A first block that is a tar header with a valid checksum."""
        return sniff_tar(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """List headers; yield link/path findings, regular members, then trailing data."""
        with blob.open() as stream:
            size = stream.seek(0, io.SEEK_END)
            stream.seek(0)
            end, names, error = 0, [], ""
            try:
                archive = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - listing only, closed below
            except TAR_ERRORS as exc:
                raise FormatError(f"not a readable tar archive: {exc}") from None
            try:
                for info in _members(archive, ctx):
                    names.append(info.name)
                    yield from _member(info, blob, size, ctx)
                    end = info.offset_data + _padded(info.size) if info.isreg() else info.offset_data
            except TAR_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"
            if not error:
                end = max(end, archive.offset)
                stream.seek(end)
                if len(stream.read(BLOCK)) < BLOCK:
                    error = "the archive ends without its end-of-archive marker (truncated)"
            if set(names) & LEGACY_TORCH_MEMBERS and "pickle" in names:
                ctx.format = "torch-legacy-tar"
            if error:
                yield ctx.finding("PARSE-ERROR", f"tar archive is damaged after byte {end}: {error}", offset=end)
            yield from _trailing(stream, blob, end, size, ctx)


def _members(archive: tarfile.TarFile, ctx: ScanContext) -> Iterator[tarfile.TarInfo]:
    count = 0
    info = archive.next()  # returns the member tarfile.open already read first
    while info is not None:
        count += 1
        check_members(count, ctx.limits)
        ctx.check_time()
        yield info
        archive.members.clear()  # type: ignore[attr-defined]  # listing only: keep memory flat
        info = archive.next()


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _member(info: tarfile.TarInfo, blob: Blob, size: int, ctx: ScanContext) -> Iterator[object]:
    reason = unsafe_path(info.name)
    if reason:
        yield ctx.finding(
            PATH_TRAVERSAL.id, f"tar member {info.name!r}: {reason}", offset=info.offset, detail=info.name
        )
    if info.issym() or info.islnk():
        link = unsafe_link(info.name, info.linkname) if info.issym() else unsafe_path(info.linkname)
        if link:
            yield ctx.finding(
                PATH_TRAVERSAL.id,
                f"tar link {info.name!r}: {link}",
                offset=info.offset,
                detail=info.name,
                evidence=info.linkname,
            )
        kind = "symbolic link" if info.issym() else "hard link"
        yield ctx.finding(
            LINK_MEMBER.id,
            f"tar member {info.name!r} is a {kind} to {info.linkname!r}" + (f" ({link})" if link else ""),
            offset=info.offset,
            detail=info.name,
            evidence=info.linkname,
        )
        return
    if not info.isreg():
        return
    available = max(0, min(info.size, size - info.offset_data))
    if available < info.size:
        yield ctx.finding(
            "PARSE-ERROR",
            f"tar member {info.name!r} is truncated: {available} of {info.size} bytes present",
            offset=info.offset_data,
            detail=info.name,
        )
    yield blob.child_range(info.name, info.offset_data, available)


def _trailing(stream: BinaryIO, blob: Blob, end: int, size: int, ctx: ScanContext) -> Iterator[object]:
    """Non-zero bytes after the archive (or after a header tarfile could not read)."""
    start = first_nonzero(stream, end, size) if end < size else None
    if start is None:
        return
    start -= start % BLOCK
    finding: Finding = ctx.finding(
        TRAILING_DATA.id, f"{size - start} bytes after the end of the tar archive", offset=start
    )
    yield finding
    yield blob.child_range(f"trailing@{start}", start, size - start)
