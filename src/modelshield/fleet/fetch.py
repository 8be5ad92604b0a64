"""Where a listed file's bytes are, how to open them, and proof that they did not change.

A listed file is an :class:`Entry`: a local path, a URL that fsspec opens (``s3://``, ``gs://``,
``https://`` ...), or a listing that failed (kept, so it is reported). A :class:`Fingerprint` is
what was seen when the file was listed (size, modification stamp, SHA-256); the scanning task
checks the bytes it scans against it, so a file that changes in between is reported as changed
instead of mixing one version's verdict with the other's bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any, BinaryIO

from modelshield._record import record
from modelshield.errors import SourceError
from modelshield.formats.interface import Blob
from modelshield.sources.local import file_blob

HASH_CHUNK = 1 << 20
#: Local files up to this size are hashed by the driver itself (a task costs more than the hash).
INLINE_HASH_MAX = 4 << 20
#: fsspec protocols that live in one process: the driver reads their bytes and ships them to the task.
PROCESS_LOCAL = frozenset({"memory"})


class FetchError(SourceError):
    """A listed file cannot be opened or read (missing, HTTP error, credentials, unknown scheme)."""


@record
class Entry:
    """One listed file.

    ``kind`` is ``local`` (a path), ``remote`` (an fsspec URL) or ``failed`` (the listing itself
    failed: ``error`` says why). ``target`` is the LIST line or command-line target it came from.
    ``data`` carries the bytes of a process-local URL (``memory://``), read by the driver.
    """

    index: int
    target: str
    url: str
    kind: str
    size: int = -1
    error: str = ""
    data: bytes | None = None


@record
class Fingerprint:
    """What a file was when it was looked at: size, modification stamp, SHA-256 of the bytes."""

    size: int
    stamp: str
    sha256: str


def fetch_error(url: str, exc: BaseException) -> FetchError:
    """A one-line, actionable description of why ``url`` could not be read."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if isinstance(exc, FileNotFoundError):
        return FetchError(f"{url}: not found ({text})", hint="check the path or URL (HTTP 404 / no such object)")
    if isinstance(exc, PermissionError) or "Credentials" in name or "credential" in text.lower():
        return FetchError(
            f"{url}: access denied or credentials missing ({name}: {text})",
            hint=f"configure credentials for {scheme}:// (e.g. AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS)",
        )
    if isinstance(exc, ImportError) or "Protocol not known" in text or "known implementation" in text:
        return FetchError(
            f"{url}: no fsspec driver for {scheme}:// ({text})",
            hint=f"install the fsspec driver for {scheme}:// (s3fs, gcsfs, adlfs, aiohttp for https)",
        )
    return FetchError(f"{url}: cannot read ({name}: {text})", hint="check the URL and that the storage answers")


def _remote(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]
    except ImportError as exc:
        raise FetchError(f"{url}: URLs need fsspec", hint="pip install 'modelshield[ray]'") from exc
    try:
        found: tuple[Any, str] = url_to_fs(url)
        return found
    except Exception as exc:  # noqa: BLE001 - any driver error (unknown scheme, missing package) is this file's
        raise fetch_error(url, exc) from None


def _remote_stamp(info: dict[str, Any]) -> str:
    for key in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "last_modified", "created"):
        if info.get(key) is not None:
            return f"{key}={info[key]}"
    return ""


def stat_entry(entry: Entry) -> tuple[int, str]:
    """(size, stamp) of the file now; FetchError when it cannot be looked at."""
    if entry.data is not None:
        return len(entry.data), "inline"
    if entry.kind == "local":
        try:
            info = os.stat(entry.url)
        except OSError as exc:
            raise fetch_error(entry.url, exc) from None
        return info.st_size, f"mtime_ns={info.st_mtime_ns}"
    fs, path = _remote(entry.url)
    try:
        info = fs.info(path)
    except Exception as exc:  # noqa: BLE001 - HTTP/credential errors of any driver become this file's finding
        raise fetch_error(entry.url, exc) from None
    return int(info.get("size") or 0), _remote_stamp(info)


