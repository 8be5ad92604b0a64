"""Session fixtures: real model files written by the real libraries (keras, transformers, onnx, torch, gguf)."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write one file per format once per session; return name -> path."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    transformers = pytest.importorskip("transformers")
    onnx = pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    gguf = pytest.importorskip("gguf")
    import numpy as np
    import sklearn.linear_model

    root = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {}

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    out["plain.keras"] = root / "plain.keras"
    plain.save(out["plain.keras"])
    lam = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Lambda(lambda x: x * 2)])
    out["lambda.keras"] = root / "lambda.keras"
    lam.save(out["lambda.keras"])
    out["old-lambda.keras"] = _with_keras_version(out["lambda.keras"], root / "old-lambda.keras", "3.3.3")

    hf = root / "hf"
    transformers.PretrainedConfig(architectures=["Demo"]).save_pretrained(hf)
    out["config.json"] = hf / "config.json"
    remote = root / "remote"
    transformers.PretrainedConfig(auto_map={"AutoModel": "modeling_demo.DemoModel"}).save_pretrained(remote)
    (remote / "modeling_demo.py").write_text("class DemoModel:\n    pass\n")
    out["remote"] = remote

    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, producer_name="pytorch", producer_version="2.5.1")
    out["model.onnx"] = root / "model.onnx"
    onnx.save(model, out["model.onnx"])

    out["weights.pt"] = root / "weights.pt"
    torch.save({"w": torch.zeros(2)}, out["weights.pt"])

    out["estimator.pkl"] = root / "estimator.pkl"
    out["estimator.pkl"].write_bytes(pickle.dumps(sklearn.linear_model.LinearRegression(), protocol=4))

    for name, template in (("chat.gguf", "{% for m in messages %}{{ m.content }}{% endfor %}"), ("plain.gguf", None)):
        writer = gguf.GGUFWriter(str(root / name), "llama")
        writer.add_name("demo")
        if template:
            writer.add_chat_template(template)
        writer.add_tensor("t", np.zeros(4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        out[name] = root / name
    return out


def _with_keras_version(src: Path, dest: Path, version: str) -> Path:
    """Copy a real .keras archive, changing only the recorded keras_version (an older Keras's file)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                meta["keras_version"] = version
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return dest
