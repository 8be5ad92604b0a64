"""The guard: verify first, load through the scanner's allowlist, never run a hostile pickle.

Malicious samples would only touch a canary file in tmp_path; every test asserts it never appears.
"""

from __future__ import annotations

import importlib.machinery
import os
import pickle
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelshield import guard
from modelshield.attest import allow_any, scan_and_attest
from modelshield.attest.signers import generate, write_keypair
from modelshield.guard import GuardRefused

torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")
linear_model = pytest.importorskip("sklearn.linear_model")


class Evil:
    """Pickles as a call to os.system; building the pickle never runs it."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.canary}",))


@pytest.fixture(scope="session")
def trust(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private key, trust store folder) made for this session."""
    root = tmp_path_factory.mktemp("guard-keys")
    private, public = write_keypair(root / "release", generate())
    store = root / "trust"
    store.mkdir()
    shutil.copy(public, store / "release.pub")
    return private, store


@pytest.fixture(scope="session")
def real_models(tmp_path_factory: pytest.TempPathFactory, trust: tuple[Path, Path]) -> dict[str, Path]:
    """Real torch, sklearn (joblib) and numpy files, each attested (verdict pass)."""
    root = tmp_path_factory.mktemp("real")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    torch.save(net.state_dict(), root / "net.pt")
    rng = np.random.default_rng(0)
    features = rng.random((40, 4))
    labels = (features[:, 0] > 0.5).astype(int)
    joblib.dump(linear_model.LogisticRegression().fit(features, labels), root / "clf.joblib")
    np.save(root / "features.npy", features)
    with open(root / "meta.pkl", "wb") as stream:
        pickle.dump({"labels": ["a", "b"], "version": 3}, stream)
    files = {p.stem: p for p in (root / "net.pt", root / "clf.joblib", root / "features.npy", root / "meta.pkl")}
    for path in files.values():
        scan_and_attest(path, trust[0], card=False)
    return files


def test_real_models_load_unchanged(real_models: dict[str, Path], trust: tuple[Path, Path]) -> None:
    store = trust[1]
    state = guard.load(real_models["net"], trust=store)
    reference = torch.load(real_models["net"], weights_only=True)
    assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state)
    clf = guard.load_joblib(real_models["clf"], trust=store, policy=allow_any)
    probe = np.random.default_rng(1).random((5, 4))
    assert (clf.predict(probe) == joblib.load(real_models["clf"]).predict(probe)).all()
    assert np.array_equal(
        guard.load_numpy(real_models["features"], trust=store, policy=allow_any), np.load(real_models["features"])
    )
    assert guard.load(real_models["meta"], trust=store) == {"labels": ["a", "b"], "version": 3}


def _evil_files(folder: Path, canary: Path) -> dict[str, Path]:
    folder.mkdir()
    with open(folder / "evil.pkl", "wb") as stream:
        pickle.dump(Evil(canary), stream, protocol=2)
    torch.save({"weights": torch.zeros(2), "payload": Evil(canary)}, folder / "evil.pt")
    joblib.dump({"coef": np.zeros(3), "payload": Evil(canary)}, folder / "evil.joblib")
    return {p.suffix: p for p in folder.iterdir()}


