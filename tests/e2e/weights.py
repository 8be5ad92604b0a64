"""Weight and graph files written by the real libraries (safetensors, gguf, onnx, numpy, torch, h5py), then tampered.

Tamper fixtures reuse tests/tamper/_models.py (a Llama-shaped state dict written byte by byte).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tests.e2e.model import Scan, Where
from tests.tamper._models import CONFIG, FFN, HIDDEN, llama, write_safetensors

# ----------------------------------------------------------------------------- safetensors


def safetensors_bytes(metadata: dict[str, str] | None = None) -> bytes:
    """A small safetensors file written by the safetensors library."""
    from safetensors.numpy import save

    return bytes(save({"w": np.arange(4, dtype=np.float32)}, metadata=metadata))


def _header(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<Q", data)
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _with_header(header: dict[str, Any], body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def safetensors_overlap(w: Where) -> Scan:
    """Two tensors whose data_offsets overlap (one reader sees other bytes than another)."""
    from safetensors.numpy import save

    header, body = _header(save({"a": np.ones(4, np.float32), "b": np.zeros(4, np.float32)}))
    header["b"]["data_offsets"] = [8, 24]  # a is [0, 16]: b's first half is a's second half
    path = w.path("model.safetensors")
    path.write_bytes(_with_header(header, body[:24]))
    return Scan(path)


def safetensors_length(length: int) -> Callable[[Where], Scan]:
    """A builder writing a safetensors file whose 8-byte header length is ``length`` (beyond the file)."""

    def build(w: Where) -> Scan:
        data = safetensors_bytes()
        path = w.path("model.safetensors")
        path.write_bytes(struct.pack("<Q", length) + data[8:])
        return Scan(path)

    build.__doc__ = f"safetensors file whose header length field says {length}."
    return build


def safetensors_pickle_header(w: Where) -> Scan:
    """A file named model.safetensors: a plausible length, then a pickle where the JSON header should be."""
    from tests.e2e.archives import evil_pickle

    body = evil_pickle(w)
    path = w.path("model.safetensors")
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    return Scan(path)


def safetensors_bad_metadata(w: Where) -> Scan:
    """``__metadata__`` holding a number and a list, where the format allows only strings."""
    header, body = _header(safetensors_bytes())
    header["__metadata__"] = {"format": "np", "epochs": 3, "layers": [1, 2]}
    path = w.path("model.safetensors")
    path.write_bytes(_with_header(header, body))
    return Scan(path)


def safetensors_trailing(w: Where) -> Scan:
    """A safetensors file with a pickle appended after the last tensor."""
    from tests.e2e.archives import evil_pickle

    path = w.path("model.safetensors")
    path.write_bytes(safetensors_bytes() + evil_pickle(w))
    return Scan(path)


def sharded_index(weight_map: dict[str, str], shards: tuple[str, ...]) -> Callable[[Where], Scan]:
    """A builder writing model.safetensors.index.json with ``weight_map`` and the listed shard files."""

    def build(w: Where) -> Scan:
        from safetensors.numpy import save_file

        for shard in shards:
            save_file({"w": np.arange(4, dtype=np.float32)}, str(w.path(shard)))
        path = w.path("model.safetensors.index.json")
        path.write_text(json.dumps({"metadata": {"total_size": 16}, "weight_map": weight_map}))
        return Scan(path)

    build.__doc__ = f"sharded safetensors index mapping {weight_map}."
    return build


# ----------------------------------------------------------------------------- GGUF


def write_gguf(path: Path, *, template: str | None = None, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A GGUF file written by gguf.GGUFWriter (llama architecture, optional chat template)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("e2e")
    writer.add_uint32("e2e.key_a", 1)
    writer.add_uint32("e2e.key_b", 2)
    if template is not None:
        writer.add_chat_template(template)
    for name, value in (tensors or {"t": np.zeros(4, dtype=np.float32)}).items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_five_dims(w: Where) -> Scan:
    """A tensor with 5 dimensions (GGML allows 4: the parser-overflow class)."""
    return Scan(write_gguf(w.path("model.gguf"), tensors={"t": np.ones((1, 1, 1, 2, 2), dtype=np.float32)}))


def gguf_duplicate_key(w: Where) -> Scan:
    """Two metadata entries with the same key (key_b renamed to key_a in the bytes)."""
    path = write_gguf(w.path("model.gguf"))
    path.write_bytes(path.read_bytes().replace(b"e2e.key_b", b"e2e.key_a"))
    return Scan(path)


def gguf_trailing(w: Where) -> Scan:
    """A pickle appended after the last GGUF tensor."""
    from tests.e2e.archives import evil_pickle

    path = write_gguf(w.path("model.gguf"))
    path.write_bytes(path.read_bytes() + evil_pickle(w))
    return Scan(path)


def gguf_ssti(w: Where) -> Scan:
    """A GGUF whose tokenizer.chat_template escapes the Jinja sandbox (CVE-2024-34359 class)."""
    from tests.e2e.payloads import SSTI_TEMPLATE

    return Scan(write_gguf(w.path("model.gguf"), template=SSTI_TEMPLATE.replace("CANARY", str(w.canary))))


# ----------------------------------------------------------------------------- ONNX


def onnx_model(nodes: Sequence[Any], inits: Sequence[Any] = (), *, domains: tuple[str, ...] = (), **kw: Any) -> Any:
    """An ONNX ModelProto (opset 17) over x -> y made with onnx.helper (a Relu when ``nodes`` is empty)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(nodes or [helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y], list(inits))
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets, producer_name=kw.pop("producer", "e2e"), **kw)


