"""Keras model configs (``config.json`` of ``.keras`` v3 archives, ``model_config`` of legacy H5,
``keras_metadata.pb`` of SavedModels): every serialized object reference is judged.

A Keras config names Python objects by ``module`` / ``class_name`` / ``registered_name`` and
functions by name; ``load_model`` imports and calls what it names. The checks:

* references outside the Keras packages (CVE-2025-1550, even with ``safe_mode=True``);
* Keras-internal functions that act on the machine: ``keras.utils.get_file`` downloads
  (CVE-2025-8747), ``keras.config.enable_unsafe_deserialization`` (CVE-2025-9906), nested loads;
* Lambda layers (marshalled bytecode; names and constants decoded without unmarshalling) —
  in legacy H5 files safe_mode is ignored (CVE-2025-9905);
* TorchModuleWrapper (pickled torch module, CVE-2025-49655 / CVE-2026-12484), lookup layers
  reading vocabulary files or URLs (CVE-2025-12058), layer names that climb folders
  (CVE-2026-12479), TFOpLambda calls into file or Python ops;
* any other class name that is not a real Keras object (a custom object needing custom code).

Nested models and sub-layers are walked recursively.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.formats._keras_names import KERAS_OBJECT_NAMES
from modelshield.formats._marshal import marshal_strings
from modelshield.formats.interface import ScanContext
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

MAX_OBJECTS = 1_000_000
_REMEDIATION = "Do not load this model; if you must, load it only in an isolated sandbox with safe_mode=True."

UNSAFE_MODULE = rule(
    "KERAS-UNSAFE-MODULE",
    "Keras config references a module outside Keras",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "A serialized object in the Keras config names a module outside the Keras packages. "
    "Keras imports the module and calls the named object while loading, even with "
    "safe_mode=True in affected versions.",
    _REMEDIATION,
    ("CWE-502",),
)
UNSAFE_FUNCTION = rule(
    "KERAS-UNSAFE-FUNCTION",
    "Keras config calls a dangerous Keras function",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The config names a Keras-internal function that acts on the machine while the model loads: "
    "downloading files (keras.utils.get_file), switching safe mode off "
    "(keras.config.enable_unsafe_deserialization), loading other models, or file/Python ops.",
    _REMEDIATION,
    ("CWE-502",),
)
LAMBDA = rule(
    "KERAS-LAMBDA",
    "Keras Lambda layer with Python bytecode",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A Lambda layer carries marshalled Python bytecode that runs when the model is loaded "
    "with safe_mode disabled, always for legacy H5 files in affected versions.",
    "Rebuild the model without Lambda layers (use a registered custom layer whose code you review).",
    ("CWE-94",),
)
TORCH_WRAPPER = rule(
    "KERAS-TORCH-MODULE",
    "Keras TorchModuleWrapper (pickled torch module)",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "TorchModuleWrapper restores a pickled torch module with torch.load(weights_only=False), "
    "which runs arbitrary code during loading.",
    _REMEDIATION,
    ("CVE-2025-49655", "CVE-2026-12484", "CWE-502"),
)
LOOKUP_FILE = rule(
    "KERAS-LOOKUP-FILE",
    "Keras layer reads a local file or URL named in the config",
    Severity.HIGH,
    Category.VULNERABILITY,
    "A lookup or vectorization layer takes its vocabulary from a path or URL written in the "
    "config, so loading reads arbitrary local files or makes network requests.",
    "Embed the vocabulary in the model instead of a path; do not load this model as is.",
    ("CVE-2025-12058", "CWE-73"),
)
NAME_TRAVERSAL = rule(
    "KERAS-NAME-TRAVERSAL",
    "Keras layer name with path separators",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A layer or model name contains '..' or path separators; Keras joins names into folder "
    "paths while saving and loading, so files can be written outside the working folder.",
    _REMEDIATION,
    ("CVE-2026-12479", "CWE-22"),
)
CUSTOM_OBJECT = rule(
    "KERAS-CUSTOM-OBJECT",
    "Keras config needs a custom object",
    Severity.MEDIUM,
    Category.UNSAFE_CONFIG,
    "The config names a class or function that is not part of Keras. Loading needs custom "
    "code that was not shipped in the model and is not reviewed here.",
    "Review the custom object's code before loading, or replace it with built-in layers.",
)

_FAMILY = ("keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
_DANGEROUS_MODULES = (
    "keras.utils",
    "keras.src.utils",
    "keras.config",
    "keras.src.backend.config",
    "keras.saving",
    "keras.src.saving",
    "keras.src.legacy.saving",
    "keras.src.export",
    "keras.export",
    "keras.src.backend.common.global_state",
)
_DANGEROUS_NAMES: dict[str, str] = {
    "get_file": "CVE-2025-8747",
    "enable_unsafe_deserialization": "CVE-2025-9906",
    "load_model": "CVE-2025-8747",
    "load_weights": "CVE-2025-8747",
    "set_global_attribute": "CVE-2025-9906",
    "TorchModuleWrapper": "CVE-2025-49655",
}
_CODE_NAMES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "system",
        "popen",
        "subprocess",
        "Popen",
        "run",
        "call",
        "check_output",
        "exec",
        "eval",
        "compile",
        "__import__",
        "open",
        "socket",
        "connect",
        "builtins",
        "getattr",
        "importlib",
        "import_module",
        "pty",
        "spawn",
        "execv",
        "execve",
        "remove",
        "unlink",
        "rmtree",
        "urlopen",
        "urllib",
        "requests",
        "get_file",
        "write_file",
        "read_file",
        "marshal",
        "pickle",
        "loads",
    }
)
_CVE_1550 = ("CVE-2025-1550", "GHSA-48g7-3x6r-xfhp")
_DANGEROUS_BUILTINS = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "getattr", "setattr", "input", "breakpoint", "globals", "vars"}
)
_LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization", "Hashing"})
_TF_UNSAFE = re.compile(r"(^|\.)(io\.|py_func|py_function|numpy_function|raw_ops\.(Read|Write|Save|Restore)|gfile)")


def looks_like_keras_config(obj: object) -> bool:
    """A serialized Keras object at the top: ``class_name`` plus ``config`` (and maybe ``module``)."""
    return isinstance(obj, dict) and isinstance(obj.get("class_name"), str) and "config" in obj


@dataclass
class _Walk:
    ctx: ScanContext
    legacy: bool
    where: str
    seen: int = 0


def keras_config_findings(obj: object, ctx: ScanContext, *, legacy: bool, where: str = "config") -> Iterator[Finding]:
    """Judge every serialized object in a Keras config (``legacy``: from an H5/SavedModel file)."""
    yield from _walk(obj, "$", _Walk(ctx, legacy, where))


def _walk(node: object, path: str, state: _Walk) -> Iterator[Finding]:
    stack: list[tuple[object, str]] = [(node, path)]
    while stack:
        item, where = stack.pop()
        state.seen += 1
        if state.seen > MAX_OBJECTS:
            from modelshield.errors import LimitExceeded

            raise LimitExceeded("max_nesting", MAX_OBJECTS, "Keras config has too many objects to analyse")
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                yield from _judge_object(item, where, state)
            stack.extend((v, f"{where}.{k}") for k, v in reversed(list(_children(item))))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))


def _children(item: dict[str, object]) -> Iterator[tuple[str, object]]:
    """Keys to descend into; a Lambda's function is judged with the Lambda, not again on its own."""
    lambda_config = item.get("config") if item.get("class_name") == "Lambda" else None
    for key, value in item.items():
        if key == "config" and isinstance(lambda_config, dict) and _carries_code(lambda_config.get("function")):
            yield key, {k: v for k, v in lambda_config.items() if k != "function"}
        else:
            yield key, value


