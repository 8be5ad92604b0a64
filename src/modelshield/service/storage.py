"""Content-addressed storage: every stored file lives once under ``blobs/`` by its SHA-256.

A file arrives as a :class:`PendingFile` (a temp file in the data dir, hashed while it is written);
:meth:`Storage.commit` moves it into place with one rename, or drops it when those bytes are stored
already. Nothing is half-stored: a failed or oversized upload only ever leaves temp files, which the
caller discards. Stored blobs are read-only; scans read them through folders materialised with the
model's own relative paths (hard links, a copy for the model card the attestation rewrites).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from modelshield.attest.manifest import CARD_NAME, is_ignored
from modelshield.service.errors import ServiceError, bad_request, too_large
from modelshield.service.settings import Settings

CHUNK = 1 << 20
MAX_PATH_CHARS = 1024
MAX_PART_BYTES = 255
MAX_DEPTH = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DRIVE = re.compile(r"^[A-Za-z]:")


def clean_relpath(name: str) -> str:
    """A model-relative POSIX path, checked; 400 ``invalid_file_name`` for anything that could escape.

    Refused: empty names, absolute paths, drive letters, backslashes, ``.``/``..``/empty components,
    NUL and control characters, over-long names, and the names modelshield keeps for itself
    (attestation sidecars, ``.git/``), which would be silently left out of the attestation.
    """
    problem = _path_problem(name)
    if problem:
        shown = name[:80].encode("unicode_escape").decode("ascii")
        raise bad_request(f"file name {shown!r} refused: {problem}", code="invalid_file_name")
    return name


def _path_problem(name: str) -> str | None:
    if not name:
        return "empty file name"
    if len(name) > MAX_PATH_CHARS:
        return f"longer than {MAX_PATH_CHARS} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "control characters"
    if "\\" in name:
        return "backslash (use / between folders)"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} folders"
    for part in parts:
        if part in ("", ".", ".."):
            return "path traversal or empty path component"
        if len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
            return f"a component longer than {MAX_PART_BYTES} bytes"
    if name != CARD_NAME and is_ignored(name):
        return "a name modelshield reserves for its own files (attestation sidecar, .git)"
    return None


@dataclass
class PendingFile:
    """A file being received: a temp file in the data dir and its running SHA-256 and size."""

    relpath: str
    path: Path
    size: int = 0
    _hasher: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)
    _stream: BinaryIO | None = field(default=None, repr=False)
    sha256: str = ""

    def write(self, chunk: bytes) -> None:
        """Append bytes (hashing them)."""
        stream = self._open()
        stream.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def _open(self) -> BinaryIO:
        if self._stream is None:
            self._stream = open(self.path, "ab", buffering=CHUNK)  # noqa: SIM115 - closed by finish/discard
        return self._stream

    def finish(self) -> str:
        """Flush to disk and return the SHA-256 (hex)."""
        stream = self._open()
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        self._stream = None
        self.sha256 = self._hasher.hexdigest()
        return self.sha256

    def discard(self) -> None:
        """Close and delete the temp file."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file of a model as stored: relative path, SHA-256, size, and whether this call stored the bytes."""

    relpath: str
    sha256: str
    size: int
    created: bool = False


class Storage:
    """The blob store of one data dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.blob_dir
        self.tmp = settings.tmp_dir

    def blob_path(self, sha256: str) -> Path:
        """Where the bytes with this digest live."""
        if not _HEX64.match(sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """True when these bytes are stored."""
        return self.blob_path(sha256).is_file()

    def pending(self, relpath: str) -> PendingFile:
        """A new temp file for an incoming file called ``relpath``."""
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.tmp)
        os.close(fd)
        return PendingFile(relpath, Path(name))

    def commit(self, pending: PendingFile) -> StoredFile:
        """Move a finished temp file into the store (or drop it: those bytes are stored already)."""
        digest = pending.sha256 or pending.finish()
        target = self.blob_path(digest)
        if target.is_file():
            pending.discard()
            return StoredFile(pending.relpath, digest, pending.size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(pending.path, 0o444)
        os.replace(pending.path, target)
        return StoredFile(pending.relpath, digest, pending.size, created=True)

    def remove_created(self, files: Iterable[StoredFile]) -> None:
        """Undo :meth:`commit` for the blobs a failed registration created itself."""
        for item in files:
            if item.created:
                self.blob_path(item.sha256).unlink(missing_ok=True)

    def hash_blob(self, sha256: str) -> str | None:
        """SHA-256 of the stored file now (None when it is missing or unreadable)."""
        hasher = hashlib.sha256()
        try:
            with open(self.blob_path(sha256), "rb") as stream:
                while chunk := stream.read(CHUNK):
                    hasher.update(chunk)
        except OSError:
            return None
        return hasher.hexdigest()

    def import_tree(self, root: Path, *, follow_symlinks: bool, max_bytes: int) -> list[StoredFile]:
        """Copy every file of a server-side folder (or one file) into the store; nothing stored on error."""
        pendings: list[PendingFile] = []
        try:
            total = 0
            for relpath, source in _walk(root, follow_symlinks):
                pending = self.pending(clean_relpath(relpath))
                pendings.append(pending)
                with open(source, "rb") as stream:
                    while chunk := stream.read(CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise too_large(max_bytes)
                        pending.write(chunk)
                pending.finish()
            if not pendings:
                raise ServiceError(422, "empty_model", "the folder holds no files")
            return [self.commit(p) for p in pendings]
        except OSError as exc:
            raise ServiceError(422, "unreadable_source", f"cannot read the source: {exc.strerror}") from None
        finally:
            for pending in pendings:
                if pending.path.exists():
                    pending.discard()

    def materialise(self, files: Iterable[tuple[str, str]], dest: Path) -> None:
        """Lay out stored blobs at ``dest`` under their relative paths (hard links; a copy for the card)."""
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        base = dest.resolve()
        for relpath, digest in files:
            target = dest.joinpath(*clean_relpath(relpath).split("/"))
            if base not in target.resolve().parents:
                raise bad_request(f"file name {relpath!r} escapes the model folder", code="invalid_file_name")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.blob_path(digest)
            if relpath == CARD_NAME:
                shutil.copyfile(source, target)  # the attestation rewrites the card: never through a link
                os.chmod(target, 0o644)
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)


def _walk(root: Path, follow_symlinks: bool) -> Iterator[tuple[str, Path]]:
    try:
        info = os.stat(root) if follow_symlinks else os.lstat(root)
    except OSError as exc:
        raise ServiceError(422, "unreadable_source", f"cannot read the source: {exc.strerror}") from None
    if stat.S_ISREG(info.st_mode):
        yield root.name, root
        return
    if not stat.S_ISDIR(info.st_mode):
        raise ServiceError(422, "unreadable_source", "the source is not a regular file or folder")
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            mode = (os.stat(full) if follow_symlinks else os.lstat(full)).st_mode
            if stat.S_ISLNK(mode):
                raise ServiceError(422, "symlink_in_source", f"{full.relative_to(root)} is a symbolic link")
            if not stat.S_ISREG(mode):
                raise ServiceError(422, "special_file", f"{full.relative_to(root)} is not a regular file")
            yield full.relative_to(root).as_posix(), full
