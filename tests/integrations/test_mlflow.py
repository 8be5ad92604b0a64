"""MLflow: ``scan mlflow://models/NAME/VERSION`` / ``runs:/`` and the promotion gate of examples/mlflow_gate.py.

A real local MLflow store is made per module: a SQLite tracking and registry database plus a file
artifact root in tmp. Model ``classifier`` gets version 1 with a generated malicious pickle (its
payload would only touch a canary; nothing loads it), versions 2 and 3 with benign pickles. The
installed CLI and the gate script run in subprocesses with ``MLFLOW_TRACKING_URI`` pointing at it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integrations._helpers import ROOT, benign_pickle, clean_env, malicious_pickle, modelshield_cli, run

# mlflow is imported inside the tests that drive the store (not at collection: it is a heavy import).
# Skipped without the extra on a developer's machine; in CI (CI set) a missing extra fails instead.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None and not os.environ.get("CI"),
    reason="needs the mlflow extra (installed by .ci/run)",
)


class Store:
    """The local MLflow store: its URI, canary, the runs and versions registered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.canary = root / "canary"
        self.runs: dict[str, str] = {}
        self.tmp = root / "tmp"
        self.tmp.mkdir()

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(**{"MLFLOW_TRACKING_URI": self.uri, "TMPDIR": str(self.tmp), **extra})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from mlflow import MlflowClient

    s = Store(tmp_path_factory.mktemp("mlflow"))
    client = MlflowClient(tracking_uri=s.uri, registry_uri=s.uri)
    experiment = client.create_experiment("gate", artifact_location=(s.root / "artifacts").as_uri())
    client.create_registered_model("classifier")
    payloads = {"evil": malicious_pickle(s.canary), "good": benign_pickle(), "good-too": benign_pickle() + b""}
    for label, data in payloads.items():
        run_id = client.create_run(experiment).info.run_id
        folder = s.root / "staging" / label / "model"
        folder.mkdir(parents=True)
        (folder / "model.pkl").write_bytes(data)
        (folder / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n")
        client.log_artifacts(run_id, str(folder), artifact_path="model")
        client.set_terminated(run_id)
        client.create_model_version("classifier", f"runs:/{run_id}/model", run_id=run_id)
        s.runs[label] = run_id
    client.set_registered_model_alias("classifier", "candidate", "2")
    return s


def scan(store: Store, target: str, **env: str) -> tuple[int, dict[str, Any], str]:
    result = run([*modelshield_cli(), "scan", "--no-progress", "-f", "json", target], env=store.env(**env), timeout=180)
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else {}), result.stderr


def rule_ids(report: dict[str, Any]) -> set[str]:
    return {f["rule_id"] for a in report["artifacts"] for f in a["findings"]}


def test_scan_registered_versions_and_runs(store: Store) -> None:
    code, report, err = scan(store, "mlflow://models/classifier/1")
    assert code == 1, err
    assert "PICKLE-UNSAFE-GLOBAL" in rule_ids(report)
    assert sorted(Path(a["path"]).name for a in report["artifacts"]) == ["MLmodel", "model.pkl"]
    assert report["targets"] == ["mlflow://models/classifier/1"]

    for target in ("mlflow://models/classifier/2", "models:/classifier/2", "mlflow://models/classifier@candidate"):
        code, report, err = scan(store, target)
        assert code == 0, (target, err)
        assert "PICKLE-UNSAFE-GLOBAL" not in rule_ids(report)

    code, report, err = scan(store, f"runs:/{store.runs['evil']}/model")
    assert code == 1 and "PICKLE-UNSAFE-GLOBAL" in rule_ids(report), err
    code, report, err = scan(store, f"mlflow://runs/{store.runs['evil']}/model/model.pkl")
    assert code == 1 and [Path(a["path"]).name for a in report["artifacts"]] == ["model.pkl"], err
    assert not store.canary.exists()
    assert list(store.tmp.iterdir()) == []  # the downloads were removed when the CLI exited


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mlflow://models/absent/1", "mlflow://models/absent/1: "),
        ("mlflow://models/classifier/99", "mlflow://models/classifier/99: "),
        ("mlflow://models/classifier@nope", "mlflow://models/classifier@nope: "),
        ("runs:/0123456789abcdef0123456789abcdef/model", "runs:/0123456789abcdef0123456789abcdef/model: "),
        (
            "mlflow://models/classifier",
            "mlflow://models/classifier: expected a model NAME and a VERSION number or @ALIAS",
        ),
    ],
)
def test_targets_that_do_not_exist_are_clear_errors(store: Store, target: str, message: str) -> None:
    code, report, err = scan(store, target)
    assert code == 2 and report == {}
    assert err.startswith(f"error: {message}") and "hint:" in err and "Traceback" not in err