def _carries_code(function: object) -> bool:
    """A Lambda function given as bytecode (list, string or ``__lambda__``), not as a reference."""
    return not isinstance(function, dict) or function.get("class_name") == "__lambda__"


def _in_family(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in _FAMILY)


def _judge_object(obj: dict[str, object], path: str, state: _Walk) -> Iterator[Finding]:
    ctx = state.ctx
    class_name = str(obj["class_name"])
    module = obj.get("module")
    registered = obj.get("registered_name")
    config = obj.get("config")
    target = class_name
    if class_name == "function" and isinstance(config, str):
        target = config
    label = f"{module}.{target}" if isinstance(module, str) else target
    evidence = f"{state.where} {path}: module={module!r} class_name={class_name!r} registered_name={registered!r}"
    if module == "builtins" and class_name == "function" and target not in _DANGEROUS_BUILTINS:
        yield ctx.finding(CUSTOM_OBJECT.id, f"config needs custom function {target!r}", evidence=evidence)
        return
    if isinstance(module, str) and not _in_family(module):
        yield ctx.finding(
            UNSAFE_MODULE.id, f"config makes Keras import and call {label}", evidence=evidence, references=_CVE_1550
        )
        return
    danger = _dangerous(module, target, registered)
    if danger:
        yield ctx.finding(
            UNSAFE_FUNCTION.id, f"config makes Keras call {label}", evidence=evidence, references=(danger,)
        )
        return
    if class_name == "TorchModuleWrapper":
        yield ctx.finding(TORCH_WRAPPER.id, "TorchModuleWrapper restores a pickled torch module", evidence=evidence)
        return
    if class_name in {"Lambda", "__lambda__"}:
        yield from _judge_lambda(obj, path, state)
        return
    if class_name == "TFOpLambda" and isinstance(config, dict):
        yield from _judge_tf_op(config, path, state)
    if isinstance(config, dict):
        yield from _judge_layer_config(class_name, config, path, state)
    custom = isinstance(registered, str) and registered not in {class_name, "function", target}
    if target not in KERAS_OBJECT_NAMES or custom:
        yield ctx.finding(CUSTOM_OBJECT.id, f"config needs custom object {registered or label}", evidence=evidence)