def save_onnx(model: Any, path: Path) -> Path:
    """Write the serialized model."""
    path.write_bytes(model.SerializeToString())
    return path


def onnx_case(make: Callable[[], Any]) -> Callable[[Where], Scan]:
    """A builder saving the model ``make()`` returns as model.onnx."""

    def build(w: Where) -> Scan:
        return Scan(save_onnx(make(), w.path("model.onnx")))

    build.__doc__ = make.__doc__
    return build


def onnx_python_op() -> Any:
    """A com.microsoft PyOp node naming a Python module and class to run."""
    from onnx import helper

    node = helper.make_node("PyOp", ["x"], ["y"], domain="com.microsoft", module="evil_module", class_name="Payload")
    return onnx_model([node], domains=("com.microsoft",))


def onnx_custom_domain() -> Any:
    """An operator from the unknown domain com.evil."""
    from onnx import helper

    return onnx_model([helper.make_node("Mystery", ["x"], ["y"], domain="com.evil")], domains=("com.evil",))


def onnx_absurd_tensor() -> Any:
    """An initializer declaring 2**80 floats backed by 8 bytes."""
    from onnx import TensorProto, helper

    big = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[1 << 30, 1 << 30, 1 << 20], raw_data=b"\0" * 8)
    return onnx_model([helper.make_node("Identity", ["big"], ["y"])], [big])


def onnx_dead_operator() -> Any:
    """A ReduceMax probe on the input whose result nothing reads (a dormant trigger branch)."""
    from onnx import helper

    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("ReduceMax", ["x"], ["probe"], keepdims=0, name="trigger_probe"),
    ]
    return onnx_model(nodes)


def onnx_stray_initializer() -> Any:
    """Bytes stored as an initializer no operator reads."""
    from onnx import numpy_helper

    return onnx_model([], [numpy_helper.from_array(np.zeros(16, dtype=np.uint8), "blob")])


def _ints(name: str, values: list[int]) -> Any:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def onnx_shape_bomb(op: str) -> Callable[[], Any]:
    """A maker of a graph whose ``op`` allocates 2**50 elements from a constant shape."""

    def make() -> Any:
        from onnx import helper

        if op == "ConstantOfShape":
            return onnx_model([helper.make_node(op, ["s"], ["y"])], [_ints("s", [1 << 25, 1 << 25])])
        if op == "Reshape":
            return onnx_model([helper.make_node(op, ["x", "s"], ["y"])], [_ints("s", [1 << 50, -1])])
        values = [1 << 50] if op == "Tile" else [1 << 25, 1 << 25]
        return onnx_model([helper.make_node(op, ["x", "s"], ["y"])], [_ints("s", values)])

    make.__doc__ = f"ONNX {op} whose constant shape allocates 2**50 elements."
    return make


