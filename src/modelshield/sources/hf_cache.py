"""Models in the local Hugging Face cache, by repo id (offline unless ``--online``).

Targets: ``hf://org/name``, ``hf:org/name`` (each with an optional ``@revision``), or a bare
``org/name`` that is not a local path. The cache is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
else ``~/.cache/huggingface/hub``; the repo lives in ``models--org--name/snapshots/<commit>/``
whose files are symlinks into ``blobs/`` (followed). The revision is a commit hash, a ref under
``refs/`` (default ``main``), or, when there is no ref, the only snapshot.

Nothing is downloaded unless the source is made with ``online=True`` (``scan --online``): then
the revision is fetched into the same cache through ``huggingface_hub``
(:mod:`modelshield.sources.hf_hub`, the ``hub`` extra) and scanned from there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from modelshield.errors import SourceError
from modelshield.formats.interface import Blob
from modelshield.sources.local import LocalSource

if TYPE_CHECKING:  # pathlib is imported only when the cache is used (~2 ms of every start otherwise)
    from pathlib import Path

_REPO_ID = re.compile(r"^(?:hf:(?://)?)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


class NotInCache(SourceError):
    """The repo or revision is not in the local Hugging Face cache (``--online`` would fetch it)."""

    def __init__(self, message: str, *, hint: str = "", repo: str, revision: str | None) -> None:
        super().__init__(message, hint=hint)
        self.repo = repo
        self.revision = revision


def parse_repo_id(target: str) -> tuple[str, str | None]:
    """``(org/name, revision or None)`` of a Hugging Face target; SourceError when it is not one."""
    match = _REPO_ID.match(target)
    if not match:
        raise SourceError(f"{target}: not a Hugging Face repo id", hint="use hf://org/name[@revision]")
    repo, revision = match["repo"], match["rev"]
    if ".." in repo.split("/") or (revision is not None and ".." in revision.split("/")):
        raise SourceError(f"{target}: invalid repo id or revision", hint="use hf://org/name[@revision]")
    return repo, revision


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, from the environment like huggingface_hub does."""
    from pathlib import Path

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def snapshot_folder(target: str) -> Path:
    """The snapshot folder for ``target``; SourceError saying what is missing otherwise."""
    repo, asked = parse_repo_id(target)
    revision = asked or "main"
    folder = hub_cache() / ("models--" + repo.replace("/", "--"))
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        raise NotInCache(
            f"{target}: no such file or folder, and not in the Hugging Face cache ({folder})",
            hint=f"rerun with --online to download it from the Hub, or set HF_HUB_CACHE to the cache that has {repo}",
            repo=repo,
            revision=asked,
        )
    ref = folder / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    chosen = snapshots / commit
    if not chosen.is_dir() and asked is None:
        available = sorted(p for p in snapshots.iterdir() if p.is_dir())
        if len(available) == 1:
            chosen = available[0]
    if not chosen.is_dir() or chosen.parent != snapshots:
        raise NotInCache(
            f"{target}: revision {revision!r} is not in the cache",
            hint=f"rerun with --online to download it, or see {snapshots}",
            repo=repo,
            revision=asked,
        )
    return chosen


class HFCacheSource:
    """A repo of the local Hugging Face cache, by id; with ``online=True`` fetched from the Hub first."""

    def __init__(self, *, online: bool = False) -> None:
        self.online = online

    def accepts(self, target: str) -> bool:
        """``hf:`` targets, and bare ``org/name`` ids that are not local paths."""
        if target.startswith("hf:"):
            return True
        return bool(_REPO_ID.match(target)) and not os.path.lexists(target)

    def blobs(self, target: str) -> Iterator[Blob]:
        """Every file of the snapshot (symlinks into ``blobs/`` followed), in a stable order.

        Online, the revision is asked of the Hub and whatever the cache lacks is downloaded first
        (a cached ``main`` may be stale); offline, a repo or revision not in the cache is a
        :class:`NotInCache` error whose hint names ``--online``.
        """
        if self.online:
            from modelshield.sources.hf_hub import download_snapshot

            repo, revision = parse_repo_id(target)
            folder = download_snapshot(repo, revision, cache=hub_cache())
        else:
            folder = snapshot_folder(target)
        yield from LocalSource().blobs(str(folder))