def test_malicious_pickles_refused_even_with_a_lenient_valid_attestation(
    tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    canary = tmp_path / "canary"
    for path in _evil_files(tmp_path / "evil", canary).values():
        report, _ = scan_and_attest(path, trust[0], card=False)
        assert report.verdict.value == "fail"
        with pytest.raises(GuardRefused) as refused:
            guard.load(path, trust=trust[1], policy=allow_any)
        assert refused.value.outcome == "UNSAFE-GLOBAL", path
        assert "system" in refused.value.message and "not allowed" in refused.value.message
        with pytest.raises(GuardRefused) as denied:
            guard.load(path, trust=trust[1])
        assert denied.value.outcome == "POLICY-DENIED"
    assert not canary.exists()


def test_unattested_and_tampered_files_are_refused(tmp_path: Path, trust: tuple[Path, Path]) -> None:
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(GuardRefused, match="UNSIGNED"):
        guard.load(path, trust=trust[1])
    scan_and_attest(path, trust[0], card=False)
    assert guard.load(path, trust=trust[1]) == [1, 2, 3]
    path.write_bytes(pickle.dumps([1, 2, 4]))
    with pytest.raises(GuardRefused) as refused:
        guard.load(path, trust=trust[1])
    assert refused.value.outcome == "TAMPERED" and "changed: m.pkl" in refused.value.message


def test_file_inside_an_attested_folder(tmp_path: Path, trust: tuple[Path, Path]) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.pkl").write_bytes(pickle.dumps({"x": 1}))
    (folder / "b.pkl").write_bytes(pickle.dumps({"y": 2}))
    scan_and_attest(folder, trust[0], card=False)
    (folder / "b.pkl").write_bytes(pickle.dumps({"y": 3}))  # another file tampered: a.pkl still verifies
    assert guard.load(folder / "sub" / "a.pkl", trust=trust[1]) == {"x": 1}
    with pytest.raises(GuardRefused, match="TAMPERED"):
        guard.load(folder / "b.pkl", trust=trust[1])


def test_the_guard_hashes_exactly_the_bytes_it_loads(tmp_path: Path, trust: tuple[Path, Path]) -> None:
    """A stream whose name is an attested file but whose bytes are hostile: the bytes read are judged."""
    canary = tmp_path / "canary"
    good = tmp_path / "model.pkl"
    good.write_bytes(pickle.dumps({"ok": True}))
    scan_and_attest(good, trust[0], card=False)
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps(Evil(canary), protocol=2))
    guard.install(trust=trust[1], policy=allow_any, transformers=False)
    try:
        with open(hostile, "rb") as stream:
            swapped = types.SimpleNamespace(name=str(good), read=stream.read)
            with pytest.raises(GuardRefused) as refused:
                pickle.load(swapped)  # type: ignore[arg-type]
        assert refused.value.outcome == "TAMPERED"
        with open(good, "rb") as stream:
            assert pickle.load(stream) == {"ok": True}
    finally:
        guard.uninstall()
    assert not canary.exists()


def test_install_wraps_loaders_and_uninstall_restores(
    real_models: dict[str, Path], tmp_path: Path, trust: tuple[Path, Path]
) -> None:
    originals = (torch.load, joblib.load, pickle.load)
    unattested = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(1)}, unattested)
    guard.install(trust=trust[1], policy=allow_any, transformers=False)
    try:
        assert torch.equal(torch.load(real_models["net"])["0.weight"], originals[0](real_models["net"])["0.weight"])
        assert joblib.load(real_models["clf"]).__class__.__name__ == "LogisticRegression"
        with pytest.raises(GuardRefused, match="UNSIGNED"):
            torch.load(unattested)
        with open(real_models["meta"], "rb") as stream:
            assert pickle.load(stream)["version"] == 3
        with pytest.raises(GuardRefused, match="no file behind it"):
            pickle.load(__import__("io").BytesIO(pickle.dumps(1)))
    finally:
        guard.uninstall()
    assert (torch.load, joblib.load, pickle.load) == originals


def test_install_wraps_transformers_from_pretrained(
    tmp_path: Path, trust: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    class PreTrainedModel:
        @classmethod
        def from_pretrained(cls, name_or_path: str) -> str:
            calls.append(str(name_or_path))
            return "model"

    fake = types.ModuleType("transformers")
    fake.__spec__ = importlib.machinery.ModuleSpec("transformers", None)
    fake.PreTrainedModel = PreTrainedModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "transformers", fake)
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    guard.install(trust=trust[1])
    try:
        with pytest.raises(GuardRefused, match="UNSIGNED"):
            PreTrainedModel.from_pretrained(str(folder))
        with pytest.raises(GuardRefused, match="not a local folder"):
            PreTrainedModel.from_pretrained("org/some-model")
        assert calls == []
        scan_and_attest(folder, trust[0], card=False)
        assert PreTrainedModel.from_pretrained(str(folder)) == "model" and calls == [str(folder)]
    finally:
        guard.uninstall()