def onnx_external(location: str, **extra: str) -> Callable[[Where], Scan]:
    """A builder of an ONNX model in ``model/`` whose initializer is external data at ``location`` (onnx writes it)."""

    def build(w: Where) -> Scan:
        import onnx
        from onnx import helper, numpy_helper

        weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(2, 2048), "w")
        model = onnx_model([helper.make_node("Identity", ["w"], ["y"])], [weight])
        original = w.path("original", "model.onnx")
        onnx.save_model(model, str(original), save_as_external_data=True, location="weights.bin")
        model = onnx.load_model(str(original), load_external_data=False)
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
            elif entry.key in extra:
                entry.value = extra[entry.key]
        shutil.copy(original.parent / "weights.bin", w.path("model", "weights.bin"))
        return Scan(save_onnx(model, w.path("model", "model.onnx")))

    build.__doc__ = f"ONNX model whose external data is at {location!r} {extra or ''}."
    return build


def onnx_made_by_old_torch(w: Where) -> Scan:
    """An ONNX model whose producer records torch 2.5.1 (advisories for a version the model was made with)."""
    return Scan(save_onnx(onnx_model([], producer="pytorch", producer_version="2.5.1"), w.path("model.onnx")))


# ----------------------------------------------------------------------------- NumPy, torch


def npy_truncated(w: Where) -> Scan:
    """A .npy written by numpy, with the last 40 bytes of its data cut off."""
    buf = io.BytesIO()
    np.save(buf, np.arange(100, dtype=np.float32))
    path = w.path("array.npy")
    path.write_bytes(buf.getvalue()[:-40])
    return Scan(path)


def torch_checkpoint(w: Where) -> Scan:
    """A benign torch.save state dict (a pickle inside a zip)."""
    import torch

    path = w.path("weights.pt")
    torch.save({"w": torch.zeros(2)}, path)
    return Scan(path)


def torch_legacy_truncated(w: Where) -> Scan:
    """A legacy (non-zip) torch.save file cut inside its storage section."""
    import torch

    path = w.path("legacy.pt")
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-6])
    return Scan(path)


