"""What a model needs: the frameworks (and versions) it was made with or requires.

Facts are read from metadata only (bounded reads, nothing executed): Keras ``metadata.json`` and
``config.json`` in ``.keras`` archives, Keras attributes of HDF5 files, ``config.json`` /
``tokenizer_config.json`` of Hugging Face repos, ONNX producer/IR/opsets, the TensorFlow version
of SavedModels, torch archive ``version`` records, the scikit-learn version stored in pickles,
GGUF ``general.*`` keys and chat templates, ``requirements.txt`` / ``pyproject.toml``.
Each file also gets *patterns*: the features specific CVEs need (a Keras Lambda layer, a GGUF
chat template, a torch pickle ...), which decide how relevant an advisory is.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from modelshield._record import field, record
from modelshield.advisories import _protobuf as pb
from modelshield.advisories.db import normalise
from modelshield.errors import FormatError

MAX_JSON = 16 * 1024 * 1024
MAX_SCAN_BYTES = 64 * 1024 * 1024
MAX_GGUF_KV = 100_000
MAX_GGUF_ARRAY = 10_000_000
MAX_ONNX_TENSORS = 1_000_000


@record
class Need:
    """A package a model needs: the version it was made with, a requirement, or a loader."""

    package: str
    version: str | None
    how: str  # "made-with" | "requires" | "loader"
    evidence: str
    spec: str = ""

    def __reduce__(self) -> tuple[type[Need], tuple[Any, ...]]:
        # plain-tuple pickling: scanning workers send one per file
        return Need, (self.package, self.version, self.how, self.evidence, self.spec)


@record(frozen=False)
class ModelFacts:
    """What one file says about the model: kind, needs, exploit patterns and details."""

    path: str
    kind: str
    needs: list[Need] = field(default_factory=list)
    patterns: set[str] = field(default_factory=set)
    details: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def __reduce__(self) -> tuple[type[ModelFacts], tuple[Any, ...]]:
        return ModelFacts, (self.path, self.kind, self.needs, self.patterns, self.details, self.error)

    def need(self, package: str, version: str | None, how: str, evidence: str, spec: str = "") -> None:
        """Record a need (package names normalised)."""
        self.needs.append(Need(normalise(package), version, how, evidence, spec))

    def to_dict(self) -> dict[str, Any]:
        """JSON form for reports."""
        return {
            "path": self.path,
            "kind": self.kind,
            "needs": [
                {"package": n.package, "version": n.version, "how": n.how, "evidence": n.evidence, "spec": n.spec}
                for n in self.needs
            ],
            "patterns": sorted(self.patterns),
            "details": self.details,
            **({"error": self.error} if self.error else {}),
        }


#: The loaders of each kind of file (a vulnerable loader installed for a format present = high).
LOADERS: dict[str, tuple[str, ...]] = {
    "keras": ("keras",),
    "keras-h5": ("keras", "h5py"),
    "torch-zip": ("torch",),
    "torchscript": ("torch",),
    "pickle": (),
    "gguf": ("llama-cpp-python", "gguf"),
    "onnx": ("onnx", "onnxruntime"),
    "savedmodel": ("tensorflow", "tensorflow-cpu"),
    "hf-config": ("transformers",),
    "tokenizer-config": ("transformers",),
    "npy": ("numpy",),
    "safetensors": ("safetensors",),
}


def extract(paths: Iterable[str], hints: dict[str, str] | None = None) -> list[ModelFacts]:
    """Facts of every file in ``paths`` that says something (``hints``: path -> reader format)."""
    out = []
    for path in paths:
        facts = extract_file(path, (hints or {}).get(path, ""))
        if facts is not None:
            out.append(facts)
    return out


#: What hostile or broken content can raise out of the metadata readers (zipfile refuses
#: encrypted-flag members with RuntimeError and unknown methods with NotImplementedError).
_BASE_ERRORS: tuple[type[BaseException], ...] = (
    FormatError,
    ValueError,
    KeyError,
    IndexError,
    struct.error,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    zlib.error,
)


def _content_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zipfile

    return (*_BASE_ERRORS, zipfile.BadZipFile, lzma.LZMAError)


def extract_file(path: str | os.PathLike[str], hint: str = "") -> ModelFacts | None:
    """Facts of one file, or None when it says nothing about frameworks. Never raises on bad content."""
    try:
        name = os.path.basename(os.fspath(path))
        with open(path, "rb") as stream:
            head = stream.read(16)
            extractor = _pick(name, head, hint)
            if extractor is None:
                return None
            kind, func = extractor
            facts = ModelFacts(os.fspath(path), kind)
            try:
                stream.seek(0)
                func(stream, name, facts)
            except _content_errors() as exc:
                facts.error = f"{type(exc).__name__}: {exc}"
            _add_loaders(facts)
            return facts
    except OSError:
        return None


def _add_loaders(facts: ModelFacts) -> None:
    for package in LOADERS.get(facts.kind, ()):
        facts.need(package, None, "loader", f"loads {facts.kind} files")


#: (stream, file name, facts): fills ``facts`` from the stream.
Extractor = Callable[[BinaryIO, str, ModelFacts], None]


def _pick(file_name: str, head: bytes, hint: str) -> tuple[str, Extractor] | None:
    name = file_name.lower()
    if head.startswith(b"PK\x03\x04"):
        return "zip", _zip
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras-h5", _hdf5
    if head.startswith(b"GGUF"):
        return "gguf", _gguf
    if head.startswith(b"\x93NUMPY"):
        return "npy", _npy
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle", _pickle
    if name == "saved_model.pb":
        return "savedmodel", _savedmodel
    if name.endswith(".onnx") or "onnx" in hint:
        return "onnx", _onnx
    if name == "config.json":
        return "hf-config", _hf_config
    if name == "tokenizer_config.json":
        return "tokenizer-config", _tokenizer_config
    if name.endswith(".safetensors"):
        return "safetensors", lambda s, p, f: None
    if name == "requirements.txt" or (name.startswith("requirements") and name.endswith(".txt")):
        return "requirements", _requirements_txt
    if name == "pyproject.toml":
        return "pyproject", _pyproject
    return None


def _read_json(data: bytes, where: str) -> Any:
    if len(data) > MAX_JSON:
        raise FormatError(f"{where} is too large to read ({len(data)} bytes)")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{where} is not valid JSON ({exc})") from None


# --------------------------------------------------------------------------------------------- archives


def _zip(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    import zipfile

    with zipfile.ZipFile(stream) as archive:
        infos = {i.filename: i for i in archive.infolist()[:100_000]}

        def member(name: str) -> bytes:
            info = infos[name]
            if info.file_size > MAX_JSON:
                raise FormatError(f"member {name} too large for metadata ({info.file_size} bytes)")
            return archive.read(info)

        archive_facts(list(infos), member, facts)


def archive_facts(names: list[str], member: Callable[[str], bytes], facts: ModelFacts) -> None:
    """Facts of a zip archive from its member names and a reader of (small) members."""
    if "metadata.json" in names and "config.json" in names:
        facts.kind = "keras"
        _keras_archive(member, facts)
    elif any(n.endswith("data.pkl") for n in names):
        facts.kind = "torchscript" if any(n.endswith("constants.pkl") for n in names) else "torch-zip"
        facts.patterns.add("torch-pickle")
        _torch_archive(names, member, facts)


def facts_from_members(path: str, names: list[str], members: dict[str, bytes]) -> ModelFacts | None:
    """Facts of a zip whose relevant members a reader already holds (no second read of the file).

    None when a member the facts need is not in ``members`` (the caller then reads the file).
    """
    facts = ModelFacts(path, "zip")

    def member(name: str) -> bytes:
        if name not in members:
            raise _MissingMember(name)
        return members[name]

    try:
        archive_facts(names, member, facts)
    except _MissingMember:
        return None
    except _content_errors() as exc:
        facts.error = f"{type(exc).__name__}: {exc}"
    _add_loaders(facts)
    return facts


class _MissingMember(Exception):
    """A member :func:`facts_from_members` was not given."""


def _keras_archive(member: Callable[[str], bytes], facts: ModelFacts) -> None:
    meta = _read_json(member("metadata.json"), "metadata.json")
    if isinstance(meta, dict):
        version = meta.get("keras_version")
        if isinstance(version, str):
            facts.need("keras", version, "made-with", f"metadata.json keras_version={version}")
        for key in ("keras_version", "date_saved"):
            if isinstance(meta.get(key), str):
                facts.details[key] = meta[key]
    config = _read_json(member("config.json"), "config.json")
    facts.patterns |= keras_config_patterns(config)
    backend = _find_key(config, "backend")
    if backend:
        facts.details["backend"] = backend


def _torch_archive(names: list[str], member: Callable[[str], bytes], facts: ModelFacts) -> None:
    for name in names:
        if name.endswith("/version") or name == "version" or name.endswith("/.data/version"):
            record = member(name)[:32].decode("ascii", "replace").strip()
            facts.details[f"archive {name}"] = record
    data_pkl = next(n for n in names if n.endswith("data.pkl"))
    _pickle_markers(member(data_pkl), facts)


# --------------------------------------------------------------------------------------------- Keras


@functools.cache  # the regular expressions here are compiled on first use: a scan needs one at most
def _keras_module() -> re.Pattern[str]:
    return re.compile(r"^(keras|tf_keras|tensorflow\.keras|keras_hub|keras_nlp|keras_cv)(\.|$)")


_LOOKUP_LAYERS = {"StringLookup", "IntegerLookup", "TextVectorization"}


def keras_config_patterns(config: object) -> set[str]:
    """Exploit patterns in a Keras model config (Lambda, foreign module refs, unsafe toggles ...)."""
    found: set[str] = set()
    for node in _walk_json(config, 0):
        cls = node.get("class_name")
        if cls == "Lambda":
            found.add("keras-lambda")
        if cls == "TorchModuleWrapper":
            found.add("keras-torch-wrapper")
        module = node.get("module")
        if isinstance(module, str) and module and not _keras_module().match(module):
            found.add("keras-module-ref")
        if cls in _LOOKUP_LAYERS:
            vocab = (node.get("config") or {}).get("vocabulary") if isinstance(node.get("config"), dict) else None
            if isinstance(vocab, str):
                found.add("keras-lookup-file")
        if any(v == "enable_unsafe_deserialization" for v in node.values() if isinstance(v, str)):
            found.add("keras-unsafe-deserialization")
    return found


def _walk_json(node: object, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 200:
        raise FormatError("JSON config nested too deeply")
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk_json(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_json(value, depth + 1)


def _find_key(config: object, key: str) -> str:
    for node in _walk_json(config, 0):
        value = node.get(key)
        if isinstance(value, str):
            return value
    return ""


@functools.cache
def _h5_version() -> re.Pattern[bytes]:
    return re.compile(rb"keras_version.{0,160}?(\d+\.\d+\.\d+[\w.+-]*)", re.DOTALL)


@functools.cache
def _h5_backend() -> re.Pattern[bytes]:
    return re.compile(rb"backend.{0,160}?(tensorflow|jax|torch|theano|numpy)", re.DOTALL)


def _hdf5(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    """Keras attributes of an HDF5 model, found in the raw bytes (attributes are small strings)."""
    data = stream.read(MAX_SCAN_BYTES)
    version = _h5_version().search(data)
    if version:
        text = version.group(1).decode("ascii", "replace")
        facts.need("keras", text, "made-with", f"HDF5 attribute keras_version={text}")
        facts.details["keras_version"] = text
    backend = _h5_backend().search(data)
    if backend:
        facts.details["backend"] = backend.group(1).decode()
    if re.search(rb'"class_name":\s*"Lambda"', data):
        facts.patterns |= {"keras-lambda", "keras-h5-lambda"}
    if b'"class_name": "TorchModuleWrapper"' in data:
        facts.patterns.add("keras-torch-wrapper")


# --------------------------------------------------------------------------------------------- pickles


@functools.cache
def _sklearn() -> re.Pattern[bytes]:
    return re.compile(rb"_sklearn_version(?:\x94|q.|r....)?(?:\x8c(.)|X(....)|U(.))", re.DOTALL)


PICKLE_MARKER_WINDOW = 2 * 1024 * 1024


def _pickle(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    # Globals and estimator state sit at the start and the end of a pickle; the middle of a big
    # one is tensor bytes. Reading a bounded head and tail keeps this O(1) in the file size.
    # Both are read straight into one buffer, head + b"\x00" + tail (no copies of 2 MiB reads).
    start = stream.tell()
    size = stream.seek(0, 2) - start
    head = min(size, PICKLE_MARKER_WINDOW)
    tail_at = size - PICKLE_MARKER_WINDOW if size > 2 * PICKLE_MARKER_WINDOW else head
    data = bytearray(head + 1 + size - tail_at)
    view = memoryview(data)
    stream.seek(start)
    got = _read_into(stream, view[:head])
    stream.seek(start + tail_at)
    got += 1 + _read_into(stream, view[head + 1 :])
    if got < len(data):  # the file shrank meanwhile: what was read
        del data[got:]
    _pickle_markers(data, facts)


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` (fewer bytes only at end of file); the count read."""
    done = 0
    while done < len(view):
        count = stream.readinto(view[done:])  # type: ignore[attr-defined]
        if not count:
            break
        done += count
    return done


