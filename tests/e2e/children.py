"""Fixtures written by frameworks that import slowly (TensorFlow, coremltools), each built once in a child interpreter.

The test process never imports them. ``build_*(root)`` writes under ``root`` and returns it; a marker
file records success so a second call is free. The Keras and TensorFlow models of
tests/formats/_tf_models.py are reused as they are (``tf_models``); these are the ones it lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TF_EXTRA = textwrap.dedent(
    r"""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2, meta_graph_pb2

    root = sys.argv[1]
    def p(*parts):
        path = os.path.join(root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    # A frozen graph that saves a checkpoint to a fixed absolute path (SaveV2 fed by a Const): the canary
    canary = os.path.join(root, "canary")
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
    def save_to_fixed_path(x):
        tf.raw_ops.SaveV2(prefix=tf.constant(canary), tensor_names=tf.constant(["x"]),
                          shape_and_slices=tf.constant([""]), tensors=[x])
        return x
    graph = save_to_fixed_path.get_concrete_function().graph.as_graph_def()
    open(p("checkpoint_path", "frozen_graph.pb"), "wb").write(graph.SerializeToString())

    # A frozen graph with a node of an op TensorFlow does not know (a kernel the app must register)
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
    def plain(x):
        return tf.nn.relu(x)
    graph = plain.get_concrete_function().graph.as_graph_def()
    for node in graph.node:
        if node.op == "Relu":
            node.op = "E2eMysteryKernel"
    open(p("custom_op", "frozen_graph.pb"), "wb").write(graph.SerializeToString())

    # A SavedModel whose asset file list names a file outside the model folder
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
        def __call__(self, x):
            return x * 2.0
    folder = os.path.join(root, "asset_path")
    tf.saved_model.save(Module(), folder)
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(folder, "saved_model.pb"), "rb") as fh:
        saved.ParseFromString(fh.read())
    asset = saved.meta_graphs[0].asset_file_def.add()
    asset.filename = "../../canary"
    asset.tensor_info.name = "asset_path_initializer:0"
    with open(os.path.join(folder, "saved_model.pb"), "wb") as fh:
        fh.write(saved.SerializeToString())

    # TFLite with a custom op: an unsupported TF op converted with allow_custom_ops (no Flex delegate)
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def reader(path):
        return tf.strings.length(tf.io.read_file(path))
    conv = tf.lite.TFLiteConverter.from_concrete_functions([reader.get_concrete_function()], reader)
    conv.allow_custom_ops = True
    open(p("tflite", "custom.tflite"), "wb").write(conv.convert())
    print("ok")
    """
)

COREML = textwrap.dedent(
    """
    import os, sys
    from coremltools.proto import Model_pb2
    out = sys.argv[1]

    def model():
        m = Model_pb2.Model()
        m.specificationVersion = 4
        m.description.input.add().name = "x"
        m.description.output.add().name = "y"
        return m

    def save(name, m):
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(m.SerializeToString())

    m = model()
    dense = m.neuralNetwork.layers.add()
    dense.name, dense.innerProduct.inputChannels, dense.innerProduct.outputChannels = "dense", 2, 2
    dense.input.append("x")
    dense.output.append("h")
    dense.innerProduct.weights.floatValue.extend([1.0, 0.0, 0.0, 1.0])
    custom = m.neuralNetwork.layers.add()
    custom.name, custom.custom.className = "mystery", "E2eEvilLayer"
    custom.input.append("h")
    custom.output.append("y")
    save("custom-layer.mlmodel", m)

    m = model()
    m.linkedModel.linkedModelFile.linkedModelFileName.defaultValue = "../../../private/Other.mlmodelc"
    save("linked-outside.mlmodel", m)

    m = model()
    m.linkedModel.linkedModelFile.linkedModelFileName.defaultValue = "Feature.mlmodelc"
    save("linked.mlmodel", m)

    m = model()
    m.serializedModel.identifier = "com.example.private"
    m.serializedModel.model = bytes(32)
    save("opaque.mlmodel", m)
    print("ok")
    """
)


def _build(script: str, root: Path) -> Path:
    marker = root / ".built"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, env=env, timeout=600
    )
    if result.returncode != 0 or "ok" not in result.stdout:
        raise RuntimeError(f"fixture generation in {root} failed:\n{result.stderr[-4000:]}")
    marker.write_text("ok")
    return root


def build_tf_extra(root: Path) -> Path:
    """TensorFlow graphs, a SavedModel and a TFLite model the tf_models fixture does not have."""
    return _build(TF_EXTRA, root)


def build_coreml(root: Path) -> Path:
    """Core ML specs written with coremltools' own protobuf classes."""
    return _build(COREML, root)
