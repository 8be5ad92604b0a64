"""Hugging Face repository files: JSON configs, YAML model descriptors and Git LFS pointers.

* ``config.json`` / ``tokenizer_config.json`` ``auto_map`` and ``custom_pipelines`` make
  ``trust_remote_code=True`` load shipped (or another repo's) Python code → findings; the
  shipped ``.py`` files themselves are reviewed by :mod:`modelshield.formats.python_source`.
* chat templates go to the chat-template analyzer (never rendered).
* sentence-transformers ``modules.json`` module types outside the library are code references.
* Keras ``config.json`` (inside ``.keras`` archives) goes to :mod:`modelshield.formats.keras`.
* pickle ``.bin`` weights next to safetensors weights → a low note (prefer safetensors).
* MLflow ``MLmodel`` and NeMo/Hydra YAML: loader modules, cloudpickle flavors, ``_target_``.
* Git LFS pointer files are reported as not fetched (coverage), never as clean.

Every JSON/YAML file also gets the generic checks (EICAR, YARA). Nothing is executed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._sniff import sniff_json, sniff_lfs_pointer, sniff_yaml
from modelshield.formats.executables import generic_findings
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader
from modelshield.formats.keras import keras_config_findings, looks_like_keras_config
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

_SECURITY_KEYS = frozenset(
    {"auto_map", "chat_template", "class_name", "module", "registered_name", "config", "custom_pipelines", "type"}
)

LFS_POINTER = rule(
    "LFS-POINTER-NOT-FETCHED",
    "Git LFS pointer instead of the file",
    Severity.MEDIUM,
    Category.COVERAGE,
    "The file is a Git LFS pointer: the real content was never downloaded, so it was not scanned. "
    "Whatever is fetched later has not been vouched for.",
    "Run `git lfs pull` (or download the file) and scan again.",
)
REMOTE_CODE = rule(
    "HF-REMOTE-CODE",
    "Model requires trust_remote_code",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "auto_map / custom_pipelines make transformers import Python code shipped with the model "
    "when trust_remote_code=True. That code runs with the user's rights.",
    "Review the referenced .py files (see their findings) or use a model that needs no remote code.",
    ("CWE-94",),
)
REMOTE_CODE_EXTERNAL = rule(
    "HF-REMOTE-CODE-EXTERNAL",
    "Model loads code from another repository",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "auto_map points at code in a different Hugging Face repository ('org/repo--module.Class'); "
    "that code is not shipped here, was not reviewed, and can change at any time.",
    "Do not load with trust_remote_code; vendor and review the code first.",
    ("CWE-494",),
)
UNSAFE_MODULE_TYPE = rule(
    "HF-UNSAFE-MODULE-TYPE",
    "Config names an arbitrary Python callable",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A config names a Python class or function outside the expected library (sentence-transformers "
    "modules.json type, Hydra/NeMo _target_, MLflow loader_module); the loader imports and calls it.",
    "Check that the named object is expected; do not load the model otherwise.",
    ("CWE-470",),
)
PICKLE_WEIGHTS = rule(
    "HF-PICKLE-WEIGHTS",
    "Pickle weights shipped beside safetensors",
    Severity.LOW,
    Category.UNSAFE_CONFIG,
    "The repository ships pickle-based weights (.bin/.pt/.ckpt) as well as safetensors. Loaders "
    "may pick the pickle, which can run code; safetensors cannot.",
    "Load with use_safetensors=True, or delete the pickle weights.",
)
DUPLICATE_KEY = rule(
    "JSON-DUPLICATE-KEY",
    "JSON object with a duplicate key",
    Severity.LOW,
    Category.TAMPERING,
    "The same key appears twice in one JSON object; parsers disagree on which value wins, which "
    "is used to show a scanner one value and the loader another.",
    "Remove the duplicate; obtain the file from a trusted source.",
)
UNSAFE_FLAVOR = rule(
    "MLFLOW-PICKLE-FLAVOR",
    "MLflow model stored as a pickle",
    Severity.HIGH,
    Category.UNSAFE_CONFIG,
    "The MLmodel flavor restores the model with (cloud)pickle or a custom python_function "
    "loader module, which runs code at load time.",
    "Scan the referenced model files (pickle findings) and load only in a sandbox.",
    ("CWE-502",),
)

_TEMPLATE_MISSING = "the chat-template analyzer is not available; template not analysed"


@register_reader
class LfsPointerReader(Reader):
    """A Git LFS pointer file (the content was never fetched)."""

    name = "git-lfs-pointer"
    priority = 92

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The LFS spec line first."""
        return sniff_lfs_pointer(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """One coverage finding with the pointer's oid and size."""
        text = blob.head(1024).decode("utf-8", "replace")
        fields = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        evidence = f"oid {fields.get('oid', '?')}, size {fields.get('size', '?')}"
        yield ctx.finding(LFS_POINTER.id, "Git LFS pointer: the real file was not fetched", evidence=evidence)


def _pairs(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out and len(duplicates) < 100:
            duplicates.append(key)
        out[key] = value
    return out


def load_json(data: bytes) -> tuple[Any, list[str]]:
    """Parse JSON bytes; return the value and the duplicate keys seen. FormatError if invalid."""
    duplicates: list[str] = []
    try:
        text = data.decode("utf-8-sig")
        return json.loads(text, object_pairs_hook=lambda p: _pairs(p, duplicates)), duplicates
    except UnicodeDecodeError as exc:
        raise FormatError(f"JSON is not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON at byte {exc.pos}: {exc.msg}") from None
    except ValueError as exc:  # e.g. integers beyond the digit limit
        raise FormatError(f"invalid JSON: {exc}") from None


@register_reader
class JsonConfigReader(Reader):
    """JSON files of model repositories (configs, tokenizers, Keras configs, plain data)."""

    name = "json"
    priority = 20

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """Text starting with '{' or '['."""
        return sniff_json(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse, dispatch on content, then the generic checks over the bytes."""
        if blob.size > ctx.limits.max_header_bytes:
            raise LimitExceeded("max_header_bytes", ctx.limits.max_header_bytes, "JSON file too large to parse")
        with blob.open() as stream:
            data = stream.read(ctx.limits.max_header_bytes + 1)
        value, duplicates = load_json(data)
        for key in dict.fromkeys(duplicates):
            severity = Severity.MEDIUM if key in _SECURITY_KEYS else None
            yield ctx.finding(DUPLICATE_KEY.id, f"duplicate key {key!r}", severity=severity, evidence=key)
        yield from _dispatch(value, blob, ctx)
        yield from generic_findings(data, ctx)


def _dispatch(value: Any, blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    if looks_like_keras_config(value):
        ctx.format = "keras-config"
        yield from keras_config_findings(value, ctx, legacy=False, where=blob.name)
        return
    if isinstance(value, list):
        yield from _modules_json(value, ctx)
        return
    if not isinstance(value, dict):
        return
    if "keras_version" in value:
        ctx.format = "keras-metadata"
    yield from _remote_code(value, blob, ctx)
    yield from _chat_templates(value, ctx)
    if "model_type" in value or "architectures" in value:
        ctx.format = "hf-config"
        yield from _pickle_beside_safetensors(blob, ctx)


def _module_files(reference: str) -> tuple[str | None, str]:
    """Split an auto_map reference into (other repo or None, module file name)."""
    repo = None
    if "--" in reference:
        repo, reference = reference.split("--", 1)
    module = reference.rsplit(".", 1)[0] if "." in reference else reference
    return repo, module.replace(".", "/") + ".py"


def _references(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _remote_code(config: dict[str, Any], blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    entries: list[tuple[str, str]] = []
    auto_map = config.get("auto_map")
    if isinstance(auto_map, dict | list):
        entries += [("auto_map", ref) for ref in _references(auto_map)]
    pipelines = config.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task in pipelines.values():
            if isinstance(task, dict) and isinstance(task.get("impl"), str):
                entries.append(("custom_pipelines", task["impl"]))
    folder = os.path.dirname(blob.path) if not blob.members else None
    local: list[str] = []
    for key, reference in entries:
        repo, module_file = _module_files(reference)
        if repo:
            yield ctx.finding(
                REMOTE_CODE_EXTERNAL.id, f"{key} loads {reference!r} from repository {repo!r}", evidence=reference
            )
            continue
        present = folder is not None and os.path.isfile(os.path.join(folder, module_file))
        local.append(f"{reference} -> {module_file}{'' if present or folder is None else ' (missing)'}")
    if local:
        yield ctx.finding(
            REMOTE_CODE.id,
            f"{'/'.join(sorted({k for k, _ in entries}))} requires trust_remote_code for {len(local)} object(s)",
            evidence="; ".join(dict.fromkeys(local)),
        )


def _chat_templates(config: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    template = config.get("chat_template")
    named: list[tuple[str, str]] = []
    if isinstance(template, str):
        named.append(("chat_template", template))
    elif isinstance(template, list):
        for item in template:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                named.append((f"chat_template[{item.get('name', '?')}]", item["template"]))
    if not named:
        return
    try:
        from modelshield.analyzers.chat_template import analyze_template
    except ImportError:
        yield ctx.finding("PARSE-ERROR", _TEMPLATE_MISSING, severity=Severity.MEDIUM)
        return
    for where, source in named:
        yield from analyze_template(source, ctx, where)


def _modules_json(value: list[Any], ctx: ScanContext) -> Iterator[Finding]:
    """sentence-transformers modules.json: every module type is imported by name."""
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        ctx.format = "sentence-transformers-modules"
        kind = item["type"]
        if not kind.startswith("sentence_transformers."):
            yield ctx.finding(
                UNSAFE_MODULE_TYPE.id,
                f"module {index} is loaded from {kind!r}, outside sentence-transformers",
                evidence=json.dumps(item)[:500],
            )


_PICKLE_WEIGHTS = re.compile(r"(pytorch_model|tf_model|model|flax_model)[\w.-]*\.(bin|pt|pth|ckpt|pkl)$")


def _pickle_beside_safetensors(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    if blob.members:
        return
    try:
        names = os.listdir(os.path.dirname(blob.path) or ".")
    except OSError:
        return
    pickles = sorted(n for n in names if _PICKLE_WEIGHTS.match(n))
    if pickles and any(n.endswith(".safetensors") for n in names):
        yield ctx.finding(
            PICKLE_WEIGHTS.id, "pickle weights are shipped beside safetensors", evidence=", ".join(pickles[:20])
        )


# ---------------------------------------------------------------- YAML: MLflow MLmodel, NeMo/Hydra

_TARGET_OK = re.compile(r"^(nemo|nemo_text_processing|torch|omegaconf|hydra|lightning|pytorch_lightning)\.")


@register_reader
class YamlConfigReader(Reader):
    """MLflow ``MLmodel`` files and YAML model configs (NeMo/Hydra ``_target_``)."""

    name = "yaml"
    priority = 21

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A YAML-named text file (the content is validated by parsing it)."""
        return sniff_yaml(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Parse with yaml.safe_load (no object construction), then judge loaders and targets."""
        import yaml

        if blob.size > ctx.limits.max_header_bytes:
            raise LimitExceeded("max_header_bytes", ctx.limits.max_header_bytes, "YAML file too large to parse")
        with blob.open() as stream:
            data = stream.read(ctx.limits.max_header_bytes + 1)
        try:
            value = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise FormatError(f"invalid YAML: {str(exc)[:300]}") from None
        if isinstance(value, dict) and isinstance(value.get("flavors"), dict):
            ctx.format = "mlflow-mlmodel"
            yield from _mlflow(value["flavors"], ctx)
        yield from _hydra_targets(value, ctx)
        yield from generic_findings(data, ctx)


def _mlflow(flavors: dict[str, Any], ctx: ScanContext) -> Iterator[Finding]:
    for name, flavor in flavors.items():
        if not isinstance(flavor, dict):
            continue
        serialization = str(flavor.get("serialization_format", ""))
        if "pickle" in serialization or name in {"sklearn", "python_function"} and flavor.get("python_model"):
            yield ctx.finding(
                UNSAFE_FLAVOR.id,
                f"flavor {name!r} restores the model with {serialization or 'cloudpickle'}",
                evidence=json.dumps(flavor, default=str)[:500],
            )
        loader = flavor.get("loader_module")
        if isinstance(loader, str) and not loader.startswith("mlflow."):
            yield ctx.finding(
                UNSAFE_MODULE_TYPE.id,
                f"python_function loader_module {loader!r} is not an MLflow flavor",
                evidence=loader,
            )


def _hydra_targets(value: object, ctx: ScanContext) -> Iterator[Finding]:
    stack: list[object] = [value]
    seen = 0
    while stack and seen < 1_000_000:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            target = item.get("_target_")
            if isinstance(target, str) and not _TARGET_OK.match(target):
                yield ctx.finding(
                    UNSAFE_MODULE_TYPE.id, f"Hydra _target_ instantiates {target!r}", evidence=target[:300]
                )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
