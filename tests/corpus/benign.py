"""Benign real models written by the real libraries: the false-positive bar (no finding at or above medium)."""

from __future__ import annotations

import collections
import datetime
import io
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _torch() -> Any:
    import torch

    return torch


def _tiny_net() -> Any:
    torch = _torch()
    cls = globals().get("TinyNet")
    if cls is None:
        source = (
            "class TinyNet(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.fc1 = torch.nn.Linear(4, 8)\n"
            "        self.act = torch.nn.ReLU()\n"
            "        self.fc2 = torch.nn.Linear(8, 2)\n"
            "        self.norm = torch.nn.BatchNorm1d(2)\n"
            "\n"
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            "        return self.norm(self.fc2(self.act(self.fc1(x))))\n"
        )
        # a class defined from source in a real file, so TorchScript can read it and pickle finds it by reference
        path = Path(tempfile.mkdtemp(prefix="ms-tinynet-")) / "tinynet_src.py"
        path.write_text("import torch\n\n" + source)
        namespace: dict[str, Any] = {"torch": torch, "__name__": __name__}
        exec(compile("import torch\n\n" + source, str(path), "exec"), namespace)  # noqa: S102 - our own source
        cls = namespace["TinyNet"]
        cls.__module__ = __name__
        globals()["TinyNet"] = cls
    torch.manual_seed(0)
    return cls()


def _torch_save(obj: Any, legacy: bool = False) -> bytes:
    buf = io.BytesIO()
    _torch().save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _torchscript() -> bytes:
    torch = _torch()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_tiny_net().eval()), buf)
    return buf.getvalue()


def _sklearn_models() -> dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    return {
        "logreg": LogisticRegression().fit(x, y),
        "pipeline": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(x, y),
        "tree": DecisionTreeRegressor(max_depth=2).fit(x, y.astype(float)),
    }


def _joblib(obj: Any, compress: Any) -> bytes:
    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.joblib")
        joblib.dump(obj, path, compress=compress)
        return Path(path).read_bytes()


def _numpy_files() -> dict[str, bytes]:
    import numpy as np

    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    out: dict[str, bytes] = {}
    buf = io.BytesIO()
    np.save(buf, arr)
    out["numpy-array.npy"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, a=arr, b=np.arange(3))
    out["numpy-arrays.npz"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, a=arr)
    out["numpy-arrays-compressed.npz"] = buf.getvalue()
    for proto in (2, 4, 5):
        out[f"numpy-array-p{proto}.pkl"] = pickle.dumps({"x": arr, "i": np.int64(3), "d": np.dtype("float32")}, proto)
    return out


def _pandas_files() -> dict[str, bytes]:
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})
    out = {}
    for suffix, comp in ((".pkl", None), (".pkl.gz", "gzip")):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "df" + suffix)
            df.to_pickle(path, compression=comp)
            out[f"pandas-dataframe{suffix}"] = Path(path).read_bytes()
    return out


PLAIN = {
    "ints": [1, -2, 2**40, 0],
    "floats": (0.5, -1e300),
    "text": "héllo",
    "blob": b"\x00\x01",
    "none": None,
    "flags": [True, False],
    "nested": {"a": {"b": [1, {"c": "d"}]}},
    "set": {1, 2},
    "frozen": frozenset({"x"}),
    "ordered": collections.OrderedDict(a=1),
    "when": datetime.date(2024, 1, 2),
    "big": list(range(300)),
    "bytearray": bytearray(b"ab"),
    "complex": complex(1, 2),
}


def benign_files() -> dict[str, Callable[[], bytes]]:
    """File name -> generator of a benign, real-library model file."""
    files: dict[str, Callable[[], bytes]] = {}
    for proto in range(6):
        files[f"plain-data-p{proto}.pkl"] = (lambda p: lambda: pickle.dumps(PLAIN, protocol=p))(proto)
    files["torch-state-dict.pt"] = lambda: _torch_save(_tiny_net().state_dict())
    files["torch-state-dict-legacy.pt"] = lambda: _torch_save(_tiny_net().state_dict(), legacy=True)
    files["torch-whole-module.pt"] = lambda: _torch_save(_tiny_net())
    files["torch-whole-module-legacy.pt"] = lambda: _torch_save(_tiny_net(), legacy=True)
    files["torch-checkpoint-with-optimizer.pt"] = _torch_checkpoint
    files["torchscript-module.pt"] = _torchscript
    for name, model in _lazy_sklearn():
        files[f"sklearn-{name}.pkl"] = (lambda m: lambda: pickle.dumps(m(), protocol=5))(model)
        files[f"sklearn-{name}.joblib"] = (lambda m: lambda: _joblib(m(), 0))(model)
    files["sklearn-pipeline-zlib.joblib"] = lambda: _joblib(_sklearn_models()["pipeline"], ("zlib", 3))
    files["sklearn-forest-lz4.joblib"] = lambda: _joblib(_sklearn_models()["forest"], ("lz4", 3))
    files["sklearn-logreg-xz.joblib"] = lambda: _joblib(_sklearn_models()["logreg"], ("xz", 3))
    files["sklearn-tree-gzip.joblib"] = lambda: _joblib(_sklearn_models()["tree"], ("gzip", 3))
    for name, data in _lazy_numpy_pandas().items():
        files[name] = data
    return files


def _torch_checkpoint() -> bytes:
    torch = _torch()
    net = _tiny_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(3, 4)).sum().backward()
    opt.step()
    return _torch_save({"epoch": 3, "model": net.state_dict(), "optimizer": opt.state_dict(), "loss": 0.25})


def _lazy_sklearn() -> list[tuple[str, Callable[[], Any]]]:
    return [(n, (lambda k: lambda: _sklearn_models()[k])(n)) for n in ("logreg", "pipeline", "forest", "tree")]


def _lazy_numpy_pandas() -> dict[str, Callable[[], bytes]]:
    out: dict[str, Callable[[], bytes]] = {}
    for name in (
        "numpy-array.npy",
        "numpy-arrays.npz",
        "numpy-arrays-compressed.npz",
        *(f"numpy-array-p{p}.pkl" for p in (2, 4, 5)),
    ):
        out[name] = (lambda n: lambda: _numpy_files()[n])(name)
    for name in ("pandas-dataframe.pkl", "pandas-dataframe.pkl.gz"):
        out[name] = (lambda n: lambda: _pandas_files()[n])(name)
    return out


def build_benign(root: Path) -> list[Path]:
    """Write every benign file into ``root/benign``; return the paths."""
    out_dir = root / "benign"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in benign_files().items():
        path = out_dir / name
        path.write_bytes(make())
        paths.append(path)
    return paths
