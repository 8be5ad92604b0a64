"""A fleet sweep fills the catalog: the installed CLI sweeps into the database ``modelshield serve`` runs on.

Both databases (SQLite and a real PostgreSQL): the sweep makes one catalog model per listed
target, with files, per-file indicators, a report and a status the catalog's policy decided;
the service shows them over HTTP and in its pages; a policy change and an approved waiver
re-evaluate swept models from what the sweep stored (they have no bytes in the catalog's store,
so nothing is reported as drift); a re-sweep updates the same models and audits changed content.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fleet.conftest import Cluster, malicious_pickle, safetensors
from tests.fleet.test_cli import _run
from tests.service.conftest import Databases, new_database, postgres_url  # noqa: F401 - fixtures used here
from tests.service.live import LiveServer
from tests.service.service_helpers import error_code, wait_for

_ = (new_database, postgres_url)


def _models(root: Path) -> dict[str, Path]:
    good, bad = root / "good-model", root / "bad-model"
    good.mkdir(parents=True)
    bad.mkdir()
    (good / "model.safetensors").write_bytes(safetensors())
    (good / "config.json").write_text('{"hidden_size": 4}')
    (bad / "model.pkl").write_bytes(malicious_pickle(f"touch {root / 'canary'}"))
    (bad / "notes").mkdir()
    (bad / "notes" / "tokenizer.json").write_text('{"version": "1.0"}')
    return {"good": good, "bad": bad, "missing": root / "gone-model"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def swept(
    request: pytest.FixtureRequest, new_database: Databases, ray_cluster: Cluster, tmp_path_factory: Any
) -> Iterator[tuple[LiveServer, dict[str, Path], list[str], Path]]:
    """Sweep three targets into a new catalog database, then start ``modelshield serve`` on it."""
    url = new_database(request.param)
    root = tmp_path_factory.mktemp("fleet-catalog")
    targets = _models(root / "models")
    listing = root / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in targets.values()))
    args = ["fleet", "scan", "--from", str(listing), "--address", ray_cluster.address, "--database-url", url]
    done = _run([*args, "-f", "json", "-o", "first.json"], root)
    assert done.returncode == 1, done.stderr  # the malicious pickle fails the sweep
    assert "catalog: 3 model(s) written (3 new, 0 with changed content)" in done.stderr, done.stderr
    server = LiveServer.start(root / "serve", url, workers=1)
    try:
        yield server, targets, args, root
    finally:
        server.stop()


def _by_name(client: httpx.Client) -> dict[str, dict[str, Any]]:
    listed = client.get("/api/v1/models", params={"limit": 500})
    assert listed.status_code == 200, listed.text
    return {m["name"]: m for m in listed.json()["models"]}


def test_a_sweep_makes_one_catalog_model_per_target(swept: Any) -> None:
    server, targets, _args, root = swept
    with server.client() as admin:
        models = _by_name(admin)
        assert set(models) == {"good-model", "bad-model", "gone-model"}
        good = admin.get(f"/api/v1/models/{models['good-model']['id']}").json()
        bad = admin.get(f"/api/v1/models/{models['bad-model']['id']}").json()
        gone = admin.get(f"/api/v1/models/{models['gone-model']['id']}").json()
    assert good["status"] == "passed" and good["source"] == {"kind": "fleet", "ref": str(targets["good"])}
    assert {f["path"]: f["indicator"] for f in good["files"]} == {"config.json": "safe", "model.safetensors": "safe"}
    assert good["verdict"] == "pass" and good["decision"]["decision"] == "allow"
    assert bad["status"] == "failed" and "denied under profile internal" in bad["status_reason"]
    files = {f["path"]: f for f in bad["files"]}
    assert set(files) == {"model.pkl", "notes/tokenizer.json"}  # paths inside the target, sub-folders kept
    assert files["model.pkl"]["indicator"] == "unsafe"
    assert "PICKLE-UNSAFE-GLOBAL" in {f["rule_id"] for f in files["model.pkl"]["findings"]}
    assert gone["status"] == "scan_failed" and "FLEET-FETCH-FAILED" in gone["status_reason"]
    assert gone["files"] == []  # nothing was read, nothing claimed
    assert not (root / "models" / "canary").exists()
    with server.client() as admin:
        report = admin.get(f"/api/v1/models/{bad['id']}/report")
        audit = admin.get("/api/v1/audit", params={"target": f"model:{bad['id']}"}).json()
    assert report.status_code == 200 and report.json()["verdict"] == "fail"
    actions = [e["action"] for e in audit["entries"]]
    assert {"model.register", "scan.complete", "model.status"} <= set(actions)
    assert all(e["actor"].startswith("fleet:") for e in audit["entries"])


def test_the_pages_show_swept_models(swept: Any) -> None:
    server, targets, _args, _root = swept
    with httpx.Client(base_url=server.base_url, timeout=10) as browser:
        login = browser.post("/ui/login", data={"token": server.admin_token}, follow_redirects=False)
        assert login.status_code == 303
        listing = browser.get("/ui/models")
        assert listing.status_code == 200
        assert "good-model" in listing.text and "bad-model" in listing.text and "gone-model" in listing.text
        with server.client() as admin:
            bad_id = _by_name(admin)["bad-model"]["id"]
        page = browser.get(f"/ui/models/{bad_id}")
    assert page.status_code == 200
    assert "model.pkl" in page.text and "PICKLE-UNSAFE-GLOBAL" in page.text
    assert str(targets["bad"]) in page.text


def test_a_swept_model_has_no_stored_bytes_to_verify(swept: Any) -> None:
    server, _targets, _args, _root = swept
    with server.client() as admin:
        good_id = _by_name(admin)["good-model"]["id"]
        answer = admin.post(f"/api/v1/models/{good_id}/verify")
        assert answer.status_code == 409 and error_code(answer) == "fleet_entry", answer.text
        assert "next fleet sweep" in answer.json()["error"]["message"]
        assert admin.get(f"/api/v1/models/{good_id}").json()["status"] == "passed"


def test_policy_changes_and_waivers_re_evaluate_swept_models(swept: Any) -> None:
    server, _targets, _args, _root = swept
    publisher = server.client(server.token("publisher", "fleet-publisher"))
    with server.client() as admin, publisher:
        models = _by_name(admin)
        good_id, bad_id = models["good-model"]["id"], models["bad-model"]["id"]
        waiver = publisher.post(
            f"/api/v1/models/{bad_id}/waivers",
            json={
                "rule": "PICKLE-UNSAFE-GLOBAL",
                "reason": "known test fixture",
                "expires_at": (_dt.date.today() + _dt.timedelta(days=7)).isoformat(),
            },
        )
        assert waiver.status_code == 201, waiver.text
        approved = admin.post(f"/api/v1/waivers/{waiver.json()['id']}/approve")
        assert approved.status_code == 200, approved.text

        def waived() -> dict[str, Any] | None:
            body = admin.get(f"/api/v1/models/{bad_id}").json()
            return body if body["status"] not in ("failed", "scanning") else None

        bad = wait_for(waived, timeout=60, what="the waiver re-evaluates the swept model")
        assert bad["status"] == "warn" and "waiver" in bad["status_reason"], bad["status_reason"]
        assert "went missing" not in bad["status_reason"] and "drift" not in bad["status_reason"]

        policy = admin.get("/api/v1/policy").json()["yaml"]
        stricter = policy.replace(
            "      - max_severity: medium\n      - cve: {max_severity: medium}\n",
            "      - max_severity: medium\n      - cve: {max_severity: medium}\n"
            '      - denied_formats: ["safetensors*"]\n',
            1,
        )
        assert stricter != policy
        assert admin.put("/api/v1/policy", json={"yaml": stricter}).status_code == 200

        def denied() -> dict[str, Any] | None:
            body = admin.get(f"/api/v1/models/{good_id}").json()
            return body if body["status"] == "failed" else None

        good = wait_for(denied, timeout=60, what="the policy change re-evaluates the swept model")
        assert "denied_formats" in good["status_reason"], good["status_reason"]
        history = admin.get(f"/api/v1/models/{good_id}/history").json()
        assert admin.put("/api/v1/policy", json={"yaml": policy}).status_code == 200
        wait_for(lambda: admin.get(f"/api/v1/models/{good_id}").json()["status"] == "passed", timeout=60)
    kinds = [(s["kind"], s["reason"]) for s in history["history"]]
    assert ("fleet", "policy-changed") in kinds and ("fleet", "sweep") in kinds, kinds


def test_a_re_sweep_updates_the_same_models_and_audits_changed_content(swept: Any) -> None:
    server, targets, args, root = swept
    with server.client() as admin:
        before = _by_name(admin)
    (targets["good"] / "config.json").write_text('{"hidden_size": 8}')
    done = _run([*args, "-f", "json", "-o", "second.json"], root)  # while the service runs on the same database
    assert done.returncode == 1, done.stderr
    assert "catalog: 3 model(s) written (0 new, 1 with changed content)" in done.stderr, done.stderr
    with server.client() as admin:
        after = _by_name(admin)
        good = admin.get(f"/api/v1/models/{after['good-model']['id']}").json()
        audit = admin.get("/api/v1/audit", params={"target": f"model:{good['id']}"}).json()
    assert {n: m["id"] for n, m in after.items()} == {n: m["id"] for n, m in before.items()}
    assert good["status"] == "passed" and good["status_reason"].startswith("content changed since the last sweep")
    changed = [e for e in audit["entries"] if e["action"] == "model.content_changed"]
    assert len(changed) == 1 and changed[0]["detail"]["now"] == good["root_digest"]


def test_a_catalog_that_cannot_be_opened_is_a_clear_error(ray_cluster: Cluster, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.safetensors").write_bytes(safetensors())
    base = ["fleet", "scan", str(model), "--address", ray_cluster.address]
    unreachable = _run([*base, "--database-url", "postgresql+psycopg://u:secret@127.0.0.1:9/none"], tmp_path)
    assert unreachable.returncode == 2, unreachable.stderr
    assert "cannot open the catalog database" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert "secret" not in unreachable.stderr
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    profile = _run([*base, "--database-url", url, "--profile", "nonesuch"], tmp_path)
    assert profile.returncode == 2 and "Traceback" not in profile.stderr, profile.stderr
    assert "profile" in profile.stderr
