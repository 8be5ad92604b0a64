"""Reader for raw pickle files of any protocol (also joblib's uncompressed format).

Detection is by content only (trial parse of the head, see :func:`sniff_pickle`), so ``data.pkl``
members of torch archives, tar members of the old torch format, ``.bin``/``.pt``/``.joblib`` files
and pickles without any extension are all recognised. The priority is low: archive, compression
and more specific readers sniff first; only "unknown content" comes after.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator
from typing import ClassVar

from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.pickle.values import PickleStream
from modelshield.formats.pickle.vm import iter_pickle_streams, sniff_pickle
from modelshield.limits import Limits

#: Small pickles are remembered by their bytes: a folder of checkpoints of one architecture
#: repeats the same ``data.pkl`` byte for byte, and the IR is a function of the bytes and the
#: limits alone (EXT codes aside: they resolve through this process's copyreg registry, so such
#: streams are never kept). Only results made of pickle streams are kept (no findings, no child
#: blobs, which name the file they came from); a hit yields the same IR objects, which nothing mutates.
#: A pickle's IR is kept only once its bytes are seen a second time: dropping an old IR graph from a
#: full memo cost more than parsing a small pickle, so a folder of all-different pickles only
#: records the hashes of what it saw.
MEMO_MAX_BYTES = 64 * 1024
MEMO_ENTRIES = 128
SEEN_ENTRIES = 1 << 14
_MEMO: OrderedDict[tuple[bytes, Limits, str], tuple[tuple[PickleStream, ...], str]] = OrderedDict()
_SEEN: set[int] = set()


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
        if 0 <= blob.size <= MEMO_MAX_BYTES:
            with blob.open() as stream:
                data = stream.read(MEMO_MAX_BYTES + 1)
            if len(data) == blob.size:
                yield from _remembered(data, ctx)
                return
        with blob.open() as stream:
            yield from iter_pickle_streams(stream, ctx)


def _pure(stream: PickleStream) -> bool:
    """The IR depends on the bytes and limits only: EXT codes resolve through this process's copyreg."""
    return all(ref.via != "EXT" for ref in stream.globals)


def _remembered(data: bytes, ctx: ScanContext) -> Iterator[object]:
    key = (data, ctx.limits, ctx.format)
    hit = _MEMO.get(key)
    if hit is not None:
        _MEMO.move_to_end(key)
        streams, ctx.format = hit
        yield from streams
        return
    digest = hash(key)
    again = digest in _SEEN
    if not again:
        if len(_SEEN) >= SEEN_ENTRIES:
            _SEEN.clear()
        _SEEN.add(digest)
    items: list[object] = []
    for item in iter_pickle_streams(io.BytesIO(data), ctx):  # a limit raised here is not remembered
        items.append(item)
        yield item
    if again and all(isinstance(item, PickleStream) and _pure(item) for item in items):
        _MEMO[key] = (tuple(item for item in items if isinstance(item, PickleStream)), ctx.format)
        if len(_MEMO) > MEMO_ENTRIES:
            _MEMO.popitem(last=False)
