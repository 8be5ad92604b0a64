"""The manifest: one streaming SHA-256 pass over every file of a model, parallel across files.

A model is a single file or a folder. Every regular file under a folder is hashed once, except
the model card (``README.md`` at the root), our own attestation sidecars, OMS signature files and
VCS metadata (``.git/``). The digests are reused by the scan report and the attestation
subjects (see :func:`with_digests`), so one run never hashes a file twice.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from modelshield.errors import ModelShieldError, SourceError
from modelshield.types import Artifact, ScanReport

#: The model card: excluded from the signed subjects so refreshing it never breaks a signature.
CARD_NAME = "README.md"
#: Sidecar of a single-file model: ``<model>`` + this suffix.
FILE_SIDECAR_SUFFIX = ".modelshield.dsse.json"
#: Sidecar of a folder model, at the folder's root.
FOLDER_SIDECAR_NAME = "modelshield.attestation.dsse.json"
#: Default name of an OpenSSF model-signing (OMS) signature.
OMS_SIGNATURE_NAME = "model.sig"
#: Size of one read; large enough that hashlib releases the GIL and syscalls are amortised.
CHUNK_SIZE = 4 << 20


class ManifestError(ModelShieldError):
    """The model could not be hashed (unreadable file, special file, changed while hashing)."""


@dataclass(frozen=True, slots=True)
class FileDigest:
    """One file of a model: its POSIX path relative to the model root, size and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What the filesystem says about a file (size, mtime, inode) when it was hashed."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every file of a model with its digest, sorted by name.

    ``root`` is the model path as given (file or folder); ``is_folder`` tells which.
    ``stamps`` (same order as ``files``) lets a caller prove the files did not change later.
    """

    root: str
    is_folder: bool
    files: tuple[FileDigest, ...]
    stamps: tuple[FileStamp, ...] = ()

    def by_name(self) -> dict[str, FileDigest]:
        """Files keyed by relative name."""
        return {f.name: f for f in self.files}

    def path_of(self, name: str) -> str:
        """Absolute path of the file called ``name`` in this manifest."""
        if not self.is_folder:
            return os.path.abspath(self.root)
        return os.path.abspath(os.path.join(self.root, *name.split("/")))

    def digests_by_path(self) -> dict[str, str]:
        """SHA-256 keyed by absolute path (to fill in scan artifacts)."""
        return {self.path_of(f.name): f.sha256 for f in self.files}

    def root_digest(self) -> str:
        """One digest naming the whole file set: SHA-256 over ``name NUL sha256 LF`` lines in name order."""
        hasher = hashlib.sha256()
        for item in self.files:
            hasher.update(f"{item.name}\0{item.sha256}\n".encode())
        return hasher.hexdigest()

    @property
    def total_bytes(self) -> int:
        """Sum of the file sizes."""
        return sum(f.size for f in self.files)


def is_ignored(name: str) -> bool:
    """True for relative names that are never part of a model's subjects."""
    parts = name.split("/")
    if name in (CARD_NAME, FOLDER_SIDECAR_NAME, OMS_SIGNATURE_NAME):
        return True
    return parts[-1].endswith(FILE_SIDECAR_SUFFIX) or parts[0] == ".git"


def sidecar_path(model: str | os.PathLike[str]) -> Path:
    """Where the attestation of ``model`` (a file or a folder) lives."""
    path = Path(model)
    if path.is_dir():
        return path / FOLDER_SIDECAR_NAME
    return path.with_name(path.name + FILE_SIDECAR_SUFFIX)


def hash_file(path: str, chunk_size: int = CHUNK_SIZE) -> tuple[int, str]:
    """Stream ``path`` once through SHA-256; return (bytes read, hex digest)."""
    hasher = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as stream:
        _advise_sequential(stream.fileno())
        while count := stream.readinto(buffer):
            hasher.update(view[:count])
            size += count
    return size, hasher.hexdigest()


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """SHA-256 (hex) of bytes already in memory (the guard hashes exactly what it loads)."""
    return hashlib.sha256(data).hexdigest()


def _advise_sequential(fd: int) -> None:
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        try:
            advise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:
            return


