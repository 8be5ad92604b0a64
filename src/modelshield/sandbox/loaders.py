"""The loads a real consumer performs, one per format (runs in the sandboxed child only).

Each :class:`Loader` has a trusted ``prepare`` step (imports the framework before the hook is
armed, so its own imports are not mistaken for the payload's) and the untrusted ``load``.
A framework that is not installed makes ``prepare`` raise :class:`LoaderUnavailable`; the load
is then skipped and reported as a coverage gap, never faked.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import pickletools
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

#: Packages whose modules a pickle of a model legitimately references.
PICKLE_FRAMEWORKS = frozenset(
    [
        "numpy",
        "torch",
        "sklearn",
        "scipy",
        "pandas",
        "joblib",
        "xgboost",
        "lightgbm",
        "catboost",
        "dill",
        "cloudpickle",
        "_pickle",
    ]
)
KERAS_FRAMEWORKS = frozenset(
    [
        "keras",
        "tensorflow",
        "tf_keras",
        "numpy",
        "h5py",
        "ml_dtypes",
        "absl",
        "google",
        "optree",
        "rich",
        "namex",
        "packaging",
        "tensorboard",
    ]
)
PRESCAN_BYTES = 64 * 1024 * 1024
PRESCAN_OPCODES = 2_000_000
SAMPLE_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, who are you?"},
    {"role": "assistant", "content": "I am an assistant."},
    {"role": "user", "content": "What is 2 + 2?"},
]


class LoaderUnavailable(ImportError):
    """The framework this loader needs is not installed in the sandbox's Python."""


