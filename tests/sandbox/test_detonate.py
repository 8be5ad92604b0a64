"""Detonation in the sandbox: every payload is flagged, blocked, and its canary never appears.

Payloads are generated here; they only touch a canary file in a temp dir or connect to
127.0.0.1 on a closed port. Tests that need namespaces skip (with the probe's reason) where the
machine does not allow them; they are never run unsandboxed.
"""

from __future__ import annotations

import builtins
import collections
import itertools
import json
import operator
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelshield.sandbox.isolation import SandboxUnavailable, probe
from modelshield.sandbox.rlimits import SandboxLimits
from modelshield.sandbox.runner import Detonation, detonate
from modelshield.types import Category

FAST = SandboxLimits(wall_s=20.0, cpu_s=15, memory_mb=512)


@pytest.fixture(scope="module", autouse=True)
def sandbox_backend() -> str:
    """Skip the module (with the reason) when no sandbox works on this machine."""
    try:
        return probe().value
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox on this machine: {exc.message}")


class Reduce:
    """Pickles as ``func(*args)``: the generic shape of a pickle payload."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def write_pickle(path: Path, payload: object) -> Path:
    path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


def write_repo(root: Path, module_source: str) -> Path:
    """A model repo whose config.json makes trust_remote_code import ``modeling_evil``."""
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_evil.EvilModel"}}))
    (root / "modeling_evil.py").write_text(module_source)
    return root / "config.json"


def rules(result: Detonation) -> set[str]:
    return {f.rule_id for f in result.findings()}


def malicious(result: Detonation) -> set[str]:
    return {f.rule_id for f in result.findings() if f.category is Category.MALICIOUS_CODE}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_shell_out_is_flagged_and_blocked(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model = write_pickle(tmp_path / "m.pkl", Reduce(os.system, f"touch {canary}"))
    result = detonate(str(model), "pickle", limits=FAST)
    assert "DYN-PROCESS-EXEC" in rules(result)
    finding = next(f for f in result.findings() if f.rule_id == "DYN-PROCESS-EXEC")
    assert str(canary) in finding.evidence and finding.source == "dynamic" and "(blocked)" in finding.message
    assert not canary.exists()


def test_subprocess_is_flagged_and_blocked(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model = write_pickle(tmp_path / "m.pkl", Reduce(subprocess.check_call, ["touch", str(canary)]))
    result = detonate(str(model), "pickle", limits=FAST)
    assert {"DYN-PROCESS-EXEC", "DYN-IMPORT"} <= rules(result)
    assert not canary.exists()


def test_file_write_is_flagged_and_blocked(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model = write_pickle(tmp_path / "m.pkl", Reduce(builtins.open, str(canary), "w"))
    result = detonate(str(model), "pickle", limits=FAST)
    assert "DYN-FILE-WRITE" in rules(result)
    assert not canary.exists()


def test_connect_to_localhost_is_flagged(tmp_path: Path) -> None:
    port = closed_port()
    model = write_pickle(tmp_path / "m.pkl", Reduce(socket.create_connection, ("127.0.0.1", port)))
    result = detonate(str(model), "pickle", limits=FAST)
    network = [f for f in result.findings() if f.rule_id == "DYN-NETWORK"]
    assert network and any(str(port) in f.evidence for f in network)
    assert not (tmp_path / "canary").exists()


def test_spin_forever_is_killed_at_the_wall_clock(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    spin = Reduce(collections.deque, itertools.count(), 0)
    model = write_pickle(tmp_path / "m.pkl", [spin, Reduce(os.system, f"touch {canary}")])
    result = detonate(str(model), "pickle", limits=SandboxLimits(wall_s=2.0, cpu_s=60, memory_mb=512))
    assert result.outcome == "timeout"
    assert "DYN-TIMEOUT" in rules(result)
    assert not canary.exists()


@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_cpu_limit_stops_a_spin(tmp_path: Path, backend: str) -> None:
    try:
        probe(backend)
    except SandboxUnavailable as exc:
        pytest.skip(f"{backend} backend unavailable here: {exc.message}")
    model = write_pickle(tmp_path / "m.pkl", Reduce(collections.deque, itertools.count(), 0))
    limits = SandboxLimits(wall_s=30.0, cpu_s=1, memory_mb=512)
    result = detonate(str(model), "pickle", limits=limits, backend=backend)
    # under unshare the loader must not be PID 1 of its namespace, or the CPU-limit signal is ignored
    assert result.outcome == "killed" and "DYN-RESOURCE-LIMIT" in rules(result)


def test_unbounded_allocation_hits_the_memory_limit(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hog = Reduce(operator.mul, b"x" * 1024, 8 * 1024 * 1024)  # 8 GiB, far above the 512 MiB budget
    model = write_pickle(tmp_path / "m.pkl", [hog, Reduce(os.system, f"touch {canary}")])
    result = detonate(str(model), "pickle", limits=FAST)
    assert "DYN-RESOURCE-LIMIT" in rules(result)
    assert not canary.exists()


def test_fork_loop_is_observed_and_every_fork_fails(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    source = f"""
import os
for _ in range(25):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        open({str(canary)!r}, "w").close()
        os._exit(0)
