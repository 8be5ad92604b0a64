"""Generated red-team corpus: malicious pickle-family samples (harmless canary payloads) and benign real models.

Nothing here is committed as a binary: :func:`build_corpus` writes every sample into a directory at test time.
Malicious payloads only create ``<root>/canaries/canary-<name>`` (or a file starting with that name plus ``.``).
"""

from tests.corpus.model import Ctx, Sample, Spec, build_corpus, registry

__all__ = ["Ctx", "Sample", "Spec", "build_corpus", "registry"]
