"""Helpers of the service API and fault tests: uploads, waiting for final states, the CLI's verify."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from tests.service.live import LiveServer, modelshield_argv

FINAL = {"passed", "warn", "failed", "scan_failed", "revoked"}


def upload(client: httpx.Client, name: str, files: list[Path], **fields: str) -> httpx.Response:
    """POST /api/v1/models as multipart: ``name`` + one ``file`` part per file (its name as the filename)."""
    parts = [("file", (f.name, f.read_bytes(), "application/octet-stream")) for f in files]
    return client.post("/api/v1/models", data={"name": name, **fields}, files=parts)


def upload_named(client: httpx.Client, name: str, named: dict[str, bytes], **fields: str) -> httpx.Response:
    """POST /api/v1/models with files given as {relative name: bytes}."""
    parts = [("file", (rel, data, "application/octet-stream")) for rel, data in named.items()]
    return client.post("/api/v1/models", data={"name": name, **fields}, files=parts)


def wait_model(
    client: httpx.Client, model_id: int, timeout: float = 60, until: set[str] | None = None
) -> dict[str, Any]:
    """Poll the model until its status is one of ``until`` (a final status by default); returns its JSON."""
    wanted = until or FINAL
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = client.get(f"/api/v1/models/{model_id}")
        if answer.status_code == 200:
            body = answer.json()
            if body["status"] in wanted:
                return body
        time.sleep(0.1)
    raise AssertionError(f"model {model_id} did not reach {sorted(wanted)} in {timeout} s: {body.get('status')}")


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``predicate()`` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout} s")


def error_code(answer: httpx.Response) -> str:
    """The ``error.code`` of a JSON error answer (and that it has the one error shape)."""
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in answer.text
    return str(body["error"]["code"])


def verify_cli(folder: Path, trust: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``modelshield verify FOLDER --trust TRUST ...`` in a fresh process."""
    return subprocess.run(
        [*modelshield_argv(), "verify", str(folder), "--trust", str(trust), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def model_folder(client: httpx.Client, model_id: int, files: dict[str, bytes], dest: Path, server: LiveServer) -> Path:
    """The model as a consumer has it: its files, the service's attestation sidecar and card; plus the key."""
    dest.mkdir(parents=True)
    for rel, data in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    attestation = client.get(f"/api/v1/models/{model_id}/attestation")
    assert attestation.status_code == 200, attestation.text
    (dest / "modelshield.attestation.dsse.json").write_bytes(attestation.content)
    card = client.get(f"/api/v1/models/{model_id}/card")
    assert card.status_code == 200
    (dest / "README.md").write_bytes(card.content)
    return dest


def trust_file(server: LiveServer, dest: Path) -> Path:
    """The service's public keys as a trust store file, fetched anonymously."""
    answer = httpx.get(f"{server.base_url}/api/v1/keys.pem", timeout=10)
    assert answer.status_code == 200
    dest.write_bytes(answer.content)
    return dest


def blob_files(server: LiveServer) -> set[str]:
    """Every stored blob of the server's data dir."""
    return {p.name for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}


def temp_files(server: LiveServer) -> list[Path]:
    """Uploads in progress (must be none after any request)."""
    folder = server.data_dir / "tmp"
    return [p for p in folder.iterdir()] if folder.is_dir() else []
