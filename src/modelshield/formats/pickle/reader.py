"""Reader for raw pickle files of any protocol (also joblib's uncompressed format).

Detection is by content only (trial parse of the head, see :func:`sniff_pickle`), so ``data.pkl``
members of torch archives, tar members of the old torch format, ``.bin``/``.pt``/``.joblib`` files
and pickles without any extension are all recognised. The priority is low: archive, compression
and more specific readers sniff first; only "unknown content" comes after.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.pickle.vm import iter_pickle_streams, sniff_pickle


@register_reader
class PickleReader(Reader):
    """Raw pickle streams (protocols 0-5), concatenated streams, joblib inline arrays."""

    name: ClassVar[str] = "pickle"
    priority: ClassVar[int] = 10

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Trial-parse the head: several valid opcodes, a PROTO header, or a complete stream."""
        complete = 0 <= blob.size <= len(head)
        return sniff_pickle(head, complete)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Yield the IR of every stream, trailing-data findings and embedded children."""
        with blob.open() as stream:
            yield from iter_pickle_streams(stream, ctx)
