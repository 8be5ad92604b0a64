"""Models in the local Hugging Face cache, by repo id (offline; nothing is downloaded).

Targets: ``hf:org/name``, ``hf:org/name@revision``, or a bare ``org/name`` that is not a local
path. The cache is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``;
the repo lives in ``models--org--name/snapshots/<commit>/`` whose files are symlinks into
``blobs/`` (followed). The revision is a commit hash, a ref under ``refs/`` (default ``main``),
or, when there is no ref, the only snapshot.
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

_REPO_ID = re.compile(r"^(?:hf:)?(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")


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
    match = _REPO_ID.match(target)
    if not match:
        raise SourceError(f"{target}: not a Hugging Face repo id", hint="use hf:org/name[@revision]")
    repo, revision = match["repo"], match["rev"] or "main"
    if ".." in repo.split("/") or ".." in revision.split("/"):
        raise SourceError(f"{target}: invalid repo id or revision", hint="use hf:org/name[@revision]")
    folder = hub_cache() / ("models--" + repo.replace("/", "--"))
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        raise SourceError(
            f"{target}: no such file or folder, and not in the Hugging Face cache ({folder})",
            hint=f"download it first (huggingface-cli download {repo}) or set HF_HUB_CACHE",
        )
    ref = folder / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    chosen = snapshots / commit
    if not chosen.is_dir() and match["rev"] is None:
        available = sorted(p for p in snapshots.iterdir() if p.is_dir())
        if len(available) == 1:
            chosen = available[0]
    if not chosen.is_dir() or chosen.parent != snapshots:
        raise SourceError(f"{target}: revision {revision!r} is not in the cache", hint=f"see {snapshots}")
    return chosen


class HFCacheSource:
    """A repo of the local Hugging Face cache, by id."""

    def accepts(self, target: str) -> bool:
        """``hf:`` targets, and bare ``org/name`` ids that are not local paths."""
        if target.startswith("hf:"):
            return True
        return bool(_REPO_ID.match(target)) and not os.path.lexists(target)

    def blobs(self, target: str) -> Iterator[Blob]:
        """Every file of the snapshot (symlinks into ``blobs/`` followed), in a stable order."""
        yield from LocalSource().blobs(str(snapshot_folder(target)))
