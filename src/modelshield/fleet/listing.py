"""Targets and LIST files -> the files a fleet sweep scans, each line accounted for.

A LIST has one target per line (blank lines and ``#`` comments ignored): a local file or folder
(folders are walked like ``modelshield scan`` does), ``hf://org/name[@rev]`` / ``hf:org/name`` (a
repo in the local Hugging Face cache), ``file://PATH``, anything else one of modelshield's sources
reads (``mlflow://``), or any URL fsspec opens (``s3://``,
``gs://``, ``https://``, ``memory://`` ...; a URL ending in ``/`` or holding a glob is listed).
A line that cannot be listed (missing path, HTTP 404, no credentials) becomes one failed entry,
reported as a coverage finding: the report's file count equals the listed count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from modelshield.errors import ModelShieldError, SourceError, UsageError
from modelshield.fleet.fetch import PROCESS_LOCAL, Entry, _remote, fetch_error


def read_list(path: str) -> list[str]:
    """The targets of a LIST file (``-`` reads stdin); UsageError naming the file when unreadable."""
    import sys

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read the list {path}: {exc}", hint="give a text file with one target per line"
        ) from None
    targets = [line.strip() for line in text.splitlines()]
    targets = [t for t in targets if t and not t.startswith("#")]
    if not targets:
        raise UsageError(f"the list {path} names no target", hint="one path, hf:// id or URL per line")
    return targets


def _is_url(target: str) -> bool:
    scheme, sep, _rest = target.partition("://")
    return bool(sep) and scheme.isidentifier() or bool(sep and scheme.replace("+", "").replace("-", "").isalnum())


def _a_source_accepts(target: str) -> bool:
    """True when one of modelshield's own sources reads ``target`` (a path, an HF id, ``mlflow://``)."""
    from modelshield.sources import SOURCES

    return any(source.accepts(target) for source in SOURCES)


def _local(target: str, strict: bool) -> Iterator[tuple[str, str, int]]:
    """(kind, path, size) of each file of a local or HF-cache target."""
    from modelshield.scan import collect_blobs

    try:
        blobs = collect_blobs([target])
    except SourceError as exc:
        if strict:
            raise
        yield "failed", target, -1
        yield "error", exc.diagnostics(), -1
        return
    for blob in blobs:
        yield "local", blob.path, blob.size


def _remote_files(url: str) -> Iterator[tuple[str, str, int, bytes | None]]:
    fs, path = _remote(url)
    protocol = url.split("://", 1)[0]
    try:
        if url.endswith("/") or any(c in path for c in "*?["):
            found = fs.glob(path) if any(c in path for c in "*?[") else fs.find(path)
            infos = [(p, None) for p in sorted(found)]
        elif protocol not in PROCESS_LOCAL:  # one object: looked at by its fingerprint task, on the cluster
            yield "remote", url, -1, None
            return
        else:
            infos = [(path, fs.info(path))]
        for item, info in infos:
            info = info if info is not None else fs.info(item)
            if info.get("type") == "directory":
                continue
            full = fs.unstrip_protocol(item)
            data = None
            if protocol in PROCESS_LOCAL:  # only this process sees it: the driver ships the bytes
                data = fs.cat_file(item)
            size = int(info["size"]) if info.get("size") is not None else -1
            yield "remote", full, size, data
    except Exception as exc:  # noqa: BLE001 - any driver error (404, credentials, DNS) is this line's finding
        raise fetch_error(url, exc) from None


def list_entries(targets: Iterable[str], *, strict: bool = False) -> Iterator[Entry]:
    """Every file of every target, numbered in order; failed lines become failed entries.

    ``strict`` (``modelshield scan --engine ray``): a missing local target raises SourceError like
    a local scan does, instead of becoming a failed entry.
    """
    index = 0
    for target in targets:
        if target.startswith("hf://"):
            target_local = "hf:" + target[len("hf://") :]
        elif target.startswith("file://"):
            target_local = target[len("file://") :]
        else:
            target_local = target
        if target_local is not target or not _is_url(target) or _a_source_accepts(target):
            parts = list(_local(target_local, strict))
            if parts and parts[0][0] == "failed":
                yield Entry(index, target, target, "failed", -1, parts[1][1])
                index += 1
                continue
            for kind, path, size in parts:
                yield Entry(index, target, path, kind, size)
                index += 1
            continue
        try:
            for kind, url, size, data in _remote_files(target):
                yield Entry(index, target, url, kind, size, data=data)
                index += 1
        except ModelShieldError as exc:
            if strict:
                raise
            yield Entry(index, target, target, "failed", -1, exc.diagnostics())
            index += 1
