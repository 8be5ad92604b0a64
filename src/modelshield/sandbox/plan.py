"""Which real load(s) to perform for a file: decided from its bytes (parent side, parse only).

The static scan's detected format is used as a hint; the bytes decide. A file can need two
loads (Keras: ``safe_mode=True`` then ``False``, to tell a safe_mode bypass from a plain Lambda).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass

from modelshield.sandbox.loaders import pickle_globals

HEAD_BYTES = 4096
MAX_MEMBERS = 10_000
MAX_JSON_BYTES = 16 * 1024 * 1024
TORCH_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".pt2")
JOBLIB_EXTENSIONS = (".joblib", ".jl", ".pkl.z", ".pkl.gz", ".pkl.xz", ".pkl.bz2", ".pkl.lz4")
KERAS_EXTENSIONS = (".keras", ".h5", ".hdf5")
_COMPRESSED = (b"\x1f\x8b", b"\x78", b"\xfd7zXZ", b"\x5d\x00\x00", b"BZh", b"\x04\x22\x4d\x18", b"ZF")
_LOADER_OF_PACKAGE = {"dill": "dill", "cloudpickle": "cloudpickle", "joblib": "joblib"}


@dataclass(frozen=True, slots=True)
class Plan:
    """One sandboxed load: which file, which loader."""

    path: str
    loader: str


def _json(path: str) -> dict[str, object]:
    if os.path.getsize(path) > MAX_JSON_BYTES:
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _zip_loaders(path: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names[:MAX_MEMBERS] if _member_is_pickle(archive, n)]
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError):
        return []
    if any(n.endswith("data.pkl") for n in names):
        others = [n for n in pickles if not n.endswith("data.pkl")]
        return ["torch", "zip-pickles"] if others else ["torch"]
    if names and all(n.endswith(".npy") for n in names):
        return ["numpy"]
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return ["keras-safe-mode", "keras-unsafe"]
    return ["zip-pickles"] if pickles else []


def _member_is_pickle(archive: zipfile.ZipFile, name: str) -> bool:
    if name.endswith((".pkl", ".pickle")):
        return True
    with archive.open(name) as member:
        head = member.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _pickle_loader(path: str, head: bytes) -> str:
    lower = path.lower()
    packages = {m.split(".", 1)[0] for m in pickle_globals(io.BytesIO(head))} if len(head) < HEAD_BYTES else set()
    if not packages:
        with open(path, "rb") as stream:
            packages = {m.split(".", 1)[0] for m in pickle_globals(stream)}
    for package, loader in _LOADER_OF_PACKAGE.items():
        if package in packages:
            return loader
    return "torch" if lower.endswith(TORCH_EXTENSIONS) else "pickle"


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return True
    return head[:1] in {b"(", b"c", b"]", b"}", b"N", b"I", b"S", b"V"} and head.rstrip().endswith(b".")


def loaders_for(path: str, fmt: str = "") -> list[str]:
    """The loader names to run for ``path`` (empty: nothing to detonate)."""
    name = os.path.basename(path).lower()
    if name == "config.json":
        return ["remote-code"] if _json(path).get("auto_map") else []
    if name == "tokenizer_config.json":
        return ["jinja-chat-template"] if _json(path).get("chat_template") else []
    if name.endswith(".jinja"):
        return ["jinja-chat-template"]
    try:
        with open(path, "rb") as stream:
            head = stream.read(HEAD_BYTES)
    except OSError:
        return []
    if head.startswith(b"\x93NUMPY"):
        return ["numpy"]
    if head.startswith(b"PK\x03\x04"):
        return _zip_loaders(path)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ["keras-safe-mode", "keras-unsafe"] if name.endswith(KERAS_EXTENSIONS) else []
    if name.endswith(JOBLIB_EXTENSIONS) and head.startswith(_COMPRESSED):
        return ["joblib"]
    if _looks_like_pickle(head) or "pickle" in fmt:
        return [_pickle_loader(path, head)]
    if name.endswith(".onnx") or "onnx" in fmt:
        return ["onnxruntime"]
    return []


def plans_for(path: str, fmt: str = "") -> list[Plan]:
    """The sandboxed loads to perform for ``path``."""
    return [Plan(path, loader) for loader in loaders_for(path, fmt)]