@dataclass
class Prepared:
    """What ``prepare`` learned: extra expected packages, where the payload's own code lives."""

    frameworks: frozenset[str] = frozenset()
    code_roots: tuple[str, ...] = ()
    code_callers: tuple[str, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Loader:
    """A consumer's load: ``prepare`` (trusted, before arming) then ``load`` (watched)."""

    name: str
    frameworks: frozenset[str]
    prepare: Callable[[str], Prepared]
    load: Callable[[str, Prepared], object]


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise LoaderUnavailable(f"{module} is not installed in the sandbox's Python ({exc})") from None


def pickle_globals(stream: IO[bytes]) -> Iterator[str]:
    """Module names a pickle references (GLOBAL/INST/STACK_GLOBAL), by parsing only."""
    strings: list[str] = []
    try:
        for count, (opcode, arg, _pos) in enumerate(pickletools.genops(stream)):
            if count > PRESCAN_OPCODES:
                return
            if opcode.name in {"GLOBAL", "INST"} and isinstance(arg, str):
                yield arg.split(" ", 1)[0]
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                yield strings[-2]
            elif isinstance(arg, str):
                strings = [*strings[-1:], arg]
    except (ValueError, EOFError, UnicodeDecodeError, KeyError, IndexError):
        return


def _preimport(modules: Iterator[str], frameworks: frozenset[str]) -> None:
    for module in sorted(set(modules)):
        if module.split(".", 1)[0] in frameworks:
            try:
                importlib.import_module(module)
            except ImportError:
                continue  # the load reports it; a missing optional module is not an event
            except Exception:  # noqa: BLE001 - a framework module failing to import is the framework's problem
                continue


def _prescan_file(path: str) -> Iterator[str]:
    """Module names the file's pickles reference; nothing (never an error) for hostile bytes."""
    try:
        yield from _prescan_unchecked(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, RuntimeError, NotImplementedError):
        return


def _prescan_unchecked(path: str) -> Iterator[str]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.file_size <= PRESCAN_BYTES:
                    yield from pickle_globals(io.BytesIO(archive.read(info)))
        return
    with open(path, "rb") as stream:
        yield from pickle_globals(io.BytesIO(stream.read(PRESCAN_BYTES)))


def _prepare_pickle(path: str) -> Prepared:
    _preimport(_prescan_file(path), PICKLE_FRAMEWORKS)
    return Prepared()


def _load_pickle(path: str, prepared: Prepared) -> object:
    """Every pickle of the stream, in order, as consumers of pickle streams (and legacy torch) do."""
    loaded = []
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        loaded.append(pickle.load(stream))
        while stream.tell() < size:
            loaded.append(pickle.load(stream))
    return loaded


def _load_zip_pickles(path: str, prepared: Prepared) -> object:
    """Unpickle every pickle member of a zip, as tools that read model archives member by member do."""
    loaded: list[object] = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if (len(data) > 1 and data[0] == 0x80 and 2 <= data[1] <= 5) or info.filename.endswith((".pkl", ".pickle")):
                try:
                    loaded.append(pickle.loads(data))
                except (pickle.UnpicklingError, ValueError, EOFError, PermissionError, ImportError, AttributeError):
                    continue  # a broken or blocked member: the next one still gets its chance
    return loaded


def _prepare_dill(path: str) -> Prepared:
    _require("dill")
    return _prepare_pickle(path)


def _load_dill(path: str, prepared: Prepared) -> object:
    dill = importlib.import_module("dill")

    with open(path, "rb") as stream:
        return dill.load(stream)


def _prepare_cloudpickle(path: str) -> Prepared:
    _require("cloudpickle")
    return _prepare_pickle(path)


def _prepare_torch(path: str) -> Prepared:
    _require("torch")
    _preimport(_prescan_file(path), PICKLE_FRAMEWORKS)
    return Prepared()


def _load_torch(path: str, prepared: Prepared) -> object:
    torch = importlib.import_module("torch")

    return torch.load(path, map_location="cpu", weights_only=False)


def _prepare_joblib(path: str) -> Prepared:
    _require("joblib")
    for optional in ("numpy", "sklearn", "scipy", "joblib.numpy_pickle", "joblib.compressor"):
        _preimport(iter([optional]), PICKLE_FRAMEWORKS)
    _preimport(_prescan_file(path), PICKLE_FRAMEWORKS)
    _preimport(_prescan_joblib(path), PICKLE_FRAMEWORKS)
    return Prepared()


def _prescan_joblib(path: str) -> Iterator[str]:
    """Globals of a compressed joblib file (decompressed with the stdlib codecs; parse only)."""
    import bz2
    import gzip
    import lzma
    import zlib

    with open(path, "rb") as stream:
        raw = stream.read(PRESCAN_BYTES)
    for decompress in (zlib.decompress, gzip.decompress, lzma.decompress, bz2.decompress):
        try:
            data = decompress(raw)
        except (OSError, ValueError, EOFError, zlib.error, lzma.LZMAError):
            continue
        yield from pickle_globals(io.BytesIO(data[:PRESCAN_BYTES]))
        return


def _load_joblib(path: str, prepared: Prepared) -> object:
    joblib = importlib.import_module("joblib")

    return joblib.load(path)


def _prepare_numpy(path: str) -> Prepared:
    _require("numpy")
    return Prepared()


def _load_numpy(path: str, prepared: Prepared) -> object:
    numpy = importlib.import_module("numpy")

    loaded = numpy.load(path, allow_pickle=True)
    if isinstance(loaded, numpy.lib.npyio.NpzFile):
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    return loaded


def _prepare_keras(path: str) -> Prepared:
    _require("keras")
    return Prepared()


def _keras_loader(safe_mode: bool) -> Callable[[str, Prepared], object]:
    def load(path: str, prepared: Prepared) -> object:
        keras = importlib.import_module("keras")

        return keras.saving.load_model(path, safe_mode=safe_mode)

    return load


def _prepare_onnx(path: str) -> Prepared:
    _require("onnxruntime")
    return Prepared()


def _load_onnx(path: str, prepared: Prepared) -> object:
    onnxruntime = importlib.import_module("onnxruntime")

    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def chat_templates(path: str) -> list[str]:
    """The chat templates of a tokenizer_config.json (string or named list) or a .jinja file."""
    with open(path, encoding="utf-8", errors="replace") as stream:
        text = stream.read()
    if not path.endswith(".json"):
        return [text]
    value = json.loads(text).get("chat_template")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item.get("template", "")) for item in value if isinstance(item, dict)]
    return []


