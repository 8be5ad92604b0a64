"""WHERE bytes come from: local files and folders, the HF cache (or Hub), MLflow (archives: format readers)."""

from __future__ import annotations

from modelshield.errors import SourceError
from modelshield.sources.hf_cache import HFCacheSource
from modelshield.sources.interface import Source
from modelshield.sources.local import LocalSource
from modelshield.sources.mlflow import MlflowSource

#: Sources tried in order; the local disk is the fallback. Later sources (HF cache ...) go first.
SOURCES: list[Source] = [MlflowSource(), HFCacheSource(), LocalSource()]


def resolve_source(target: str, *, online: bool = False) -> Source:
    """The first source that accepts ``target``; SourceError when none does.

    ``online`` (``scan --online``) lets a source fetch what is not on this machine yet (a Hugging
    Face repo not in the cache); without it nothing is downloaded from a hub.
    """
    sources: list[Source] = [MlflowSource(), HFCacheSource(online=True), LocalSource()] if online else SOURCES
    for source in sources:
        if source.accepts(target):
            return source
    raise SourceError(f"{target}: no such file or folder", hint="check the path")