def _pickle_markers(data: bytes | bytearray, facts: ModelFacts) -> None:
    """scikit-learn version (``_sklearn_version`` in BUILD state) and framework module names."""
    facts.patterns.add("pickle")
    match = _sklearn().search(data)
    if match:
        version = _pickled_string(data, match)
        if version:
            facts.need("scikit-learn", version, "made-with", f"pickled _sklearn_version={version}")
            facts.details["sklearn_version"] = version
    if b"sklearn" in data:
        facts.patterns.add("sklearn-pickle")
        facts.need("scikit-learn", None, "loader", "pickle references sklearn")
    if b"joblib" in data:
        facts.patterns.add("joblib-pickle")
        facts.need("joblib", None, "loader", "pickle references joblib")
    if b"numpy" in data:
        facts.need("numpy", None, "loader", "pickle references numpy")
    if b"torch" in data and facts.kind == "pickle":
        facts.patterns.add("torch-pickle")
        facts.need("torch", None, "loader", "pickle references torch")


def _pickled_string(data: bytes | bytearray, match: re.Match[bytes]) -> str:
    """Decode the SHORT_BINUNICODE / BINUNICODE / SHORT_BINSTRING value after the key."""
    if match.group(1) is not None:
        size, start = match.group(1)[0], match.end()
    elif match.group(2) is not None:
        size, start = int.from_bytes(match.group(2), "little"), match.end()
    else:
        size, start = match.group(3)[0], match.end()
    if size > 64:
        return ""
    text = data[start : start + size].decode("utf-8", "replace")
    return text if re.fullmatch(r"\d+(\.\d+)*[\w.+-]*", text) else ""