def open_stream(entry: Entry) -> BinaryIO:
    """A fresh seekable binary stream over the entry's bytes."""
    if entry.data is not None:
        return io.BytesIO(entry.data)
    if entry.kind == "local":
        return open(entry.url, "rb")  # noqa: SIM115 - the caller closes it
    fs, path = _remote(entry.url)
    try:
        return fs.open(path, "rb")  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - see stat_entry
        raise fetch_error(entry.url, exc) from None


def sha256_of(entry: Entry) -> str:
    """SHA-256 of the entry's bytes (one streaming pass)."""
    digest = hashlib.sha256()
    try:
        if entry.data is not None:
            digest.update(entry.data)
        elif entry.kind == "local" and 0 <= entry.size <= INLINE_HASH_MAX:  # one unbuffered read (small files)
            fd = os.open(entry.url, os.O_RDONLY)
            try:
                while chunk := os.read(fd, HASH_CHUNK):
                    digest.update(chunk)
            finally:
                os.close(fd)
        else:
            with open_stream(entry) as stream:
                while chunk := stream.read(HASH_CHUNK):
                    digest.update(chunk)
    except FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a read failing half-way (network, credentials) is this file's
        raise fetch_error(entry.url, exc) from None
    return digest.hexdigest()


def fingerprint(entry: Entry) -> Fingerprint:
    """Size, stamp and SHA-256 of the entry now; FetchError when it cannot be read."""
    size, stamp = stat_entry(entry)
    sha = sha256_of(entry)
    after = stat_entry(entry)
    if after != (size, stamp):  # changed while hashing: the digest is of no single version
        raise FetchError(f"{entry.url}: changed while it was being hashed", hint="scan again once it is stable")
    return Fingerprint(size, stamp, sha)


def blob_of(entry: Entry, size: int) -> Blob:
    """The blob the scanner reads: a file on disk, the bytes of an inline URL, or an fsspec stream."""
    if entry.data is not None:
        data = entry.data
        return Blob(entry.url, (), len(data), lambda: io.BytesIO(data))
    if entry.kind == "local":
        return file_blob(entry.url, size)
    return Blob(entry.url, (), size, lambda: open_stream(entry))


_CONTEXT_FILES = (".json", ".index", ".txt", ".py", ".yaml", ".yml", ".toml", ".md", ".pbtxt")
_CONTEXT_MAX = 1 << 20


def folder_context(folder: str) -> str:
    """A digest of what readers may look at beside a file: sibling names and small metadata files.

    Some results depend on a file's neighbours (a sharded index, ``config.json``, ONNX external
    data, ``auto_map`` modules). Two byte-identical files share a cached verdict only when their
    folders agree on these too.
    """
    digest = hashlib.sha256()
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return "unlisted"
    for name in names:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        if name.endswith(_CONTEXT_FILES):
            path = os.path.join(folder, name)
            try:
                if os.path.getsize(path) <= _CONTEXT_MAX:
                    with open(path, "rb") as stream:
                        digest.update(hashlib.sha256(stream.read(_CONTEXT_MAX)).digest())
            except OSError:
                digest.update(b"?")
    return digest.hexdigest()[:32]


def context_of(entry: Entry, folders: dict[str, str]) -> str:
    """The cache context of an entry: its name plus its folder's context (memoised per folder)."""
    name = entry.url.rstrip("/").rsplit("/", 1)[-1]
    if entry.kind != "local" or entry.data is not None:
        return f"{name}|remote"  # a URL's neighbours are never visible to the readers
    folder = os.path.dirname(os.path.abspath(entry.url))
    found = folders.get(folder)
    if found is None:
        found = folders[folder] = folder_context(folder)
    return f"{name}|{found}"