def list_files(root: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(relative POSIX name, absolute path) of every file of a model, sorted; ignored names left out.

    Symlinked folders are not followed; special files (fifos, sockets, devices) are an error,
    because nothing could vouch for what a loader would read from them.
    """
    base = Path(root)
    try:
        info = base.stat()
    except OSError as exc:
        raise SourceError(f"{root}: cannot read ({exc.strerror})", hint="check the path") from None
    if stat.S_ISREG(info.st_mode):
        return [(base.name, os.path.abspath(base))]
    if not stat.S_ISDIR(info.st_mode):
        raise SourceError(f"{root}: not a regular file or folder", hint="attest model files or folders")
    found: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, base)
        for name in filenames:
            rel = name if rel_dir == "." else f"{Path(rel_dir).as_posix()}/{name}"
            if is_ignored(rel):
                continue
            full = os.path.join(dirpath, name)
            try:
                mode = os.stat(full).st_mode
            except OSError as exc:
                raise ManifestError(f"{full}: cannot read ({exc.strerror})", hint="fix or remove the file") from None
            if not stat.S_ISREG(mode):
                raise ManifestError(f"{full}: not a regular file", hint="remove special files from the model folder")
            found.append((rel, os.path.abspath(full)))
    found.sort()
    return found


def default_workers() -> int:
    """Hashing threads: one per core (hashlib releases the GIL on large updates)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def build_manifest(root: str | os.PathLike[str], *, workers: int | None = None) -> Manifest:
    """Hash every file of the model at ``root`` once, in parallel across files."""
    entries = list_files(root)
    is_folder = Path(root).is_dir()
    results = list(_hash_all([path for _, path in entries], workers or default_workers()))
    files = tuple(FileDigest(name, size, digest) for (name, _), (size, digest, _) in zip(entries, results, strict=True))
    stamps = tuple(stamp for _, _, stamp in results)
    return Manifest(str(root), is_folder, files, stamps)


def _hash_all(paths: list[str], workers: int) -> Iterator[tuple[int, str, FileStamp]]:
    # Biggest files first would balance better, but results must keep the input order;
    # map() keeps order and the pool still runs `workers` files at a time.
    if workers <= 1 or len(paths) <= 1:
        yield from map(_hash_one, paths)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelshield-hash") as pool:
        yield from pool.map(_hash_one, paths)


def _hash_one(path: str) -> tuple[int, str, FileStamp]:
    try:
        before = os.stat(path)
        size, digest = hash_file(path)
        after = os.stat(path)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})", hint="check permissions") from None
    stamp = FileStamp(after.st_size, after.st_mtime_ns, after.st_ino)
    if size != after.st_size or (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size):
        raise ManifestError(f"{path}: changed while it was being hashed", hint="stop writers and try again")
    return size, digest, stamp


def check_unchanged(manifest: Manifest) -> None:
    """Raise ManifestError when a file changed (or appeared/vanished) since the manifest was built.

    Called after a scan so an attestation never vouches for bytes other than the ones scanned.
    """
    current = dict(list_files(manifest.root))
    names = {f.name for f in manifest.files}
    if set(current) != names:
        changed = sorted(set(current) ^ names)
        raise ManifestError(f"files appeared or vanished during the scan: {', '.join(changed)}", hint="scan again")
    for item, stamp in zip(manifest.files, manifest.stamps, strict=True):
        info = os.stat(current[item.name])
        if FileStamp(info.st_size, info.st_mtime_ns, info.st_ino) != stamp:
            raise ManifestError(f"{item.name} changed during the scan", hint="stop writers and scan again")


def with_digests(report: ScanReport, digests: Mapping[str, str]) -> ScanReport:
    """The report with top-level artifacts' ``sha256`` taken from ``digests`` (absolute path -> hex)."""
    artifacts = tuple(_fill(a, digests) for a in report.artifacts)
    return replace(report, artifacts=artifacts)


def _fill(artifact: Artifact, digests: Mapping[str, str]) -> Artifact:
    if artifact.member is not None:
        return artifact
    digest = digests.get(os.path.abspath(artifact.path))
    return artifact if digest is None or artifact.sha256 == digest else replace(artifact, sha256=digest)


def manifest_from_digests(root: str, is_folder: bool, items: Iterable[FileDigest]) -> Manifest:
    """A manifest from digests computed elsewhere (e.g. by the guard over in-memory bytes)."""
    return Manifest(root, is_folder, tuple(sorted(items, key=lambda f: f.name)))
