"""Structure check in every scan: safetensors and GGUF tensor tables against their architecture.

The safetensors and GGUF readers hand over their parsed headers; this analyzer judges them with
:func:`modelshield.tamper.structure.check_structure`. For a file on disk, ``config.json`` next to
it is the declared architecture; a shard of a sharded checkpoint is judged once for the whole set
(when the first shard named by ``model.safetensors.index.json`` is scanned), never alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

from modelshield.analyzers.interface import Analyzer, register_analyzer
from modelshield.errors import FormatError
from modelshield.formats.gguf import GGUFHeader
from modelshield.formats.interface import ScanContext
from modelshield.formats.safetensors import SafetensorsHeader
from modelshield.tamper.structure import check_structure
from modelshield.types import Finding

_SHARD = re.compile(r"-\d{3,6}-of-\d{3,6}\.(?:safetensors|gguf)$")
_INDEX = "model.safetensors.index.json"
_MAX_CONFIG = 16 << 20


@register_analyzer
class TamperStructureAnalyzer(Analyzer):
    """Reference-free tampering check of a weight file's tensor table."""

    name = "tamper-structure"
    handles = (SafetensorsHeader, GGUFHeader)

    def analyze(self, ir: object, ctx: ScanContext) -> Iterator[Finding]:
        """Yield TAMPER-* findings for structural problems of the tensor table."""
        if isinstance(ir, GGUFHeader):
            yield from self._gguf(ir, ctx)
        elif isinstance(ir, SafetensorsHeader):
            yield from self._safetensors(ir, ctx)

    def _gguf(self, header: GGUFHeader, ctx: ScanContext) -> Iterator[Finding]:
        split = header.metadata.get("split.count")
        if (isinstance(split, int) and split > 1) or _SHARD.search(ctx.blob.name):
            return
        shapes = {t.name: tuple(reversed(t.dims)) for t in header.tensors}
        for rule_id, message, evidence in check_structure(shapes, gguf=header.metadata):
            yield ctx.finding(rule_id, message, evidence=evidence, detail=evidence)

    def _safetensors(self, header: SafetensorsHeader, ctx: ScanContext) -> Iterator[Finding]:
        on_disk = not ctx.blob.members
        folder = os.path.dirname(os.path.abspath(ctx.blob.path)) if on_disk else ""
        shapes = {t.name: t.shape for t in header.tensors.values()}
        sharded = bool(_SHARD.search(ctx.blob.name))
        if on_disk and os.path.isfile(os.path.join(folder, _INDEX)):
            merged = _folder_shapes(folder, ctx.blob.name)
            if merged is None:
                return
            shapes, sharded = merged, False
        if sharded:
            return
        config = _config(folder) if on_disk else {}
        for rule_id, message, evidence in check_structure(shapes, config=config):
            yield ctx.finding(rule_id, message, evidence=evidence, detail=evidence)


def _folder_shapes(folder: str, name: str) -> dict[str, tuple[int, ...]] | None:
    """Shapes of the whole sharded checkpoint, or None when ``name`` is not its first shard."""
    from modelshield.tamper.tensors import open_table

    try:
        with open(os.path.join(folder, _INDEX), "rb") as stream:
            index = json.loads(stream.read(_MAX_CONFIG))
        shards = sorted({s for s in index.get("weight_map", {}).values() if isinstance(s, str)})
        if not shards or shards[0] != name:
            return None
        table = open_table(folder)
    except (OSError, ValueError, AttributeError, FormatError):
        return None  # the index reader reports an unreadable or inconsistent index
    return {t.name: t.shape for t in table.tensors.values()}


def _config(folder: str) -> dict[str, object]:
    path = os.path.join(folder, "config.json")
    try:
        with open(path, "rb") as stream:
            value = json.loads(stream.read(_MAX_CONFIG))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
