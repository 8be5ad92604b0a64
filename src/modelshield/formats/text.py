"""Plain text that is just data (README.md, vocab.txt, merges.txt, licences, notes).

Recognised so such files are not reported as unknown content, but still scanned by the generic
checks (EICAR, embedded executables, YARA). JSON, YAML, Python and scripts have their own
readers with higher priority; this one is the text fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.formats._sniff import sniff_text
from modelshield.formats.executables import eicar_offsets, generic_findings, read_small
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader


@register_reader
class TextReader(Reader):
    """UTF-8 text without a more specific reader: data, checked for planted content."""

    name = "text"
    priority = 10

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Printable UTF-8 text."""
        return sniff_text(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Generic checks over the whole text (EICAR only, streamed, when it is large)."""
        data = read_small(blob)
        if data is not None:
            yield from generic_findings(data, ctx)
            return
        from modelshield.formats.executables import EICAR_RULE

        for offset in eicar_offsets(blob, ctx, limit=blob.size):
            yield ctx.finding(EICAR_RULE.id, "EICAR anti-malware test string found", offset=offset)
