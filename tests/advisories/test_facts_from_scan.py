"""Framework facts gathered during the scan equal what reading the file again would give.

The zip reader hands the members it already holds to the vulnerability stage (no second parse of
the archive); every other file is read by ``extract_file`` in the scanning worker. Either way the
facts must be the ones ``extract_file`` finds on its own.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from modelshield.advisories.requirements import extract_file
from modelshield.scan import ScanOptions, collect_blobs, scan_file

torch = pytest.importorskip("torch")


def _facts_of_scan(path: Path) -> object:
    [blob] = collect_blobs([str(path)])
    artifacts = scan_file(blob, ScanOptions())
    assert artifacts[0].facts is not None, "the scan gathers facts for every top-level file"
    return artifacts[0].facts[0] if artifacts[0].facts else None


def _keras_like(path: Path, version: str) -> None:
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "module": "keras.layers"}]}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": version, "date_saved": "2026-01-01"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("facts")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    out = {
        "state_dict": folder / "small.pt",
        "big_state_dict": folder / "big.pt",
        "torchscript": folder / "scripted.pt",
        "keras": folder / "model.keras",
        "sklearn_pickle": folder / "est.pkl",
        "prepended": folder / "prepended.pt",
    }
    torch.save(model.state_dict(), out["state_dict"])
    torch.save({f"w{i}": torch.zeros(2) for i in range(400)}, out["big_state_dict"])  # data.pkl > 4 KiB
    torch.jit.save(torch.jit.script(model), str(out["torchscript"]))
    _keras_like(out["keras"], "3.5.0")
    out["sklearn_pickle"].write_bytes(pickle.dumps({"_sklearn_version": "1.3.2", "sklearn": True}, protocol=4))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    out["prepended"].write_bytes(b"#!/bin/sh\n" + buffer.getvalue())
    return out


@pytest.mark.parametrize(
    "name", ["state_dict", "big_state_dict", "torchscript", "keras", "sklearn_pickle", "prepended"]
)
def test_scan_facts_equal_a_fresh_read(samples: dict[str, Path], name: str) -> None:
    path = samples[name]
    [blob] = collect_blobs([str(path)])
    fmt = scan_file(blob, ScanOptions())[0].format
    assert _facts_of_scan(path) == extract_file(path, fmt)


def test_small_torch_zip_facts_come_from_the_reader(samples: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import modelshield.advisories.requirements as requirements

    def refuse(*_args: object) -> None:
        raise AssertionError("the archive was read a second time")

    monkeypatch.setattr(requirements, "extract_file", refuse)
    facts = _facts_of_scan(samples["state_dict"])
    assert facts is not None
    assert facts.kind == "torch-zip" and "torch-pickle" in facts.patterns  # type: ignore[attr-defined]


def test_gguf_facts_from_the_reader_equal_a_fresh_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    import modelshield.advisories.requirements as requirements

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_string("general.license", "apache-2.0")
    writer.add_array("general.tags", ["a", "b", "c"])
    writer.add_uint32("general.file_type", 7)
    writer.add_bool("general.quantized", True)
    writer.add_token_list(["<s>", "</s>", "hello"])
    writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    writer.add_tensor("w", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    fresh = extract_file(path, "gguf")
    monkeypatch.setattr(requirements, "extract_file", lambda *_a: pytest.fail("read a second time"))
    facts = _facts_of_scan(path)
    assert facts == fresh
    assert "gguf-chat-template" in facts.patterns and facts.details["general.tags"] == "[3 items]"  # type: ignore[attr-defined]