def _dangerous(module: object, target: str, registered: object) -> str | None:
    if isinstance(module, str) and any(module == m or module.startswith(m + ".") for m in _DANGEROUS_MODULES):
        return _DANGEROUS_NAMES.get(target, "CVE-2025-8747")
    for name in (target, registered):
        if isinstance(name, str):
            bare = name.rsplit(">", 1)[-1].rsplit(".", 1)[-1]
            if bare in _DANGEROUS_NAMES and bare != "TorchModuleWrapper":
                return _DANGEROUS_NAMES[bare]
    return None


def _judge_lambda(obj: dict[str, object], path: str, state: _Walk) -> Iterator[Finding]:
    config = obj.get("config")
    code: object = None
    if obj.get("class_name") == "__lambda__" and isinstance(config, dict):
        code = config.get("code")
    elif isinstance(config, dict):
        function = config.get("function")
        if isinstance(function, list) and function:
            code = function[0]
        elif isinstance(function, dict) and isinstance(function.get("config"), dict):
            code = function["config"].get("code")  # the nested __lambda__ is judged here, once
        elif isinstance(function, dict):
            name = f"{function.get('module')}.{function.get('config')}"
            where = f"{state.where} {path}"
            yield state.ctx.finding(
                LAMBDA.id, f"Lambda layer calls function {name}", evidence=where, references=_lambda_refs(state)
            )
            return
        elif isinstance(function, str):
            code = function
    yield _lambda_finding(code, path, state)


def _lambda_refs(state: _Walk) -> tuple[str, ...]:
    legacy = ("CVE-2025-9905", "GHSA-36rr-ww3j-vrjv") if state.legacy else ("CVE-2026-12481",)
    return ("CVE-2024-3660", *legacy)


def _lambda_finding(code: object, path: str, state: _Walk) -> Finding:
    ctx = state.ctx
    refs = _lambda_refs(state)
    if not isinstance(code, str):
        return ctx.finding(LAMBDA.id, "Lambda layer (function not decodable)", evidence=path, references=refs)
    try:
        raw = base64.b64decode(code.encode("ascii", "replace"), validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    summary = marshal_strings(raw) if raw else None
    if summary is None:
        return ctx.finding(LAMBDA.id, f"Lambda layer names function {code[:80]!r}", evidence=path, references=refs)
    strings = summary.all_strings()
    risky = sorted({s for s in strings if s in _CODE_NAMES or any(w in s for w in ("/bin/", "http://", "https://"))})
    shown = ", ".join(repr(s) for s in strings[:40])
    message = "Lambda layer with Python bytecode" + (f" using {', '.join(risky)}" if risky else "")
    return ctx.finding(
        LAMBDA.id,
        message,
        severity=Severity.CRITICAL if risky else None,
        evidence=f"{state.where} {path}: names and constants: {shown}"
        + ("" if summary.parsed else " (bytecode not parsed; strings carved)"),
        references=refs,
    )


def _judge_tf_op(config: dict[str, object], path: str, state: _Walk) -> Iterator[Finding]:
    function = config.get("function")
    if isinstance(function, str) and _TF_UNSAFE.search(function):
        yield state.ctx.finding(
            UNSAFE_FUNCTION.id, f"TFOpLambda calls tf.{function}", evidence=f"{state.where} {path}: {function}"
        )


def _judge_layer_config(class_name: str, config: dict[str, object], path: str, state: _Walk) -> Iterator[Finding]:
    name = config.get("name")
    if isinstance(name, str) and (".." in name or "/" in name or "\\" in name):
        yield state.ctx.finding(NAME_TRAVERSAL.id, f"layer name {name[:120]!r}", evidence=f"{state.where} {path}")
    if class_name in _LOOKUP_LAYERS:
        for key in ("vocabulary", "idf_weights", "vocabulary_file"):
            value = config.get(key)
            if isinstance(value, str) and value:
                yield state.ctx.finding(
                    LOOKUP_FILE.id,
                    f"{class_name} reads its {key} from {value[:200]!r}",
                    evidence=f"{state.where} {path}.{key}",
                )
