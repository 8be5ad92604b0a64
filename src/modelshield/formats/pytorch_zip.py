"""PyTorch's zip checkpoint format (``torch.save`` since 1.6): which members matter.

A checkpoint is a zip whose members share one top folder: ``data.pkl`` (the pickle that
``torch.load`` runs), ``data/<n>`` (raw tensor storages), and small metadata members
(``version``, ``byteorder``, ``.format_version``, ``.storage_alignment``,
``.data/serialization_id``). The zip reader (:mod:`modelshield.formats.zipfmt`) asks this
module how to treat each member, so that every member holding a pickle is scanned, whatever its
name, while gigabytes of tensor bytes are never copied.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from modelshield.formats._containers import looks_like_pickle
from modelshield.formats.torchscript import is_code_member, is_torchscript

FORMAT = "pytorch-zip"

_STORAGE = re.compile(r"(?:^|/)(?:data|tensors|constants)/\d+$")
_METADATA: dict[str, re.Pattern[bytes]] = {
    "version": re.compile(rb"\d{1,6}\n?"),
    "byteorder": re.compile(rb"(?:little|big)\n?"),
    ".format_version": re.compile(rb"\d{1,6}\n?"),
    ".storage_alignment": re.compile(rb"\d{1,8}\n?"),
    "serialization_id": re.compile(rb"\d{1,64}\n?"),
}
#: Metadata members are tiny; more bytes than this is not metadata.
METADATA_MAX = 128


class Action(enum.Enum):
    """What the zip reader does with a member."""

    SCAN = "scan"  # yield as a child blob: sniffed and analysed by content
    SKIP = "skip"  # raw tensor bytes or well-formed metadata: nothing to analyse
    CODE = "code"  # TorchScript source: checked in place


def classify(names: Sequence[str]) -> str:
    """Flavor of a zip from its member names: torchscript, pytorch-zip, npz or zip."""
    if not names:
        return "zip"
    if is_torchscript(names):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return FORMAT
    if all(n.endswith(".npy") or n.endswith("/") for n in names):
        return "npz"
    return "zip"


def is_storage_name(name: str) -> bool:
    """True for members that normally hold raw tensor bytes (``<root>/data/<n>``)."""
    return bool(_STORAGE.search(name))


def member_action(flavor: str, names: Sequence[str], head: bytes, last: bytes, size: int) -> Action:
    """How to treat a member of a zip of ``flavor``, judged by all its names and its bytes.

    A member is only skipped when every name it goes by says storage or metadata and its bytes
    agree; anything that looks like a pickle is always scanned.
    """
    if flavor not in (FORMAT, "torchscript"):
        return Action.SCAN
    if flavor == "torchscript" and all(is_code_member(n) for n in names):
        return Action.CODE
    if looks_like_pickle(head, last):
        return Action.SCAN
    if len(names) == 1:  # the common case, without generators
        name = names[0]
        if _STORAGE.search(name) or size <= METADATA_MAX and is_metadata(name, head[:size]):
            return Action.SKIP
        return Action.SCAN
    if all(is_storage_name(n) for n in names):
        return Action.SKIP
    if size <= METADATA_MAX and all(is_metadata(n, head[:size]) for n in names):
        return Action.SKIP
    return Action.SCAN


def is_metadata(name: str, data: bytes) -> bool:
    """True for a well-formed metadata member (``version``, ``byteorder`` ...) of a checkpoint."""
    base = name.rsplit("/", 1)[-1]
    pattern = _METADATA.get(base)
    return pattern is not None and pattern.fullmatch(data) is not None