def test_the_store_must_be_configured_and_exist(store: Store, tmp_path: Path) -> None:
    env = store.env()
    env.pop("MLFLOW_TRACKING_URI")
    result = run([*modelshield_cli(), "scan", "mlflow://models/classifier/2"], env=env)
    assert result.returncode == 2 and "MLFLOW_TRACKING_URI is not set" in result.stderr
    missing = tmp_path / "nothing-here.db"
    code, _, err = scan(store, "mlflow://models/classifier/2", MLFLOW_TRACKING_URI=f"sqlite:///{missing}")
    assert code == 2 and "does not exist" in err
    assert not missing.exists()  # never creates an empty store
    code, _, err = scan(store, f"runs:/{store.runs['good']}/nowhere")
    assert code == 2 and "Failed to download artifacts from path 'nowhere'" in err and "hint:" in err


def gate(store: Store, *args: str) -> tuple[int, str]:
    result = run([sys.executable, str(ROOT / "examples" / "mlflow_gate.py"), *args], env=store.env(), timeout=180)
    return result.returncode, result.stdout + result.stderr


def test_gate_promotes_only_a_verified_passing_attestation(store: Store, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    keys = tmp_path / "keys"
    keys.mkdir()
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    result = run([*modelshield_cli(), "keygen", "--out", str(keys / "release")])
    assert result.returncode == 0, result.stderr
    (trusted / "release.pub").write_bytes((keys / "release.pub").read_bytes())
    assert run([*modelshield_cli(), "keygen", "--out", str(keys / "stranger")]).returncode == 0

    def production() -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(client.get_model_version_by_alias("classifier", "production").version)
        except MlflowException:
            return None

    code, out = gate(store, "promote", "classifier", "2", "--trust", str(trusted))
    assert code == 1 and "REFUSED" in out and "UNSIGNED" in out and production() is None

    code, out = gate(store, "attest", "classifier", "1", "--key", str(keys / "release.key"))
    assert code == 1 and "attested verdict fail" in out  # signed evidence of the failure
    code, out = gate(store, "promote", "classifier", "1", "--trust", str(trusted))
    assert code == 1 and "POLICY-DENIED" in out and production() is None
    assert client.get_model_version("classifier", "1").tags["modelshield.gate"] == "POLICY-DENIED"

    code, out = gate(store, "attest", "classifier", "2", "--key", str(keys / "stranger.key"))
    assert code == 0, out
    code, out = gate(store, "promote", "classifier", "2", "--trust", str(trusted))
    assert code == 1 and "UNTRUSTED-SIGNER" in out and production() is None

    code, out = gate(store, "attest", "classifier", "2", "--key", str(keys / "release.key"))
    assert code == 0 and "attested verdict pass" in out, out
    assert client.get_model_version("classifier", "2").tags["modelshield.verdict"] == "pass"
    code, out = gate(store, "promote", "classifier", "2", "--trust", str(trusted), "--stage", "Production")
    assert code == 0 and "PROMOTED" in out, out
    assert production() == "2"
    assert client.get_model_version("classifier", "2").current_stage == "Production"

    # version 3: attested while benign, then its stored artifact is swapped for the malicious pickle
    code, out = gate(store, "attest", "classifier", "3", "--key", str(keys / "release.key"))
    assert code == 0, out
    stored = store.root / "artifacts" / store.runs["good-too"] / "artifacts" / "model" / "model.pkl"
    assert stored.is_file()
    stored.write_bytes(malicious_pickle(store.canary))
    code, out = gate(store, "promote", "classifier", "3", "--trust", str(trusted))
    assert code == 1 and "TAMPERED" in out and production() == "2"

    code, out = gate(store, "promote", "classifier", "42", "--trust", str(trusted))
    assert code == 2 and "error: mlflow://models/classifier/42:" in out
    assert not store.canary.exists()
