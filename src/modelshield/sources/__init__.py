"""WHERE bytes come from: local files and folders (archives are opened by format readers)."""

from __future__ import annotations

from modelshield.errors import SourceError
from modelshield.sources.hf_cache import HFCacheSource
from modelshield.sources.interface import Source
from modelshield.sources.local import LocalSource

#: Sources tried in order; the local disk is the fallback. Later sources (HF cache ...) go first.
SOURCES: list[Source] = [HFCacheSource(), LocalSource()]


def resolve_source(target: str) -> Source:
    """The first source that accepts ``target``; SourceError when none does."""
    for source in SOURCES:
        if source.accepts(target):
            return source
    raise SourceError(f"{target}: no such file or folder", hint="check the path")
