"""Keras v3 archives: the weight groups in ``model.weights.h5`` against the layers ``config.json`` declares.

Keras 3 stores each layer's variables under ``layers/<name>/vars`` (nested models under
``layers/<model>/layers/...``), where ``<name>`` is the layer's class in snake case, numbered
``_1``, ``_2`` ... when a class repeats. A weights group whose class no declared layer has, or more
groups of a class than declared layers of it, is weight data the architecture does not account
for: a tampering finding. Layers without variables may have no group, so only extras are judged.
Nothing is loaded: the config is JSON, the weights file is read for its group names only.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from modelshield.formats.interface import Blob, ScanContext
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

EXTRA_LAYER_WEIGHTS = rule(
    "TAMPER-EXTRA-LAYER-WEIGHTS",
    "Keras weights for a layer the architecture does not declare",
    Severity.MEDIUM,
    Category.TAMPERING,
    "model.weights.h5 holds a weights group that matches no layer in config.json (or more groups "
    "of a layer class than the config declares). Keras writes exactly one group per layer; extra "
    "groups come from editing the archive.",
    "Compare the archive with the original export; re-save the model from trusted code.",
)
UNCHECKED = rule(
    "TAMPER-KERAS-UNCHECKED",
    "Keras archive structure could not be checked",
    Severity.LOW,
    Category.COVERAGE,
    "config.json or model.weights.h5 could not be read for the layer/weights comparison.",
)

MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
_SUFFIX = re.compile(r"_\d+$")


def snake_case(class_name: str) -> str:
    """Keras' automatic layer naming: ``BatchNormalization`` -> ``batch_normalization``, ``ReLU`` -> ``re_lu``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _declared(layers: list[Any]) -> tuple[Counter[str], dict[str, list[Any]]]:
    """Per snake-case class: how many layers declare it; nested models' layer lists by class."""
    counts: Counter[str] = Counter()
    nested: dict[str, list[Any]] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        base = snake_case(str(layer.get("class_name", "")).rsplit(">", 1)[-1])
        counts[base] += 1
        inner = layer.get("config", {}).get("layers") if isinstance(layer.get("config"), dict) else None
        if isinstance(inner, list):
            nested.setdefault(base, []).extend(inner)
    return counts, nested


def _compare(group: Any, layers: list[Any], path: str, depth: int) -> Iterator[tuple[str, str]]:
    """(group path, reason) for weight groups the declared layers do not account for."""
    if depth > MAX_DEPTH or "layers" not in group:
        return
    counts, nested = _declared(layers)
    seen: Counter[str] = Counter()
    for name in sorted(group["layers"].keys()):
        stripped = _SUFFIX.sub("", name)  # "dense_1" is the second Dense
        base = stripped if stripped in counts else name
        seen[base] += 1
        where = f"{path}layers/{name}"
        if base not in counts:
            yield where, "no layer of this class in config.json"
        elif seen[base] > counts[base]:
            yield where, f"{seen[base]} weight groups of class {base!r}, config.json declares {counts[base]}"
        elif base in nested:
            yield from _compare(group["layers"][name], nested[base], where + "/", depth + 1)


def check_keras_archive(config: Blob, weights: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Findings comparing a ``.keras`` archive's weight groups with its declared layers."""
    try:
        with config.open() as stream:
            spec = json.loads(stream.read(MAX_CONFIG_BYTES))
        layers = spec.get("config", {}).get("layers") if isinstance(spec, dict) else None
        if not isinstance(layers, list):
            return
        import h5py  # lazily: only for Keras archives

        with weights.open() as stream, h5py.File(stream, "r") as h5:
            problems = list(_compare(h5, layers, "", 0))
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        yield ctx.finding(UNCHECKED.id, f"Keras layer/weights comparison not done: {type(exc).__name__}: {exc}")
        return
    for where, reason in problems[:50]:
        yield ctx.finding(EXTRA_LAYER_WEIGHTS.id, f"weights group {where}: {reason}", detail="model.weights.h5")
