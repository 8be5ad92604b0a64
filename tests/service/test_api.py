"""The catalog's API against a real ``modelshield serve`` (subprocess, real workers), on SQLite and PostgreSQL.

One server per module and database kind. Every scan goes through the real pipeline in a real worker;
the malicious pickle would touch a canary file if anything ever loaded it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.service import models
from tests.service.live import LiveServer
from tests.service.service_helpers import (
    blob_files,
    error_code,
    model_folder,
    trust_file,
    upload,
    upload_named,
    verify_cli,
    wait_for,
    wait_model,
)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local Hugging Face cache holding ``acme/tiny`` (a safetensors file and its config)."""
    root = tmp_path_factory.mktemp("hf-cache")
    repo = root / "models--acme--tiny"
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / ("c0ffee" * 6 + "abcd")
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snapshot.name)
    weights = models.benign_safetensors(blobs, 41, "blob-weights")
    (snapshot / "model.safetensors").symlink_to(weights)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    return root


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory, hf_cache: Path) -> Iterator[LiveServer]:
    """One catalog (1 worker, 1 s scheduler tick, the test HF cache) per module and database kind."""
    live = LiveServer.start(
        tmp_path_factory.mktemp("serve"),
        database_url,
        workers=1,
        env={"MODELSHIELD_SCHEDULER_TICK": "1", "HF_HUB_CACHE": str(hf_cache)},
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def publisher(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.token("publisher", "pat-publisher")) as client:
        yield client


@pytest.fixture(scope="module")
def benign(server: LiveServer, publisher: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A benign model (safetensors + a plain pickle), registered and scanned."""
    folder = tmp_path_factory.mktemp("benign")
    files = [models.benign_safetensors(folder, 1), models.benign_pickle(folder, 1)]
    answer = upload(publisher, "tiny-benign", files)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "pending" and created["name"] == "tiny-benign"
    body = wait_model(publisher, created["id"])
    return {"model": body, "files": {f.name: f.read_bytes() for f in files}}


@pytest.fixture(scope="module")
def malicious(publisher: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A malicious pickle (would touch a canary) next to a benign safetensors file."""
    folder = tmp_path_factory.mktemp("malicious")
    canary = folder / "CANARY-touched-if-loaded"
    files = [models.malicious_pickle(folder, canary, "pytorch_model.pkl"), models.benign_safetensors(folder, 2)]
    answer = upload(publisher, "evil-checkpoint", files)
    assert answer.status_code == 201, answer.text
    return {"model": wait_model(publisher, answer.json()["id"]), "canary": canary}


def files_by_path(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in model["files"]}


# --------------------------------------------------------------------------------------------- health, auth


def test_healthz_reports_database_workers_and_queue(server: LiveServer) -> None:
    def alive() -> dict[str, Any] | None:
        body = httpx.get(f"{server.base_url}/healthz", timeout=5).json()
        return body if body["workers"]["alive"] >= 1 else None

    body = wait_for(alive, 20, "a worker heartbeat")
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["workers"] == {"alive": 1, "expected": 1}
    assert set(body["queue"]) == {"queued", "running"}


def test_anonymous_may_read_badges_and_keys_only(server: LiveServer, benign: dict[str, Any]) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        for path in ("/api/v1/models", f"/api/v1/models/{benign['model']['id']}", "/api/v1/audit", "/api/v1/waivers"):
            answer = anonymous.get(path)
            assert answer.status_code == 401 and error_code(answer) == "unauthorized", path
        assert anonymous.post("/api/v1/models", data={"name": "x"}).status_code == 401
        bogus = anonymous.get("/api/v1/models", headers={"Authorization": "Bearer msk_not-a-real-token-at-all"})
        assert bogus.status_code == 401 and error_code(bogus) == "unauthorized"
        assert anonymous.get("/api/v1/models", headers={"Authorization": "Basic eDp5"}).status_code == 401
        assert anonymous.get("/badge/tiny-benign.svg").status_code == 200
        assert anonymous.get("/badge/tiny-benign.json").status_code == 200
        keys = anonymous.get("/api/v1/keys").json()["keys"]
        assert len(keys) == 1 and keys[0]["algorithm"] == "ed25519" and "BEGIN PUBLIC KEY" in keys[0]["pem"]
        assert anonymous.get("/api/v1/revocations").status_code == 200
        assert anonymous.get("/ui/models", follow_redirects=False).status_code == 303  # to the login page


def test_roles_viewer_reads_publisher_registers_admin_governs(
    server: LiveServer, publisher: httpx.Client, benign: dict[str, Any], tmp_path: Path
) -> None:
    model_id = benign["model"]["id"]
    with server.client(server.token("viewer", "val-viewer")) as viewer:
        assert viewer.get("/api/v1/me").json() == {
            "id": viewer.get("/api/v1/me").json()["id"],
            "name": "val-viewer",
            "role": "viewer",
        }
        assert viewer.get(f"/api/v1/models/{model_id}").status_code == 200
        denied = upload(viewer, "viewer-upload", [models.benign_pickle(tmp_path, 9)])
        assert denied.status_code == 403 and error_code(denied) == "insufficient_role"
        assert viewer.post(f"/api/v1/models/{model_id}/rescan").status_code == 403
        assert (
            viewer.post(
                f"/api/v1/models/{model_id}/waivers", json={"rule": "x", "reason": "y", "expires_at": "2099-01-01"}
            ).status_code
            == 403
        )
    for path, body in (
        (f"/api/v1/models/{model_id}/revoke", {"reason": "no"}),
        ("/api/v1/tokens", {"role": "admin", "name": "me"}),
    ):
        answer = publisher.post(path, json=body)
        assert answer.status_code == 403 and error_code(answer) == "insufficient_role", path
    assert (
        publisher.put("/api/v1/policy", content="version: 1\n", headers={"Content-Type": "text/plain"}).status_code
        == 403
    )
    assert publisher.get("/api/v1/tokens").status_code == 403
    path_registration = publisher.post("/api/v1/models", json={"name": "from-path", "path": str(tmp_path)})
    assert path_registration.status_code == 403 and error_code(path_registration) == "insufficient_role"


# --------------------------------------------------------------------------------------------- scans


def test_benign_model_passes_and_its_attestation_verifies_offline(
    server: LiveServer, admin: httpx.Client, benign: dict[str, Any], tmp_path: Path
) -> None:
    model = benign["model"]
    assert model["status"] == "passed", model["status_reason"]
    files = files_by_path(model)
    assert set(files) == {"model.safetensors", "weights.pkl"}
    for name, data in benign["files"].items():
        assert files[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert files[name]["indicator"] == "safe"
    assert model["decision"]["decision"] == "allow" and model["decision"]["profile"] == "internal"
    assert model["attestation_url"] == f"/api/v1/models/{model['id']}/attestation"
    assert "/work/" not in json.dumps(model) and str(server.data_dir) not in json.dumps(model)  # no server paths
    folder = model_folder(admin, model["id"], benign["files"], tmp_path / "tiny-benign", server)
    trust = trust_file(server, tmp_path / "service.pub")
    result = verify_cli(folder, trust)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VERIFIED:") and "signed by modelshield-service" in result.stdout
    (folder / "weights.pkl").write_bytes(pickle.dumps({"weights": [6.66]}))  # a consumer-side swap is caught
    tampered = verify_cli(folder, trust)
    assert tampered.returncode == 10 and "TAMPERED" in tampered.stdout
    svg = httpx.get(f"{server.base_url}/badge/tiny-benign.svg", timeout=10)
    assert svg.headers["content-type"].startswith("image/svg+xml") and ">passed<" in svg.text
    assert "<script" not in svg.text
    shields = httpx.get(f"{server.base_url}/badge/{model['id']}.json", timeout=10).json()
    assert shields == {"schemaVersion": 1, "label": "modelshield", "message": "passed", "color": "brightgreen"}
    report = admin.get(f"/api/v1/models/{model['id']}/report").json()
    assert report["verdict"] == "pass" and report["advisories"]["snapshot"]
    history = admin.get(f"/api/v1/models/{model['id']}/history").json()["history"]
    assert [h["kind"] for h in history][-1] == "scan" and history[-1]["outcome"] == "passed"


def test_malicious_model_fails_with_an_unsafe_file_and_never_runs(
    server: LiveServer, admin: httpx.Client, malicious: dict[str, Any], tmp_path: Path
) -> None:
    model = malicious["model"]
    assert model["status"] == "failed", model["status_reason"]
    files = files_by_path(model)
    assert files["pytorch_model.pkl"]["indicator"] == "unsafe"
    assert files["model.safetensors"]["indicator"] == "safe"
    critical = [f for f in files["pytorch_model.pkl"]["findings"] if f["severity"] == "critical"]
    assert critical and critical[0]["rule_id"] == "PICKLE-UNSAFE-GLOBAL"
    assert model["decision"]["decision"] == "deny" and "max_severity" in model["decision"]["failed"]
    badge = httpx.get(f"{server.base_url}/badge/evil-checkpoint.svg", timeout=10).text
    assert ">failed<" in badge
    statement = admin.get(f"/api/v1/models/{model['id']}/attestation").json()
    assert statement["payloadType"] == "application/vnd.in-toto+json"
    assert not malicious["canary"].exists(), "the service executed the malicious pickle"
    failed = admin.get("/api/v1/models", params={"status": "failed"}).json()
    assert "evil-checkpoint" in {m["name"] for m in failed["models"]}


def test_the_same_bytes_are_stored_and_scanned_once(
    server: LiveServer, publisher: httpx.Client, benign: dict[str, Any], tmp_path: Path
) -> None:
    before = blob_files(server)
    for name, data in benign["files"].items():
        (tmp_path / name).write_bytes(data)
    answer = upload(publisher, "tiny-benign-again", [tmp_path / n for n in benign["files"]])
    assert answer.status_code == 201
    again = wait_model(publisher, answer.json()["id"])
    assert again["status"] == "passed"
    assert blob_files(server) == before  # nothing new stored
    history = publisher.get(f"/api/v1/models/{again['id']}/history").json()["history"]
    assert "scanned once, result reused" in history[0]["detail"]
    assert again["root_digest"] == benign["model"]["root_digest"]


def test_files_keep_their_folders_and_the_card_is_not_a_subject(
    server: LiveServer, publisher: httpx.Client, tmp_path: Path
) -> None:
    named = {
        "README.md": b"---\nlicense: mit\n---\n# tiny\n",
        "tokenizer/vocab.json": json.dumps({"a": 1}).encode(),
        "weights/model.safetensors": models.benign_safetensors(tmp_path, 3).read_bytes(),
    }
    answer = upload_named(publisher, "nested-layout", named)
    assert answer.status_code == 201, answer.text
    model = wait_model(publisher, answer.json()["id"])
    assert set(files_by_path(model)) == set(named)
    assert model["status"] in {"passed", "warn"}, model["status_reason"]
    card = publisher.get(f"/api/v1/models/{model['id']}/card").text
    assert card.startswith("---\nlicense: mit\n") and "modelshield:" in card and "# tiny" in card
    folder = model_folder(publisher, model["id"], named, tmp_path / "nested", server)
    (folder / "README.md").write_bytes(card.encode())
    result = verify_cli(folder, trust_file(server, tmp_path / "k.pub"), "--policy", "any")
    assert result.returncode == 0, result.stdout + result.stderr


def test_registration_from_the_hf_cache_and_a_server_path(
    server: LiveServer, admin: httpx.Client, publisher: httpx.Client, tmp_path: Path
) -> None:
    answer = publisher.post("/api/v1/models", json={"name": "acme-tiny", "hf_cache_id": "acme/tiny"})
    assert answer.status_code == 201, answer.text
    model = wait_model(publisher, answer.json()["id"])
    assert set(files_by_path(model)) == {"config.json", "model.safetensors"}
    assert model["source"] == {"kind": "hf", "ref": "acme/tiny"}
    missing = publisher.post("/api/v1/models", json={"name": "not-cached", "hf_cache_id": "acme/absent"})
    assert missing.status_code == 422 and error_code(missing) == "not_in_cache"
    assert str(tmp_path) not in missing.text
    source = tmp_path / "on-server"
    source.mkdir()
    models.benign_safetensors(source, 5)
    by_path = admin.post("/api/v1/models", json={"name": "from-server-path", "path": str(source)})
    assert by_path.status_code == 201, by_path.text
    assert wait_model(admin, by_path.json()["id"])["status"] == "passed"
    relative = admin.post("/api/v1/models", json={"name": "relative-path", "path": "some/where"})
    assert relative.status_code == 422
    both = admin.post("/api/v1/models", json={"name": "both", "path": str(source), "hf_cache_id": "acme/tiny"})
    assert both.status_code == 422


def test_a_profile_chosen_at_registration_governs_the_decision(publisher: httpx.Client, tmp_path: Path) -> None:
    answer = upload(publisher, "pickle-in-production", [models.benign_pickle(tmp_path, 4)], profile="production")
    assert answer.status_code == 201
    model = wait_model(publisher, answer.json()["id"])
    assert model["profile"] == "production" and model["status"] == "failed"
    assert "denied_formats" in model["decision"]["failed"]
    assert files_by_path(model)["weights.pkl"]["indicator"] == "safe"  # the file is clean; the profile says no
    unknown = upload(publisher, "bad-profile", [models.benign_pickle(tmp_path, 4)], profile="yolo")
    assert unknown.status_code == 422 and error_code(unknown) == "invalid_profile"


# --------------------------------------------------------------------------------------------- governance


def test_waivers_need_a_second_person_and_change_the_decision(
    server: LiveServer, admin: httpx.Client, publisher: httpx.Client, tmp_path: Path
) -> None:
    answer = upload(publisher, "waived-pickle", [models.benign_pickle(tmp_path, 6)], profile="production")
    model = wait_model(publisher, answer.json()["id"])
    assert model["status"] == "failed"
    request = {
        "rule": "denied_formats",
        "reason": "legacy checkpoint; conversion tracked in TICKET-1",
        "expires_at": "2099-12-31",
    }
    too_long = publisher.post(f"/api/v1/models/{model['id']}/waivers", json=request)
    assert too_long.status_code == 422 and error_code(too_long) == "invalid_expiry"
    import datetime as dt

    request["expires_at"] = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    created = publisher.post(f"/api/v1/models/{model['id']}/waivers", json=request)
    assert created.status_code == 201, created.text
    waiver = created.json()
    assert waiver["state"] == "requested" and waiver["requested_by"] == "pat-publisher"
    own = publisher.post(f"/api/v1/waivers/{waiver['id']}/approve")
    assert own.status_code == 403 and error_code(own) == "self_approval"
    with server.client(server.token("publisher", "pat-publisher")) as same_person_other_token:
        again = same_person_other_token.post(f"/api/v1/waivers/{waiver['id']}/approve")
        assert again.status_code == 403 and error_code(again) == "self_approval"
    approved = admin.post(f"/api/v1/waivers/{waiver['id']}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert admin.post(f"/api/v1/waivers/{waiver['id']}/approve").status_code == 409
    after = wait_for(
        lambda: (m := publisher.get(f"/api/v1/models/{model['id']}").json())["status"] == "warn" and m,
        60,
        "re-evaluation",
    )
    assert after["decision"]["decision"] == "allow" and after["decision"]["waivers_applied"]
    listed = admin.get("/api/v1/waivers", params={"state": "approved"}).json()["waivers"]
    assert waiver["id"] in {w["id"] for w in listed}


def test_expired_waivers_stop_applying(
    server: LiveServer, admin: httpx.Client, publisher: httpx.Client, tmp_path: Path
) -> None:
    import datetime as dt

    answer = upload(publisher, "expiring-waiver", [models.benign_pickle(tmp_path, 7)], profile="production")
    model = wait_model(publisher, answer.json()["id"])
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    waiver = publisher.post(
        f"/api/v1/models/{model['id']}/waivers",
        json={"rule": "denied_formats", "reason": "short", "expires_at": tomorrow},
    ).json()
    admin.post(f"/api/v1/waivers/{waiver['id']}/approve")
    wait_for(lambda: publisher.get(f"/api/v1/models/{model['id']}").json()["status"] == "warn", 60, "waived")
    yesterday = dt.date.today() - dt.timedelta(days=1)
    run_sql(server, "UPDATE waivers SET expires_on = :d WHERE id = :i", d=yesterday, i=waiver["id"])  # time passes
    wait_for(lambda: publisher.get(f"/api/v1/models/{model['id']}").json()["status"] == "failed", 60, "waiver expiry")
    states = {w["id"]: w["state"] for w in admin.get("/api/v1/waivers").json()["waivers"]}
    assert states[waiver["id"]] == "expired"
    actions = {
        e["action"] for e in admin.get("/api/v1/audit", params={"target": f"model:{model['id']}"}).json()["entries"]
    }
    assert {"waiver.request", "waiver.approve", "waiver.expire", "scan.complete"} <= actions


def run_sql(server: LiveServer, statement: str, **params: Any) -> None:
    """Change the database behind the server's back (what time or an attacker would do)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


def test_models_are_evaluated_again_when_rules_or_advisory_data_change(
    server: LiveServer, publisher: httpx.Client, tmp_path: Path
) -> None:
    files = {"model.safetensors": models.benign_safetensors(tmp_path, 61).read_bytes()}
    model = wait_model(publisher, upload_named(publisher, "re-evaluated", files).json()["id"])
    first = publisher.get(f"/api/v1/models/{model['id']}/history").json()["history"][0]
    # As if the scan had run under older rules, then older advisory data (an upgrade, `advisories update`).
    for column, value, reason in (
        ("rules_version", "0.0-old", "rules-changed"),
        ("advisory_snapshot", "2000-01-01", "advisories-changed"),
    ):
        run_sql(server, f"UPDATE scans SET {column} = :v WHERE model_id = :m", v=value, m=model["id"])

        def rescanned(reason: str = reason) -> dict[str, Any] | None:
            latest = publisher.get(f"/api/v1/models/{model['id']}/history").json()["history"][0]
            return latest if latest["reason"] == reason and latest["kind"] == "scan" else None

        latest = wait_for(rescanned, 60, reason)
        assert (
            latest["rules_version"] == first["rules_version"]
            and latest["advisory_snapshot"] == first["advisory_snapshot"]
        )
        assert latest["outcome"] == "passed"


def test_attestations_are_renewed_before_they_expire(
    server: LiveServer, publisher: httpx.Client, tmp_path: Path
) -> None:
    import datetime as dt

    files = {"model.safetensors": models.benign_safetensors(tmp_path, 71).read_bytes()}
    model = wait_model(publisher, upload_named(publisher, "renewed", files).json()["id"])
    soon = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    run_sql(server, "UPDATE models SET attestation_expires_at = :t WHERE id = :m", t=soon, m=model["id"])

    def renewed() -> dict[str, Any] | None:
        latest = publisher.get(f"/api/v1/models/{model['id']}/history").json()["history"][0]
        return latest if latest["reason"] == "renew" else None

    latest = wait_for(renewed, 60, "renewal")
    # the renewed attestation outlives the forced expiry (the original's may fall in the same second)
    assert latest["outcome"] == "passed" and latest["expires_at"] > soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert latest["expires_at"] >= model["attestation_expires_at"]
    assert publisher.get(f"/api/v1/models/{model['id']}").json()["attestation_expires_at"] == latest["expires_at"]


def test_the_audit_log_is_append_only(server: LiveServer, admin: httpx.Client, benign: dict[str, Any]) -> None:
    entries = admin.get("/api/v1/audit", params={"limit": 1000}).json()["entries"]
    actions = {e["action"] for e in entries}
    assert {"token.create", "model.register", "scan.complete", "model.status"} <= actions
    first = entries[-1]
    assert first["actor"] and first["at"].endswith("Z") and first["target"]
    with pytest.raises(Exception, match="append-only"):
        run_sql(server, "UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(Exception, match="append-only"):
        run_sql(server, "DELETE FROM audit_log")
    assert admin.get("/api/v1/audit").json()["total"] >= len(entries)


def test_revocation_is_refused_by_verify_online_and_the_guard(
    server: LiveServer, admin: httpx.Client, publisher: httpx.Client, tmp_path: Path
) -> None:
    from modelshield import guard

    source = tmp_path / "src"
    source.mkdir()
    files = {"weights.pkl": pickle.dumps({"w": [1.0, 2.0], "revocable": True})}
    answer = upload_named(publisher, "to-be-revoked", files)
    model = wait_model(publisher, answer.json()["id"])
    assert model["status"] == "passed"
    folder = model_folder(admin, model["id"], files, tmp_path / "consumer", server)
    trust = trust_file(server, tmp_path / "service.pub")
    online = verify_cli(folder, trust, "--online", server.base_url)
    assert online.returncode == 0, online.stdout + online.stderr
    assert guard.load(folder / "weights.pkl", trust=trust, online=server.base_url)["revocable"] is True

    assert admin.post(f"/api/v1/models/{model['id']}/revoke", json={"reason": ""}).status_code == 422
    revoked = admin.post(f"/api/v1/models/{model['id']}/revoke", json={"reason": "key material leaked in weights"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert admin.post(f"/api/v1/models/{model['id']}/revoke", json={"reason": "again"}).status_code == 409
    listed = httpx.get(f"{server.base_url}/api/v1/revocations", timeout=10).json()["revocations"]
    assert model["root_digest"] in {r["root_digest"] for r in listed}
    refused = verify_cli(folder, trust, "--online", server.base_url)
    assert refused.returncode == 15 and refused.stdout.startswith("REVOKED:"), refused.stdout + refused.stderr
    assert verify_cli(folder, trust).returncode == 0  # offline, the signature itself is still valid
    with pytest.raises(guard.GuardRefused, match="REVOKED"):
        guard.load(folder / "weights.pkl", trust=trust, online=server.base_url)
    unreachable = verify_cli(folder, trust, "--online", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach the catalog" in unreachable.stderr  # fails closed
    assert ">revoked<" in httpx.get(f"{server.base_url}/badge/to-be-revoked.svg", timeout=10).text
    assert admin.post(f"/api/v1/models/{model['id']}/rescan").status_code == 409


# --------------------------------------------------------------------------------------------- drift, webhooks


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint: fails the first ``failures`` deliveries with 500, records the rest."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        server: Receiver = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server.attempts += 1
        if server.attempts <= server.failures:
            self.send_response(500)
        else:
            server.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(failures=1)
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.shutdown()
    hook.server_close()


def test_drift_of_stored_bytes_makes_the_model_unsafe_and_alerts(
    server: LiveServer, admin: httpx.Client, publisher: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    hook = admin.post("/api/v1/webhooks", json={"url": receiver.url})
    assert hook.status_code == 201
    secret, hook_id = hook.json()["secret"], hook.json()["id"]
    files = {"model.safetensors": models.benign_safetensors(tmp_path, 11).read_bytes()}
    model = wait_model(publisher, upload_named(publisher, "drifting", files).json()["id"])
    assert model["status"] == "passed"
    digest = model["files"][0]["sha256"]
    blob = server.data_dir / "blobs" / digest[:2] / digest
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as stream:  # the storage is tampered with after registration
        stream.seek(20)
        stream.write(b"\xff")
    assert admin.post(f"/api/v1/models/{model['id']}/verify").status_code == 202
    drifted = wait_model(admin, model["id"], until={"failed"})
    assert drifted["status_reason"].startswith("drift")
    assert drifted["files"][0]["indicator"] == "unsafe"
    assert drifted["files"][0]["findings"][0]["rule_id"] == "SERVICE-DRIFT"
    assert ">failed<" in httpx.get(f"{server.base_url}/badge/drifting.svg", timeout=10).text
    history = admin.get(f"/api/v1/models/{model['id']}/history").json()["history"]
    assert history[0]["kind"] == "verify" and history[0]["outcome"] == "drift"

    def drift_alert() -> tuple[dict[str, str], bytes] | None:
        return next((r for r in receiver.received if json.loads(r[1])["event"] == "model.drift"), None)

    headers, body = wait_for(drift_alert, 30, "the drift webhook")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Modelshield-Signature"], expected)
    assert json.loads(body)["data"]["name"] == "drifting"

    def retried_and_delivered() -> list[dict[str, Any]] | None:
        log = admin.get(f"/api/v1/webhooks/{hook_id}/deliveries").json()["deliveries"]
        return log if any(d["attempts"] >= 2 and d["state"] == "delivered" for d in log) else None

    log = wait_for(retried_and_delivered, 30, "the failed first delivery retried")  # the receiver said 500 once
    assert any(d["last_status"] == 204 for d in log)
    assert receiver.attempts > len(receiver.received)
    admin.delete(f"/api/v1/webhooks/{hook_id}")


# --------------------------------------------------------------------------------------------- API shape


def test_errors_have_one_shape_and_the_right_status(admin: httpx.Client, benign: dict[str, Any]) -> None:
    assert error_code(admin.get("/api/v1/models/999999")) == "not_found"
    assert admin.get("/api/v1/models/999999").status_code == 404
    assert error_code(admin.get("/api/v1/nothing-here")) == "not_found"
    assert admin.delete("/api/v1/models").status_code == 405
    bad_status = admin.get("/api/v1/models", params={"status": "great"})
    assert bad_status.status_code == 422 and error_code(bad_status) == "invalid_status"
    assert admin.get("/api/v1/models", params={"limit": 0}).status_code == 422
    assert admin.get(f"/api/v1/models/{benign['model']['id']}/attestation").status_code == 200
    listing = admin.get("/api/v1/models", params={"name": "tiny-benign"}).json()
    assert listing["total"] == 1 and listing["models"][0]["id"] == benign["model"]["id"]


def test_tokens_and_policy_administration(server: LiveServer, admin: httpx.Client) -> None:
    created = admin.post("/api/v1/tokens", json={"role": "viewer", "name": "temp viewer"})
    assert created.status_code == 201
    token = created.json()
    assert token["token"].startswith("msk_") and token["role"] == "viewer"
    assert token["token"] not in admin.get("/api/v1/tokens").text  # never stored or shown again
    assert admin.post("/api/v1/tokens", json={"role": "root", "name": "x"}).status_code == 422
    with server.client(token["token"]) as temp:
        assert temp.get("/api/v1/me").status_code == 200
        assert admin.post(f"/api/v1/tokens/{token['id']}/revoke").status_code == 200
        assert temp.get("/api/v1/me").status_code == 401
    policy = admin.get("/api/v1/policy").json()
    assert policy["builtin"] and {"experimental", "internal", "production", "regulated"} <= set(policy["profiles"])
    broken = admin.put("/api/v1/policy", content="version: 1\nprofiles: [", headers={"Content-Type": "text/plain"})
    assert broken.status_code == 422 and error_code(broken) == "invalid_policy"
    dropped = admin.put(
        "/api/v1/policy", json={"yaml": "version: 1\ndefault_profile: only\nprofiles:\n  only: {rules: []}\n"}
    )
    assert dropped.status_code == 422 and "still use profile" in dropped.json()["error"]["message"]


def test_ui_escapes_model_controlled_text_and_checks_csrf(server: LiveServer, publisher: httpx.Client) -> None:
    hostile = "<img src=x onerror=alert(1)>.pkl"
    answer = upload_named(publisher, "hostile-names", {hostile: pickle.dumps([1, 2])})
    assert answer.status_code == 201, answer.text
    model_id = answer.json()["id"]
    wait_model(publisher, model_id)
    with httpx.Client(base_url=server.base_url, timeout=10) as browser:
        login = browser.post("/ui/login", data={"token": server.admin_token}, follow_redirects=False)
        assert login.status_code == 303 and "modelshield_session" in login.cookies
        cookie_header = login.headers["set-cookie"].lower()
        assert "httponly" in cookie_header and "samesite=strict" in cookie_header
        page = browser.get(f"/ui/models/{model_id}")
        assert page.status_code == 200
        assert "<img src=x onerror" not in page.text and "&lt;img src=x onerror=alert(1)&gt;.pkl" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        forged = browser.post(f"/ui/models/{model_id}/rescan", data={"csrf_token": "forged"}, follow_redirects=False)
        assert forged.status_code == 403
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        ok = browser.post(f"/ui/models/{model_id}/rescan", data={"csrf_token": token}, follow_redirects=False)
        assert ok.status_code == 303
        for path in ("/ui/models", "/ui/upload", "/ui/waivers", "/ui/audit", "/ui/admin"):
            assert browser.get(path).status_code == 200, path


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from modelshield.service.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"the migrations have more than one head: {heads}"
    return heads[0]


def test_the_migrated_schema_is_what_the_orm_expects(database_url: str, new_database: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from modelshield.service.db import make_engine, migrate
    from modelshield.service.models import Base

    url = new_database("sqlite" if database_url.startswith("sqlite") else "postgresql")
    migrate(url)
    migrate(url)  # idempotent
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == _head_revision()
    finally:
        engine.dispose()


def test_dynamic_analysis_runs_in_the_sandbox_or_the_scan_fails_closed(publisher: httpx.Client, tmp_path: Path) -> None:
    from modelshield.errors import ModelShieldError
    from modelshield.sandbox.isolation import probe

    try:
        probe()
        sandbox = True
    except ModelShieldError:
        sandbox = False
    canary = tmp_path / "CANARY-dynamic"
    answer = upload(publisher, "detonated", [models.malicious_pickle(tmp_path, canary)], dynamic="true")
    assert answer.status_code == 201, answer.text
    model = wait_model(publisher, answer.json()["id"], timeout=120)
    assert model["dynamic"] is True
    if sandbox:
        assert model["status"] == "failed"
        sources = {f["source"] for f in model["files"][0]["findings"]}
        assert {"static", "dynamic"} <= sources, model["files"][0]["findings"]
    else:  # never loaded unsandboxed: the scan cannot complete
        assert model["status"] == "scan_failed" and "sandbox" in model["status_reason"]
    assert not canary.exists()
    only_card = upload_named(publisher, "only-a-card", {"README.md": b"# nothing else\n"})
    assert only_card.status_code == 422 and error_code(only_card) == "empty_model"


# --------------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    "name", ["model.safetensors", "tokenizer/vocab.json", "README.md", "a b/c-d_e.f", "日本/重み.bin"]
)
def test_clean_relpath_keeps_ordinary_names(name: str) -> None:
    from modelshield.service.storage import clean_relpath

    assert clean_relpath(name) == name


def test_clean_relpath_never_lets_a_name_escape(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from modelshield.service.errors import ServiceError
    from modelshield.service.storage import clean_relpath

    root = (tmp_path / "model").resolve()
    parts = st.sampled_from(["..", ".", "", "a", "b.bin", "\\", "/", "\x00", "C:", "..\\", ".git", "x" * 300])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(parts, min_size=1, max_size=6).map("/".join))
    def check(name: str) -> None:
        try:
            cleaned = clean_relpath(name)
        except ServiceError as exc:
            assert exc.status == 400 and exc.code == "invalid_file_name"
            return
        target = root.joinpath(*cleaned.split("/")).resolve()
        assert root in target.parents

    check()


def test_badge_states_and_catalog_status() -> None:
    import datetime as dt

    from modelshield.service.badges import badge_state, shields_json, svg
    from modelshield.service.scanning import status_of

    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    later, earlier = now + dt.timedelta(days=1), now - dt.timedelta(days=1)
    assert badge_state("passed", later, now) == "passed"
    assert badge_state("passed", earlier, now) == "expired"
    assert badge_state("warn", later, now) == "warn"
    assert badge_state("scanning", None, now) == "pending"
    assert badge_state("scan_failed", later, now) == "failed"
    assert badge_state("revoked", later, now) == "revoked"
    assert shields_json("expired")["color"] == "orange" and "<script" not in svg("passed")
    allow = {"decision": "allow", "profile": "internal", "waivers_applied": []}
    assert status_of("pass", allow)[0] == "passed"
    assert status_of("warn", allow)[0] == "warn"
    assert status_of("pass", {**allow, "waivers_applied": [{"rule": "x"}]})[0] == "warn"
    assert status_of("pass", {"decision": "deny", "profile": "production", "failed": ["denied_formats"]}) == (
        "failed",
        "denied under profile production: denied_formats",
    )