"""
    result = detonate(str(write_repo(tmp_path / "repo", source)), "remote-code", limits=FAST)
    fork = [f for f in result.findings() if f.rule_id == "DYN-PROCESS-EXEC"]
    assert fork and fork[0].evidence.startswith("os.fork()") and "x25" in fork[0].evidence
    assert not canary.exists()


def test_seccomp_stops_a_fork_exec_that_bypasses_the_hook(tmp_path: Path) -> None:
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the raw _posixsubprocess.fork_exec signature used here is the one of Python 3.11")
    canary = tmp_path / "canary"
    source = f"""
import _posixsubprocess, os
r, w = os.pipe()
_posixsubprocess.fork_exec(
    [b"/usr/bin/touch", {str(canary).encode()!r}], [b"/usr/bin/touch"], True, (w,), None, None,
    -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None, False)
"""
    result = detonate(str(write_repo(tmp_path / "repo", source)), "remote-code", limits=FAST)
    load_error = next(r for r in result.records if r.get("kind") == "load-error")
    assert "Operation not permitted" in str(load_error["detail"]) or "Errno 1]" in str(load_error["detail"])
    assert not canary.exists()


def test_pickle_reaching_sys_modules_is_tampering(tmp_path: Path) -> None:
    model = tmp_path / "m.pkl"
    model.write_bytes(b"\x80\x02csys\nmodules\n.")
    result = detonate(str(model), "pickle", limits=FAST)
    assert "DYN-HOOK-TAMPER" in rules(result)


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.modules['os'] = None\n",
        "import sys\nsys.addaudithook(lambda *a: None)\n",
        "import os\nos._exit(0)\n",
        "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\n",
    ],
    ids=["replace-sys-modules", "add-audit-hook", "exit-before-end", "close-channel"],
)
def test_tampering_with_the_monitor_is_flagged(tmp_path: Path, source: str) -> None:
    canary = tmp_path / "canary"
    source += f"open({str(canary)!r}, 'w')\n"
    result = detonate(str(write_repo(tmp_path / "repo", source)), "remote-code", limits=FAST)
    assert "DYN-HOOK-TAMPER" in rules(result)
    assert not canary.exists()


def test_chat_template_injection_is_flagged(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    canary = tmp_path / "canary"
    template = "{{ cycler.__init__.__globals__.os.system('touch " + str(canary) + "') }}{{ messages[0]['content'] }}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    result = detonate(str(tmp_path / "tokenizer_config.json"), "jinja-chat-template", limits=FAST)
    assert "DYN-PROCESS-EXEC" in rules(result)
    assert not canary.exists()


def test_benign_chat_template_has_no_findings(tmp_path: Path) -> None:
    pytest.importorskip("jinja2")
    template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    result = detonate(str(tmp_path / "tokenizer_config.json"), "jinja-chat-template", limits=FAST)
    assert result.outcome == "completed" and result.findings() == []


def test_benign_pickle_numpy_and_npz_have_no_findings(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    write_pickle(tmp_path / "d.pkl", {"weights": [1.0, 2.0], "name": "x", "arr": np.arange(4)})
    np.save(tmp_path / "a.npy", np.arange(10))
    np.savez(tmp_path / "z.npz", a=np.arange(3), b=np.ones(2))
    for name, loader in (("d.pkl", "pickle"), ("a.npy", "numpy"), ("z.npz", "numpy")):
        result = detonate(str(tmp_path / name), loader, limits=FAST)
        assert result.outcome == "completed", result.stderr
        assert result.findings() == [], name


def test_benign_torch_state_dict_has_no_findings(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "sd.pt")
    result = detonate(str(tmp_path / "sd.pt"), "torch", limits=SandboxLimits(memory_mb=2048))
    assert result.outcome == "completed" and result.findings() == []


def test_malicious_torch_checkpoint_is_flagged(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    canary = tmp_path / "canary"
    torch.save({"w": torch.zeros(2), "x": Reduce(os.system, f"touch {canary}")}, tmp_path / "evil.pt")
    result = detonate(str(tmp_path / "evil.pt"), "torch", limits=SandboxLimits(memory_mb=2048))
    assert "DYN-PROCESS-EXEC" in rules(result)
    assert not canary.exists()


def test_benign_sklearn_joblib_has_no_findings(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    linear_model = pytest.importorskip("sklearn.linear_model")
    model = linear_model.LogisticRegression().fit(np.random.rand(20, 3), [0, 1] * 10)
    joblib.dump(model, tmp_path / "m.joblib")
    result = detonate(str(tmp_path / "m.joblib"), "joblib", limits=SandboxLimits(memory_mb=2048))
    assert result.outcome == "completed" and result.findings() == []


def test_missing_framework_is_a_coverage_gap_not_a_fake(tmp_path: Path) -> None:
    if "onnxruntime" in sys.modules or _installed("onnxruntime"):
        pytest.skip("onnxruntime is installed here")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    result = detonate(str(tmp_path / "m.onnx"), "onnxruntime", limits=FAST)
    assert rules(result) == {"DYN-LOADER-UNAVAILABLE"}
    assert not any(r.get("kind") == "armed" for r in result.records)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_unshare_backend_also_contains_the_payload(tmp_path: Path) -> None:
    try:
        probe("unshare")
    except SandboxUnavailable as exc:
        pytest.skip(f"unshare backend unavailable here: {exc.message}")
    canary = tmp_path / "canary"
    model = write_pickle(tmp_path / "m.pkl", Reduce(os.system, f"touch {canary}"))
    result = detonate(str(model), "pickle", limits=FAST, backend="unshare")
    assert result.backend == "unshare" and "DYN-PROCESS-EXEC" in rules(result)
    assert not canary.exists()


def test_keras_lambda_fires_only_without_safe_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keras = pytest.importorskip("keras")
    from modelshield.sandbox.dynamic import detonate_all
    from modelshield.sandbox.plan import plans_for

    canary = tmp_path / "canary"
    monkeypatch.setenv("MODELSHIELD_BUILD", "1")  # the lambda is traced while building; it must not fire then
    body = (
        f"x if 'MODELSHIELD_BUILD' in __import__('os').environ else (__import__('os').system('touch {canary}'), x)[1]"
    )
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(eval(f"lambda x: {body}"))(inputs)).save(tmp_path / "lambda.keras")
    plans = plans_for(str(tmp_path / "lambda.keras"))
    assert [p.loader for p in plans] == ["keras-safe-mode", "keras-unsafe"]
    safe, unsafe = detonate_all(plans, limits=SandboxLimits(memory_mb=4096, wall_s=120), jobs=2)
    assert malicious(safe) == set()
    assert "DYN-CODE-EXEC" in malicious(unsafe)
    assert all("safe_mode=False" in f.message for f in unsafe.findings() if f.category is Category.MALICIOUS_CODE)
    assert not canary.exists()