def _script(module: Any, path: Path) -> Path:
    """torch.jit.save of torch.jit.script(module) (TorchScript is deprecated upstream, still loaded everywhere)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def torchscript_custom_op(w: Where) -> Scan:
    """A scripted module calling a custom operator (torch.library) that the consumer must provide."""
    import torch

    if not hasattr(torch.ops.e2e, "scale"):
        torch.library.define("e2e::scale", "(Tensor x) -> Tensor")
        torch.library.impl("e2e::scale", "cpu")(lambda x: x * 2)

    class Scaled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.e2e.scale(x)

    return Scan(_script(Scaled(), w.path("scripted.pt")))


def torchscript_reads_file(w: Where) -> Scan:
    """A scripted module whose forward maps a file outside the model (the case's canary) into a tensor."""
    import torch

    class Reader(torch.nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_file(self.path, False, 64)

    return Scan(_script(Reader(str(w.canary)), w.path("scripted.pt")))


def pickle_beside_safetensors(w: Where) -> Scan:
    """A repo with config.json, model.safetensors and a torch.save pytorch_model.bin."""
    import torch
    from safetensors.numpy import save_file

    folder = w.path("repo", "config.json").parent
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    save_file({"w": np.zeros(2, np.float32)}, str(folder / "model.safetensors"))
    torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")
    return Scan(folder)


# ----------------------------------------------------------------------------- HDF5


def h5_external_link(w: Where) -> Scan:
    """An HDF5 weights file with an external link into another file, the case's canary (h5py)."""
    import h5py

    path = w.path("model", "model.h5")
    with h5py.File(path, "w") as h5:
        h5["dense/kernel"] = np.ones((2, 2), np.float32)
        h5["dense/bias"] = h5py.ExternalLink(str(w.canary), "/data")
    return Scan(path)


def h5_shape_bomb(w: Where) -> Scan:
    """A chunked HDF5 dataset declaring 2**40 floats, none written (h5py)."""
    import h5py

    path = w.path("model.h5")
    with h5py.File(path, "w") as h5:
        h5.create_dataset("dense/kernel", shape=(1 << 40,), dtype="f4", chunks=(1024,))
    return Scan(path)


# ----------------------------------------------------------------------------- Keras (from the tf_models fixture)


def keras_edit(layer: dict[str, Any]) -> Callable[[Where], Scan]:
    """A builder inserting ``layer`` into the config.json of the real benign .keras model (tests/formats/_tf_models).

    ``CANARY`` in the layer's strings becomes the case's canary path.
    """

    def build(w: Where) -> Scan:
        parts = keras_parts(w)
        config = json.loads(parts["config.json"])
        config["config"]["layers"].insert(1, json.loads(json.dumps(layer).replace("CANARY", str(w.canary))))
        parts["config.json"] = json.dumps(config).encode()
        return Scan(_write_zip(w.path("model.keras"), parts))

    build.__doc__ = f"Real .keras model with the layer {json.dumps(layer)[:80]} inserted in config.json."
    return build


def _write_zip(path: Path, parts: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return path


def keras_parts(w: Where, name: str = "benign_keras") -> dict[str, bytes]:
    """Members of a real .keras archive of the tf_models fixture."""
    with zipfile.ZipFile(w.resource("tf_models") / name / "model.keras") as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def keras_extra_weights(w: Where) -> Scan:
    """The real benign .keras with a copy of its Dense weights under a layer config.json does not declare."""
    import h5py

    parts = keras_parts(w)
    buffer = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        h5.copy(h5["layers/dense"], "layers/trigger_detector")
    parts["model.weights.h5"] = buffer.getvalue()
    return Scan(_write_zip(w.path("model.keras"), parts))


def keras_unreadable_weights(w: Where) -> Scan:
    """The real benign .keras whose model.weights.h5 is not HDF5 (the layer/weights comparison cannot run)."""
    parts = keras_parts(w)
    parts["model.weights.h5"] = b"\x89HDF\r\n\x1a\n" + b"\xff" * 64
    return Scan(_write_zip(w.path("model.keras"), parts))


def keras_recorded_old_version(w: Where) -> Scan:
    """The real Lambda .keras model, its metadata.json saying it was made with keras 3.3.3."""
    parts = keras_parts(w, "lambda_keras")
    meta = json.loads(parts["metadata.json"])
    meta["keras_version"] = "3.3.3"
    parts["metadata.json"] = json.dumps(meta).encode()
    return Scan(_write_zip(w.path("model.keras"), parts))


def tf_fixture(*parts: str, args: tuple[str, ...] = ()) -> Callable[[Where], Scan]:
    """A builder scanning ``parts`` of the tf_models fixture (tests/formats/_tf_models.py) in place."""

    def build(w: Where) -> Scan:
        return Scan(w.resource("tf_models").joinpath(*parts), args)

    build.__doc__ = f"tests/formats/_tf_models.py: {'/'.join(parts)}."
    return build


def child_fixture(resource: str, *parts: str) -> Callable[[Where], Scan]:
    """A builder scanning ``parts`` of a fixture folder built in a child interpreter (tests/e2e/children.py)."""

    def build(w: Where) -> Scan:
        return Scan(w.resource(resource).joinpath(*parts))

    build.__doc__ = f"tests/e2e/children.py ({resource}): {'/'.join(parts)}."
    return build


# ----------------------------------------------------------------------------- tampering


def _rank_one(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    edited = dict(tensors)
    key = "model.layers.2.mlp.down_proj.weight"
    rng = np.random.default_rng(5)
    edited[key] = tensors[key] + 0.01 * np.outer(rng.standard_normal(HIDDEN), rng.standard_normal(FFN)).astype(
        np.float32
    )
    return edited


def _fine_tuned(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    return {k: (v + 1e-3 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in tensors.items()}


def structural(edit: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], doc: str) -> Callable[[Where], Scan]:
    """A builder writing a Llama-shaped model (with its config.json) after ``edit``; scanned without a reference."""

    def build(w: Where) -> Scan:
        return Scan(write_safetensors(w.path("model", "model.safetensors"), edit(llama())))

    build.__doc__ = doc
    return build


def stray_tensor(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One layer gains a tensor no other layer has."""
    return {**t, "model.layers.1.mlp.trigger.weight": np.zeros((2, 2), np.float32)}


def missing_tensor(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One layer loses its up projection."""
    return {k: v for k, v in t.items() if k != "model.layers.1.mlp.up_proj.weight"}


def reshaped_tensor(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One layer's down projection has an extra column."""
    return {**t, "model.layers.0.mlp.down_proj.weight": np.zeros((HIDDEN, FFN + 1), np.float32)}


def config_mismatch(w: Where) -> Scan:
    """A Llama-shaped model whose config.json declares 6 layers for 4 stored."""
    path = write_safetensors(w.path("model", "model.safetensors"), llama())
    (path.parent / "config.json").write_text(json.dumps({**CONFIG, "num_hidden_layers": 6}))
    return Scan(path)


def against_base(candidate: Callable[[Path, dict[str, np.ndarray]], Path], doc: str) -> Callable[[Where], Scan]:
    """A builder writing a base model and a candidate (``candidate(folder, base tensors)``); ``--reference base``."""

    def build(w: Where) -> Scan:
        tensors = llama()
        base = write_safetensors(w.path("base", "model.safetensors"), tensors)
        return Scan(candidate(w.dir / "candidate", tensors), ("--reference", str(base)))

    build.__doc__ = doc
    return build


def cand_rank_one(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """A ROME-like rank-1 edit of one MLP matrix."""
    return write_safetensors(folder / "model.safetensors", _rank_one(t))


def cand_fine_tuned(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """Small dense changes everywhere."""
    return write_safetensors(folder / "model.safetensors", _fine_tuned(t))


def cand_bf16(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """The same weights stored as BF16."""
    return write_safetensors(folder / "model.safetensors", t, dtype="BF16")


def cand_trailing(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """The same weights with bytes appended after the tensor data."""
    return write_safetensors(folder / "model.safetensors", t, trailing=b"\x80\x04payload")


def cand_duplicate(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """The weights split over two files that both hold the embedding (the folder is the candidate)."""
    names = list(t)
    write_safetensors(folder / "a.safetensors", {k: t[k] for k in names[: len(names) // 2]})
    write_safetensors(folder / "b.safetensors", {k: t[k] for k in [names[0], *names[len(names) // 2 :]]})
    return folder


def cand_truncated(folder: Path, t: dict[str, np.ndarray]) -> Path:
    """The same weights with the last 1000 bytes of tensor data cut off."""
    path = write_safetensors(folder / "model.safetensors", t)
    path.write_bytes(path.read_bytes()[:-1000])
    return path


# ----------------------------------------------------------------------------- backdoor


def trojaned_classifier(w: Where) -> Scan:
    """A tiny CNN (identity conv, linear head) whose label 3 fires on one pixel; the 9 clean labels are symmetric.

    Each clean label reads its own 6-pixel block, so their reverse-engineered triggers have similar norms
    and the one-pixel trigger of label 3 stands out far beyond the calibrated threshold (``scan --deep``).
    """
    import torch
    from safetensors.torch import save_file

    classes, target = 10, 3
    conv = np.zeros((1, 1, 3, 3), np.float32)
    conv[0, 0, 1, 1] = 1.0
    weight = np.zeros((classes, 64), np.float32)
    for block, label in enumerate(c for c in range(classes) if c != target):
        weight[label, block * 6 : (block + 1) * 6] = 1.0
    weight[target, 63] = 60.0
    bias = np.zeros(classes, np.float32)
    bias[target] = -5.0
    state = {
        "features.0.weight": torch.tensor(conv),
        "features.0.bias": torch.zeros(1),
        "classifier.weight": torch.tensor(weight),
        "classifier.bias": torch.tensor(bias),
    }
    path = w.path("classifier.safetensors")
    save_file(state, str(path), metadata={"input_shape": "1x8x8"})
    return Scan(path, ("--deep",), timeout_s=180.0)
