"""Which top-level files are models (``scan --only-models``, for hooks handed every file of a repo)."""

from __future__ import annotations

from modelshield.formats.interface import Blob, detect

#: Name endings that claim a model: such a file is always scanned, whatever its content.
MODEL_SUFFIXES = (
    ".pt", ".pth", ".bin", ".pkl", ".pickle", ".joblib", ".dill", ".npy", ".npz", ".h5", ".hdf5", ".keras",
    ".onnx", ".gguf", ".ggml", ".safetensors", ".ckpt", ".pb", ".tflite", ".mlmodel", ".msgpack", ".model",
)  # fmt: skip
#: Readers of content that is not a model (with ``only_models``, such files are left out).
NOT_MODEL_READERS = frozenset({"text", "python-source", "json", "yaml", "executable", "eicar"})


def is_model_blob(blob: Blob) -> bool:
    """Whether ``blob`` is a model: its name claims one, or its content is a model format or container.

    Plain text, source code, scripts, JSON/YAML, native executables, empty and unrecognised bytes
    are not. Unreadable files are kept, so the scan reports them. Archives are kept whatever they
    hold (a model can hide in one).
    """
    if blob.path.lower().endswith(MODEL_SUFFIXES):
        return True
    try:
        head = blob.head()
    except OSError:
        return True
    if not head:
        return False
    reader = detect(blob, head)
    return reader is not None and reader.name not in NOT_MODEL_READERS