def _npy(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    header = stream.read(4096)
    if re.search(rb"'descr':\s*'\|O'", header):
        facts.patterns.add("npy-object")


# --------------------------------------------------------------------------------------------- GGUF


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def facts_from_gguf(path: str, version: int, metadata: dict[str, object]) -> ModelFacts:
    """Facts of a GGUF file from metadata its reader already parsed (no second parse)."""
    facts = ModelFacts(path, "gguf")
    facts.details["gguf_version"] = str(version)
    for key, value in metadata.items():
        _gguf_fact(key, value, facts)
    _add_loaders(facts)
    return facts


def _gguf_fact(key: str, value: object, facts: ModelFacts) -> None:
    if key.startswith("tokenizer.chat_template"):
        facts.patterns.add("gguf-chat-template")
        facts.details[key] = f"{len(str(value))} characters"
    elif key.startswith("general.") and isinstance(value, str | int | float):
        facts.details[key] = str(value)[:200]


def _gguf(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    stream.read(4)
    (version,) = struct.unpack("<I", _exact(stream, 4))
    wide = version >= 2
    _exact(stream, 8 if wide else 4)
    (kv_count,) = struct.unpack("<Q" if wide else "<I", _exact(stream, 8 if wide else 4))
    if kv_count > MAX_GGUF_KV:
        raise FormatError(f"GGUF declares {kv_count} metadata keys")
    facts.details["gguf_version"] = str(version)
    for _ in range(kv_count):
        key = _gguf_string(stream, wide)
        (vtype,) = struct.unpack("<I", _exact(stream, 4))
        _gguf_fact(key, _gguf_value(stream, vtype, wide), facts)


def _exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise FormatError(f"GGUF metadata truncated at byte {stream.tell()}")
    return data


def _gguf_string(stream: BinaryIO, wide: bool) -> str:
    (size,) = struct.unpack("<Q" if wide else "<I", _exact(stream, 8 if wide else 4))
    if size > MAX_JSON:
        raise FormatError(f"GGUF string of {size} bytes at byte {stream.tell()}")
    return _exact(stream, size).decode("utf-8", "replace")


def _gguf_value(stream: BinaryIO, vtype: int, wide: bool) -> object:
    if vtype in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[vtype]
        return struct.unpack(fmt, _exact(stream, struct.calcsize(fmt)))[0]
    if vtype == 8:
        return _gguf_string(stream, wide)
    if vtype == 9:
        (etype,) = struct.unpack("<I", _exact(stream, 4))
        (count,) = struct.unpack("<Q" if wide else "<I", _exact(stream, 8 if wide else 4))
        if count > MAX_GGUF_ARRAY:
            raise FormatError(f"GGUF array of {count} items")
        if etype in _GGUF_SCALARS:
            stream.seek(count * struct.calcsize(_GGUF_SCALARS[etype]), io.SEEK_CUR)
        else:
            for _ in range(count):
                _gguf_value(stream, etype, wide)
        return f"[{count} items]"
    raise FormatError(f"unknown GGUF value type {vtype} at byte {stream.tell()}")


# --------------------------------------------------------------------------------------------- protobuf formats


def _onnx(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    end = stream.seek(0, io.SEEK_END)
    opsets: list[str] = []
    names = {1: "ir_version", 2: "producer_name", 3: "producer_version", 4: "domain", 5: "model_version"}
    for fld, _wire, value in list(pb.walk(stream, 0, end)):
        if fld in names:
            facts.details[names[fld]] = pb.read_text(stream, value) if isinstance(value, tuple) else str(value)
        elif fld == 8 and isinstance(value, tuple):
            opsets.append(_onnx_opset(stream, value))
        elif fld == 7 and isinstance(value, tuple) and _onnx_external(stream, value):
            facts.patterns.add("onnx-external-data")
    if opsets:
        facts.details["opsets"] = ", ".join(opsets)
    producer, pversion = facts.details.get("producer_name", ""), facts.details.get("producer_version", "")
    package = {"pytorch": "torch", "tf2onnx": "tf2onnx", "skl2onnx": "skl2onnx", "onnx": "onnx"}.get(producer.lower())
    if package and pversion:
        facts.need(package, pversion, "made-with", f"ONNX producer {producer} {pversion}")


def _onnx_opset(stream: BinaryIO, span: tuple[int, int]) -> str:
    domain, version = "ai.onnx", 0
    for fld, _wire, value in list(pb.walk(stream, span[0], span[0] + span[1])):
        if fld == 1 and isinstance(value, tuple):
            domain = pb.read_text(stream, value) or "ai.onnx"
        elif fld == 2 and isinstance(value, int):
            version = value
    return f"{domain}={version}"


def _onnx_external(stream: BinaryIO, graph: tuple[int, int]) -> bool:
    """True when an initializer of the graph keeps its data outside the file (data_location=EXTERNAL)."""
    tensors = [v for f, _w, v in pb.walk(stream, graph[0], graph[0] + graph[1]) if f == 5 and isinstance(v, tuple)]
    if len(tensors) > MAX_ONNX_TENSORS:
        raise FormatError(f"ONNX graph has {len(tensors)} initializers")
    for span in tensors:
        for fld, _wire, value in pb.walk(stream, span[0], span[0] + span[1]):
            if (fld == 14 and value == 1) or fld == 13:
                return True
    return False


def _savedmodel(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    end = stream.seek(0, io.SEEK_END)
    graphs = [v for f, _w, v in pb.walk(stream, 0, end) if f == 2 and isinstance(v, tuple)]
    for graph in graphs:
        infos = [v for f, _w, v in pb.walk(stream, graph[0], graph[0] + graph[1]) if f == 1 and isinstance(v, tuple)]
        for info in infos:
            for fld, _wire, value in list(pb.walk(stream, info[0], info[0] + info[1])):
                if fld == 5 and isinstance(value, tuple):
                    version = pb.read_text(stream, value)
                    facts.details["tensorflow_version"] = version
                    facts.need("tensorflow", version, "made-with", f"saved_model.pb tensorflow_version={version}")
                    return


# --------------------------------------------------------------------------------------------- repo files


def _hf_config(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    config = _read_json(stream.read(MAX_JSON + 1), name)
    if not isinstance(config, dict):
        return
    if "keras_version" in config or "class_name" in config:
        facts.kind = "keras-config"
        facts.patterns |= keras_config_patterns(config)
        if isinstance(config.get("keras_version"), str):
            facts.need(
                "keras", config["keras_version"], "made-with", f"config.json keras_version={config['keras_version']}"
            )
        return
    version = config.get("transformers_version")
    if isinstance(version, str):
        facts.need("transformers", version, "made-with", f"config.json transformers_version={version}")
    for key in ("model_type", "architectures", "torch_dtype", "dtype"):
        if key in config:
            facts.details[key] = json.dumps(config[key])[:200]
    if config.get("auto_map"):
        facts.patterns.add("remote-code")
        facts.details["auto_map"] = json.dumps(config["auto_map"])[:500]


def _tokenizer_config(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    config = _read_json(stream.read(MAX_JSON + 1), name)
    if not isinstance(config, dict):
        return
    template = config.get("chat_template")
    if isinstance(template, str) and template:
        facts.patterns.add("chat-template")
    elif isinstance(template, list | dict) and template:
        facts.patterns |= {"chat-template", "chat-template-dict"}
    if config.get("auto_map"):
        facts.patterns.add("remote-code")
    version = config.get("transformers_version")
    if isinstance(version, str):
        facts.need("transformers", version, "made-with", f"tokenizer_config.json transformers_version={version}")


def _requirements_txt(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    text = stream.read(MAX_JSON).decode("utf-8", "replace")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            _requirement(line, f"{name}:{number}", facts)


def _pyproject(stream: BinaryIO, name: str, facts: ModelFacts) -> None:
    import tomllib

    try:
        data = tomllib.loads(stream.read(MAX_JSON).decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"pyproject.toml: {exc}") from None
    project = data.get("project")
    deps = project.get("dependencies", []) if isinstance(project, dict) else []
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, str):
            _requirement(dep, "pyproject.toml [project.dependencies]", facts)


def _requirement(text: str, where: str, facts: ModelFacts) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement:
        return
    pinned = next((s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version), None)
    facts.need(req.name, pinned, "requires", f"{where}: {text}", str(req.specifier))
