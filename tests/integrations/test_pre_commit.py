"""The pre-commit hooks of .pre-commit-hooks.yaml, run by pre-commit itself (``pre-commit try-repo``).

The hooks repo is a fresh git repo holding this working tree's package (pyproject, src/, README,
.pre-commit-hooks.yaml), so pre-commit installs exactly the code under test into its own venv with
pip, as it would for a user's ``repo:`` entry. The project repo is a temp git repo with a generated
malicious pickle (its payload would only touch a canary here; nothing loads it), a benign pickle,
a script and text files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from tests.integrations._helpers import ROOT, benign_pickle, clean_env, git, malicious_pickle, package_copy, run


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repo with this working tree's package and hooks file, committed (try-repo uses HEAD)."""
    repo = package_copy(tmp_path_factory.mktemp("hooks-repo"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "modelshield under test")
    return repo


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A user's repo: benign model, README, a shell script, and (staged by each test) malicious pickles."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    (root / "models").mkdir()
    (root / "models" / "benign.pkl").write_bytes(benign_pickle())
    (root / "README.md").write_text("# a project with a model\n")
    (root / "train.sh").write_text("#!/bin/sh\npython train.py\n")
    (root / "train.py").write_text("print('training')\n")
    (root / "config.json").write_text('{"lr": 0.1}\n')
    return root


def try_repo(hooks: Path, project: Path, hook: str) -> tuple[int, str]:
    """``pre-commit try-repo HOOKS HOOK --all-files`` in ``project``: (exit code, output)."""
    env = clean_env(PRE_COMMIT_HOME=str(project.parent / "pre-commit-home"))
    result = run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hooks), hook, "--all-files", "--color", "never"],
        cwd=project,
        env=env,
        timeout=600,
    )
    return result.returncode, result.stdout + result.stderr


def test_hooks_file_is_valid() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"modelshield", "modelshield-all"}
    for hook in hooks:
        assert hook["language"] == "python" and hook["entry"].startswith("modelshield scan")
        assert {"name", "entry", "language"} <= set(hook)
    import re

    files = re.compile(by_id["modelshield"]["files"])
    for name in ("a.pt", "b.PTH", "c.bin", "d.pkl", "e.joblib", "f.npy", "g.h5", "h.keras", "i.onnx", "j.gguf"):
        assert files.search(name), name
    for name in ("k.safetensors", "l.ckpt", "m.pb", "n.tflite", "o.mlmodel", "p.zip", "q.npz", "r.pickle"):
        assert files.search(name), name
    assert not files.search("README.md") and not files.search("train.py") and not files.search("pt")
    assert "--only-models" in by_id["modelshield-all"]["entry"] and "files" not in by_id["modelshield-all"]


def test_model_file_hook_fails_on_the_malicious_pickle_and_passes_the_benign(hooks_repo: Path, project: Path) -> None:
    canary = project.parent / "canary"
    (project / "models" / "evil.pkl").write_bytes(malicious_pickle(canary))
    git(project, "add", "-A")
    code, out = try_repo(hooks_repo, project, "modelshield")
    assert code == 1, out
    assert "Failed" in out and "PICKLE-UNSAFE-GLOBAL" in out and "os.system" in out
    assert "FAIL  models/evil.pkl" in out
    assert "PASS  models/benign.pkl" in out  # the benign model is scanned in the same run and passes
    assert "train.sh" not in out  # not a model file name: not handed to the hook
    assert not canary.exists()


def test_by_content_hook_catches_an_extensionless_pickle_and_skips_non_models(hooks_repo: Path, project: Path) -> None:
    canary = project.parent / "canary"
    git(project, "add", "-A")
    code, out = try_repo(hooks_repo, project, "modelshield-all")
    assert code == 0, out  # the shell script (a finding if it were a model) and text files are skipped
    assert "Passed" in out and "SHEBANG" not in out

    (project / "checkpoint").write_bytes(malicious_pickle(canary))  # no extension: found by content
    git(project, "add", "-A")
    code, out = try_repo(hooks_repo, project, "modelshield-all")
    assert code == 1, out
    assert "FAIL  checkpoint  [pickle" in out and "PICKLE-UNSAFE-GLOBAL" in out
    assert "SHEBANG" not in out and "README.md" not in out
    assert not canary.exists()