def _prepare_jinja(path: str) -> Prepared:
    jinja2 = _require("jinja2")
    _require("jinja2.ext")
    root = os.path.dirname(jinja2.__file__)
    return Prepared(code_callers=(root,), state={"templates": chat_templates(path)})


def _load_jinja(path: str, prepared: Prepared) -> object:
    jinja2 = importlib.import_module("jinja2")

    environment = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])  # noqa: S701 - as vulnerable servers
    rendered = []
    for template in prepared.state["templates"]:
        rendered.append(
            environment.from_string(template).render(
                messages=SAMPLE_CONVERSATION, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
            )
        )
    return rendered


def auto_map_modules(config_path: str) -> list[str]:
    """Module names a config.json's ``auto_map`` makes ``trust_remote_code`` import."""
    with open(config_path, encoding="utf-8") as stream:
        auto_map = json.load(stream).get("auto_map") or {}
    refs: list[str] = []
    for value in auto_map.values() if isinstance(auto_map, dict) else ():
        refs.extend(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    modules = []
    for ref in refs:
        ref = ref.split("--", 1)[-1]
        if "." in ref:
            modules.append(ref.rsplit(".", 1)[0])
    return list(dict.fromkeys(modules))


def _prepare_remote_code(path: str) -> Prepared:
    modules = auto_map_modules(path)
    repo = os.path.dirname(os.path.abspath(path))
    sources = ""
    for module in modules:
        candidate = os.path.join(repo, *module.split(".")) + ".py"
        if os.path.isfile(candidate) and os.path.getsize(candidate) <= PRESCAN_BYTES:
            with open(candidate, encoding="utf-8", errors="replace") as stream:
                sources += stream.read()
    for optional in ("torch", "transformers"):
        if optional in sources:  # import the heavy framework before arming only when the code uses it
            _preimport(iter([optional]), frozenset({optional}))
    tops = frozenset(m.split(".", 1)[0] for m in modules) | {"torch", "transformers", "numpy"}
    return Prepared(frameworks=tops, code_roots=(repo,), state={"modules": modules, "repo": repo})


def _load_remote_code(path: str, prepared: Prepared) -> object:
    sys.path.insert(0, prepared.state["repo"])
    return [importlib.import_module(module) for module in prepared.state["modules"]]


LOADERS: dict[str, Loader] = {
    loader.name: loader
    for loader in (
        Loader("pickle", PICKLE_FRAMEWORKS, _prepare_pickle, _load_pickle),
        Loader("zip-pickles", PICKLE_FRAMEWORKS, _prepare_pickle, _load_zip_pickles),
        Loader("dill", PICKLE_FRAMEWORKS, _prepare_dill, _load_dill),
        Loader("cloudpickle", PICKLE_FRAMEWORKS, _prepare_cloudpickle, _load_pickle),
        Loader("torch", PICKLE_FRAMEWORKS, _prepare_torch, _load_torch),
        Loader("joblib", PICKLE_FRAMEWORKS, _prepare_joblib, _load_joblib),
        Loader("numpy", PICKLE_FRAMEWORKS, _prepare_numpy, _load_numpy),
        Loader("keras-safe-mode", KERAS_FRAMEWORKS, _prepare_keras, _keras_loader(True)),
        Loader("keras-unsafe", KERAS_FRAMEWORKS, _prepare_keras, _keras_loader(False)),
        Loader("onnxruntime", frozenset({"onnxruntime", "onnx", "numpy"}), _prepare_onnx, _load_onnx),
        Loader("jinja-chat-template", frozenset({"jinja2", "markupsafe"}), _prepare_jinja, _load_jinja),
        Loader("remote-code", frozenset(), _prepare_remote_code, _load_remote_code),
    )
}
