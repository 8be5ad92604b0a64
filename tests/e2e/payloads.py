"""Code that would run on load: pickles, shipped Python, chat templates, repo configs, sandbox payloads.

Pickle samples come from the red-team corpus (tests/corpus/) and tests/formats/_pickle_payloads.py.
Every payload only touches the case's canary or connects to 127.0.0.1 on a closed port; only the
sandbox (``--dynamic``) ever loads one.
"""

from __future__ import annotations

import builtins
import json
import operator
import os
import pickle
import socket
import time
from collections.abc import Callable
from typing import Any

from tests.corpus.model import Ctx, all_specs, registry
from tests.e2e.model import Scan, Where


def corpus_sample(name: str) -> Callable[[Where], Scan]:
    """A builder writing the red-team corpus sample ``name`` (its payload touches only this case's canary)."""

    def build(w: Where) -> Scan:
        all_specs()  # importing the generator modules registers them
        spec = registry.specs[name]
        (w.dir / "canaries").mkdir(exist_ok=True)
        path = w.path(f"{name}{spec.ext}")
        path.write_bytes(spec.build(Ctx(w.dir, name)))
        return Scan(path)

    build.__doc__ = f"Red-team corpus sample {name!r} (tests/corpus/)."
    return build


def engine_payload(name: str) -> Callable[[Where], Scan]:
    """A builder writing payload ``name`` of tests/formats/_pickle_payloads.py."""

    def build(w: Where) -> Scan:
        from tests.formats._pickle_payloads import payloads

        path = w.path(f"{name}.pkl")
        path.write_bytes(payloads(str(w.canary), str(w.dir))[name])
        return Scan(path)

    build.__doc__ = f"Pickle engine payload {name!r} (tests/formats/_pickle_payloads.py)."
    return build


# ----------------------------------------------------------------------------- shipped Python, HF configs

EVIL_MODELING = """\
# Shipped with a model; never imported here. CANARY is replaced by the case's canary path.
import base64
import ctypes
import importlib
import os
import pickle
import socket
import subprocess

exec(base64.b64decode("cHJpbnQoMSk="))


class EvilModel:
    def forward(self, x):
        subprocess.Popen(["touch", "CANARY"])
        eval(x)
        sock = socket.create_connection(("127.0.0.1", 9))
        ctypes.CDLL("libc.so.6")
        pickle.load(open("weights.pkl", "rb"))
        importlib.import_module(x)
        os.remove("CANARY")
        return sock
"""


def python_module(w: Where) -> Scan:
    """A shipped ``modeling_evil.py`` that does one thing of every kind the Python review judges."""
    path = w.path("modeling_evil.py")
    path.write_text(EVIL_MODELING.replace("CANARY", str(w.canary)))
    return Scan(path)


def remote_code_repo(w: Where) -> Scan:
    """A repo whose config.json ``auto_map`` makes trust_remote_code import the shipped modeling file."""
    config = {
        "model_type": "evil",
        "architectures": ["EvilModel"],
        "auto_map": {"AutoModel": "modeling_evil.EvilModel"},
    }
    w.path("repo", "config.json").write_text(json.dumps(config))
    w.path("repo", "modeling_evil.py").write_text("class EvilModel:\n    pass\n")
    return Scan(w.dir / "repo")


def external_remote_code(w: Where) -> Scan:
    """A tokenizer config whose auto_map loads code from another Hugging Face repository."""
    path = w.path("tokenizer_config.json")
    path.write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tok.Tok", "other-org/code--tok_fast.TokFast"]}}))
    return Scan(path)


def modules_json(w: Where) -> Scan:
    """A sentence-transformers modules.json whose module type is ``os.system``."""
    path = w.path("modules.json")
    path.write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "os.system"}]))
    return Scan(path)


def duplicate_key_config(w: Where) -> Scan:
    """A config.json naming ``auto_map`` twice (parsers disagree on which wins)."""
    path = w.path("config.json")
    path.write_text('{"auto_map": {}, "auto_map": {"AutoModel": "m.M"}}')
    return Scan(path)


def mlflow_pickle_flavor(w: Where) -> Scan:
    """An MLflow MLmodel whose sklearn flavor is restored with cloudpickle."""
    path = w.path("MLmodel")
    path.write_text("flavors:\n  sklearn:\n    serialization_format: cloudpickle\n    pickled_model: model.pkl\n")
    return Scan(path)


def lfs_pointer(w: Where) -> Scan:
    """A Git LFS pointer where the weights should be."""
    path = w.path("model.safetensors")
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69f22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 90868376\n"
    )
    return Scan(path)


def chat_template(template: str) -> Callable[[Where], Scan]:
    """A builder writing a tokenizer_config.json with ``template`` (``CANARY``: the case's canary) as chat template."""

    def build(w: Where) -> Scan:
        path = w.path("tokenizer_config.json")
        path.write_text(json.dumps({"chat_template": template.replace("CANARY", str(w.canary)), "eos_token": "</s>"}))
        return Scan(path)

    build.__doc__ = f"tokenizer_config.json with the chat template {template[:60]!r}."
    return build


SSTI_TEMPLATE = "{{ cycler.__init__.__globals__.os.popen('touch CANARY').read() }}"
SUSPICIOUS_TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}{{ config.items() }}"
BROKEN_TEMPLATE = "{% for m in messages %}{{ m.content }"


# ----------------------------------------------------------------------------- loaded in the sandbox


class Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What each sandbox payload calls when loaded; arguments get the case (canary, port ...).
DETONATIONS: dict[str, Callable[[Where], object]] = {
    "shell": lambda w: Reduce(os.system, f"touch {w.canary}"),
    "write": lambda w: Reduce(builtins.open, str(w.canary), "w"),
    "read-outside": lambda w: Reduce(builtins.open, str(w.canary)),
    "connect": lambda w: Reduce(socket.create_connection, ("127.0.0.1", closed_port())),
    "exec": lambda w: Reduce(builtins.exec, f"open({str(w.canary)!r}, 'w')"),
    "putenv": lambda w: Reduce(os.putenv, "MODELSHIELD_E2E_PAYLOAD", "1"),
    "allocate-8gib": lambda w: Reduce(operator.mul, b"x" * 1024, 8 * 1024 * 1024),
    "abort": lambda w: Reduce(os.abort),
    "sleep": lambda w: Reduce(time.sleep, 600),
}


def detonation(kind: str, *args: str) -> Callable[[Where], Scan]:
    """A builder writing a protocol-2 pickle that runs payload ``kind`` when loaded; scanned with ``--dynamic``
    (and ``args``, e.g. a ``--timeout`` that also bounds the sandboxed load)."""

    def build(w: Where) -> Scan:
        path = w.path("model", f"{kind}.pkl")  # the canary is outside the model folder
        path.write_bytes(pickle.dumps(DETONATIONS[kind](w), protocol=2))
        return Scan(path, ("--dynamic", *args), timeout_s=150.0)

    build.__doc__ = f"Pickle whose load does {kind!r}, detonated with --dynamic."
    return build


def reach_sys_modules(w: Where) -> Scan:
    """A pickle that fetches ``sys.modules`` (a way to swap modules under the monitor)."""
    path = w.path("tamper.pkl")
    path.write_bytes(b"\x80\x02csys\nmodules\n.")
    return Scan(path, ("--dynamic",))


def onnx_without_runtime(w: Where) -> Scan:
    """A real ONNX model detonated where onnxruntime is not installed (coverage, never faked)."""
    from tests.e2e.weights import onnx_model, save_onnx

    path = save_onnx(onnx_model([]), w.path("model.onnx"))
    return Scan(path, ("--dynamic",))
