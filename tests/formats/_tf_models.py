"""Build Keras/TensorFlow fixtures ONCE per test session, in a subprocess (TensorFlow imports slowly).

``build_tf_models(root)`` writes benign and malicious models under ``root`` and returns it; the
generator runs in a child interpreter so the test process never imports TensorFlow. Malicious
payloads only touch a canary file whose path is given by the ``MODELSHIELD_CANARY`` environment
variable (never set while scanning).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

GENERATOR = textwrap.dedent(
    r"""
    import json, os, sys, zipfile
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, tensorflow as tf

    root = sys.argv[1]
    def p(*parts):
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    # Benign Keras 3 model, .keras and legacy .h5
    benign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dropout(0.1)])
    benign.compile(optimizer="adam", loss="mse", metrics=["mae"])
    benign.save(p("benign_keras", "model.keras"))
    benign.save(p("benign_h5", "model.h5"))

    # Lambda layer whose function touches the canary when the model is loaded and called
    payload = lambda x: (
        open(__import__("os").environ.get("MODELSHIELD_CANARY", "/dev/null"), "w").write("pwned"), x
    )[1]
    evil = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(payload), keras.layers.Dense(2)])
    evil.save(p("lambda_keras", "model.keras"))
    evil.save(p("lambda_h5", "model.h5"))

    # CVE-2025-1550 / CVE-2025-8747 / CVE-2025-9906: hand-edited config.json inside a .keras zip
    def edited(name, layer):
        src = zipfile.ZipFile(p("benign_keras", "model.keras"))
        config = json.loads(src.read("config.json"))
        config["config"]["layers"].insert(1, layer)
        with zipfile.ZipFile(p(name, "model.keras"), "w") as out:
            for item in src.namelist():
                data = json.dumps(config).encode() if item == "config.json" else src.read(item)
                out.writestr(item, data)
    edited("cve_2025_1550", {"module": "os", "class_name": "system", "config": {"command": "touch canary"},
                             "registered_name": None})
    edited("get_file", {"module": "keras.utils", "class_name": "get_file",
                        "config": {"fname": "x", "origin": "http://127.0.0.1:9/payload"}, "registered_name": None})
    edited("unsafe_deser", {"module": "keras.config", "class_name": "enable_unsafe_deserialization",
                            "config": {}, "registered_name": None})

    # TensorFlow SavedModel, benign
    class Benign(tf.Module):
        def __init__(self):
            self.w = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def __call__(self, x):
            return tf.matmul(x, self.w)
    tf.saved_model.save(Benign(), p("tf_benign", "saved_model.pb")[:-len("saved_model.pb")])

    # SavedModel whose serving function reads and writes files
    class FileOps(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def __call__(self, x):
            data = tf.io.read_file("/etc/hostname")
            tf.io.write_file(os.environ.get("MODELSHIELD_CANARY", "/tmp/modelshield-canary"), data)
            return x
    tf.saved_model.save(FileOps(), os.path.join(root, "tf_fileops"))

    # Frozen GraphDef with PyFunc (tf.numpy_function)
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
    def pyfunc(x):
        return tf.numpy_function(lambda v: v, [x], tf.float32)
    graph = pyfunc.get_concrete_function().graph.as_graph_def()
    with open(p("tf_pyfunc", "frozen_graph.pb"), "wb") as fh:
        fh.write(graph.SerializeToString())

    # Keras model exported as SavedModel (keras.export)
    benign.export(os.path.join(root, "keras_export"), verbose=False)

    # TFLite: a builtin-only model and one with a Flex (select TF ops) custom op
    conv = tf.lite.TFLiteConverter.from_keras_model(benign)
    open(p("tflite", "benign.tflite"), "wb").write(conv.convert())
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def reader(path):
        return tf.strings.length(tf.io.read_file(path))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([reader.get_concrete_function()], reader)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    open(p("tflite", "flex_readfile.tflite"), "wb").write(conv.convert())
    print("ok")
    """
)


def build_tf_models(root: Path) -> Path:
    """Generate the fixtures under ``root`` once (a marker file records success)."""
    marker = root / ".built"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("MODELSHIELD_CANARY", None)
    result = subprocess.run(
        [sys.executable, "-c", GENERATOR, str(root)], capture_output=True, text=True, env=env, timeout=600
    )
    if result.returncode != 0 or "ok" not in result.stdout:
        raise RuntimeError(f"fixture generation failed:\n{result.stderr[-4000:]}")
    marker.write_text("ok")
    return root


def cli(*args: str) -> int:
    """Exit code of ``modelshield scan ARGS`` run in-process (report discarded)."""
    from modelshield.cli.main import main

    try:
        main(["scan", "--no-progress", "-f", "json", "-o", os.devnull, *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
