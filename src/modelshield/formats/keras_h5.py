"""HDF5 files (legacy Keras ``.h5`` models, ``model.weights.h5`` inside ``.keras`` archives).

Read with h5py, which parses attributes and metadata without executing anything (imported
lazily). The root ``model_config`` and ``training_config`` attributes are judged as Keras
configs (legacy H5 loading ignores safe_mode: CVE-2025-9905). The HDF5 structure itself is
checked for what makes Keras read other files or exhaust memory on load: external links
(CVE-2026-9335), external raw storage (CVE-2026-1669), virtual datasets (CVE-2026-12480) and
absurd dataset shapes (CVE-2026-0897 / CVE-2026-12570). Links are never followed.

Without h5py, the config JSON is carved from the raw bytes and a coverage note says the HDF5
structure was not checked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from modelshield.errors import FormatError
from modelshield.formats._sniff import sniff_hdf5
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.keras import keras_config_findings, looks_like_keras_config
from modelshield.rules import rule
from modelshield.types import Category, Severity

#: A dataset declaring more than this many bytes (and far more than the file holds) is a bomb.
BOMB_BYTES = 16 * 1024**3
MAX_H5_OBJECTS = 200_000
RAW_CARVE_MAX = 64 * 1024 * 1024

EXTERNAL_REFERENCE = rule(
    "H5-EXTERNAL-REFERENCE",
    "HDF5 file reads data from other files",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "The HDF5 file holds an external link, external raw storage or a virtual dataset: loading "
    "its weights makes Keras/h5py read other local files (data disclosure, CWE-73).",
    "Do not load this file; re-save the weights as a self-contained file.",
    ("CWE-73",),
)
SHAPE_BOMB = rule(
    "H5-SHAPE-BOMB",
    "HDF5 dataset declares an absurd size",
    Severity.MEDIUM,
    Category.VULNERABILITY,
    "A dataset declares far more data than the file holds; loaders that allocate the declared "
    "shape exhaust memory (denial of service).",
    "Do not load this file with an affected Keras version.",
    ("CVE-2026-0897", "CVE-2026-12570", "CWE-789"),
)
NO_H5PY = rule(
    "H5-NOT-INSPECTED",
    "HDF5 structure not inspected",
    Severity.MEDIUM,
    Category.COVERAGE,
    "h5py is not installed, so only configs carved from the raw bytes were analysed; external "
    "links and storage were not checked.",
    "pip install h5py and scan again.",
)


@register_reader
class Hdf5Reader(Reader):
    """Legacy Keras H5 models and HDF5 weight files."""

    name = "hdf5"
    priority = 80

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """HDF5 signature at 0 or at a user-block boundary."""
        return sniff_hdf5(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Judge the root configs and the HDF5 links and datasets."""
        try:
            import h5py
        except ImportError:
            yield ctx.finding(NO_H5PY.id, "h5py is not installed; HDF5 structure not inspected")
            yield from _carved_configs(blob, ctx)
            return
        with blob.open() as stream:
            try:
                with h5py.File(stream, "r") as handle:
                    yield from _inspect(handle, h5py, blob, ctx)
            except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
                raise FormatError(f"HDF5 file could not be parsed: {exc}") from None


def _inspect(handle: Any, h5py: Any, blob: Blob, ctx: ScanContext) -> Iterator[object]:
    keras_version = _attr_text(handle.attrs.get("keras_version"))
    if keras_version or "model_config" in handle.attrs:
        ctx.format = "keras-h5"
    for key in ("model_config", "training_config"):
        text = _attr_text(handle.attrs.get(key))
        if text is None:
            continue
        try:
            config = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise FormatError(f"HDF5 attribute {key} is not valid JSON: {exc}") from None
        yield from keras_config_findings(config, ctx, legacy=True, where=key)
    yield from _links(handle, h5py, ctx)
    yield from _datasets(handle, h5py, blob, ctx)


def _attr_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if hasattr(value, "tobytes") and getattr(value, "dtype", None) is not None and value.dtype.kind in "SU":  # type: ignore[attr-defined]
        item = value.item() if value.size == 1 else value.tobytes()  # type: ignore[attr-defined]
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
    return None


def _links(handle: Any, h5py: Any, ctx: ScanContext) -> Iterator[object]:
    names: list[str] = []
    handle.visit_links(lambda name: names.append(name) if len(names) < MAX_H5_OBJECTS else True)
    for name in names:
        link = handle.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            yield ctx.finding(
                EXTERNAL_REFERENCE.id,
                f"external link {name!r} points into another file",
                evidence=f"{name} -> {link.filename}:{link.path}",
                references=("CVE-2026-9335",),
            )


def _datasets(handle: Any, h5py: Any, blob: Blob, ctx: ScanContext) -> Iterator[object]:
    found: list[tuple[str, Any]] = []

    def visit(name: str, obj: Any) -> bool | None:
        if isinstance(obj, h5py.Dataset):
            found.append((name, obj))
        return True if len(found) >= MAX_H5_OBJECTS else None

    handle.visititems(visit)
    for name, dataset in found:
        ctx.check_time()
        plist = dataset.id.get_create_plist()
        if plist.get_external_count() > 0:
            files = [plist.get_external(i)[0].decode("utf-8", "replace") for i in range(plist.get_external_count())]
            yield ctx.finding(
                EXTERNAL_REFERENCE.id,
                f"dataset {name!r} stores its data in external files",
                evidence=", ".join(files)[:500],
                references=("CVE-2026-1669",),
            )
        if plist.get_layout() == h5py.h5d.VIRTUAL:
            yield ctx.finding(
                EXTERNAL_REFERENCE.id,
                f"dataset {name!r} is a virtual dataset mapping other files",
                evidence=name,
                references=("CVE-2026-12480",),
            )
        shape = dataset.shape or ()
        declared = math.prod(shape) * dataset.dtype.itemsize
        if declared > BOMB_BYTES and declared > 1000 * max(blob.size, 1):
            yield ctx.finding(SHAPE_BOMB.id, f"dataset {name!r} declares {declared} bytes", evidence=f"shape={shape}")


_CONFIG_START = re.compile(rb'\{\s*"class_name"\s*:')


def _carved_configs(blob: Blob, ctx: ScanContext) -> Iterator[object]:
    """Without h5py: find JSON configs in the raw bytes (attribute strings are stored verbatim)."""
    with blob.open() as stream:
        data = stream.read(RAW_CARVE_MAX)
    decoder = json.JSONDecoder()
    for match in _CONFIG_START.finditer(data):
        end = data.find(b"\0", match.start())
        chunk = data[match.start() : end if end > 0 else len(data)].decode("utf-8", "replace")
        try:
            config, _ = decoder.raw_decode(chunk)
        except (ValueError, RecursionError):
            continue
        if looks_like_keras_config(config):
            ctx.format = "keras-h5"
            yield from keras_config_findings(config, ctx, legacy=True, where="carved config")
