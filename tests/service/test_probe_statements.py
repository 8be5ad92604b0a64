"""Endpoint probe results on catalog entries, the way users run them, on SQLite and PostgreSQL.

A real ``modelshield serve`` (subprocess), the personas app (tests/probe/personas.py) as the probed
endpoint, and the installed ``modelshield probe ... --sign KEY --catalog URL --catalog-model NAME`` in
a subprocess; then the API over HTTP and the model page's HTML. Bad statements (garbage, not DSSE,
a scan attestation, a tampered payload, an untrusted or removed signer, expired, oversized, a
missing or revoked model, a duplicate) are each a 4xx in the one error format and store nothing.
Hostile statements are generated here by signing JSON with the test's own keys.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.probe import servers
from tests.service import models
from tests.service.live import LiveServer, modelshield_argv
from tests.service.service_helpers import error_code, upload, wait_model


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The personas app (``/vulnerable``, ``/hardened``, ``/swapped``, ...)."""
    with servers.personas() as url:
        yield url


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two ``modelshield keygen`` key pairs: the prober the catalog trusts and a stranger it does not."""
    folder = tmp_path_factory.mktemp("probe-keys")
    for name in ("prober", "stranger"):
        made = cli("keygen", "--out", str(folder / name))
        assert made.returncode == 0, made.stderr
    return {
        "key": folder / "prober.key",
        "pub": folder / "prober.pub",
        "stranger": folder / "stranger.key",
        "stranger_pub": folder / "stranger.pub",
    }


@pytest.fixture(scope="module")
def server(live_server: LiveServer, keys: dict[str, Path]) -> LiveServer:
    """The catalog, trusting the prober's key for probe statements."""
    with live_server.client() as admin:
        added = admin.post("/api/v1/probe-signers", json={"name": "red-team", "pem": keys["pub"].read_text()})
    assert added.status_code == 201, added.text
    return live_server


@pytest.fixture(scope="module")
def publisher(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.token("publisher", "probe-publisher")) as client:
        yield client


@pytest.fixture(scope="module")
def model(publisher: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered, scanned benign model."""
    answer = upload(publisher, "persona-7b", [models.benign_pickle(tmp_path_factory.mktemp("m"), seed=70)])
    assert answer.status_code == 201, answer.text
    return wait_model(publisher, answer.json()["id"], timeout=120)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``modelshield`` in a fresh process."""
    import os

    return subprocess.run(
        [*modelshield_argv(), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def probe_cli(
    url: str, key: Path, out: Path, *extra: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``modelshield probe URL --pack smoke --sign KEY`` writing the JSON report and statement into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    env = {"MODELSHIELD_TOKEN": token} if token is not None else {}
    return cli(
        "probe", url, "--pack", "smoke", "--sign", str(key), "--statement", str(out / "statement.dsse.json"),
        "-f", "json", "-o", str(out / "report.json"), "--no-progress", *extra, env=env,
    )  # fmt: skip


def payload_of(envelope: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    return data


def signed(statement: dict[str, Any], key: Path) -> bytes:
    """``statement`` as a DSSE envelope signed with ``key`` (how a forger with a key would make one)."""
    from modelshield.attest import dsse
    from modelshield.attest.intoto import encode
    from modelshield.attest.signers import load_signer

    return dsse.sign(encode(statement), dsse.INTOTO_PAYLOAD_TYPE, load_signer(key)).to_json().encode()


def probes_of(client: httpx.Client, ref: str | int) -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/models/{ref}/probes")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["probes"]
    return items


def ui_page(server: LiveServer, path: str) -> str:
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        login = browser.post("/ui/login", data={"token": server.admin_token}, follow_redirects=False)
        assert login.status_code == 303, login.text
        page = browser.get(path)
        assert page.status_code == 200, page.text[:500]
        return page.text


@pytest.fixture(scope="module")
def attached(
    server: LiveServer,
    publisher: httpx.Client,
    model: dict[str, Any],
    endpoint: str,
    keys: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """A webhook, then three probes attached by the CLI: the vulnerable persona, the hardened one (its
    identity saved as the baseline), then a swapped model behind the same URL (drift)."""
    with server.client() as admin:
        hook = admin.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/never-answers"})
        assert hook.status_code == 201, hook.text
    token = server.token("publisher", "probe-publisher")
    work = tmp_path_factory.mktemp("probes")
    runs = {}
    baseline = work / "baseline.json"
    plans = (("vulnerable", 1, []), ("hardened", 0, ["--save-baseline"]), ("swapped", 1, ["--baseline"]))
    for persona, expected, extra in plans:
        done = probe_cli(
            f"{endpoint}/{persona}", keys["key"], work / persona, "--catalog", server.base_url,
            "--catalog-model", model["name"], *(extra and [extra[0], str(baseline)]), token=token,
        )  # fmt: skip
        assert done.returncode == expected, done.stderr
        assert "attached to catalog model 'persona-7b' as probe" in done.stderr, done.stderr
        runs[persona] = work / persona
    return {"runs": runs, "webhook": hook.json()["id"]}


# --------------------------------------------------------------------------------------------- end to end


def test_probe_cli_attaches_the_signed_statement_to_the_catalog_entry(
    server: LiveServer, publisher: httpx.Client, model: dict[str, Any], attached: dict[str, Any], endpoint: str
) -> None:
    listed = probes_of(publisher, model["name"])
    assert [p["endpoint"].rsplit("/", 1)[-1] for p in listed] == ["swapped", "hardened", "vulnerable"]  # newest first
    swapped, hardened, vulnerable = listed
    assert (vulnerable["verdict"], hardened["verdict"]) == ("fail", "pass") and swapped["verdict"] != "pass"
    assert (hardened["drift"], swapped["drift"]) == (None, True)
    report = json.loads((attached["runs"]["vulnerable"] / "report.json").read_text())
    envelope = (attached["runs"]["vulnerable"] / "statement.dsse.json").read_bytes()
    assert vulnerable["endpoint"] == report["endpoint"] and vulnerable["endpoint"].startswith(f"{endpoint}/vulnerable")
    assert vulnerable["served_model"] == "persona-7b" and vulnerable["profile"] == "internal"
    assert vulnerable["coverage_complete"] is True and vulnerable["drift"] is None
    assert vulnerable["signer"]["name"] == "red-team"
    assert vulnerable["submitted_by"] == "probe-publisher" and vulnerable["expired"] is False
    families = {f["family"]: f for f in report["families"]}
    assert {k: (v["hits"], v["trials"]) for k, v in vulnerable["families"].items()} == {
        k: (v["hits"], v["trials"]) for k, v in families.items()
    }
    assert vulnerable["hits"] > 0 and hardened["hits"] == 0
    assert (
        vulnerable["statement_sha256"] == hashlib.sha256(base64.b64decode(json.loads(envelope)["payload"])).hexdigest()
    )
    assert probes_of(publisher, model["id"]) == listed  # by id as well as by name

    # a probe is shown alongside the file scan: the model's status is the scan's
    after = publisher.get(f"/api/v1/models/{model['id']}").json()
    assert after["status"] == model["status"] == "passed"
    assert after["probes"] == listed and after["probes_url"] == f"/api/v1/models/{model['id']}/probes"

    # the stored statement is the signed one: it verifies offline with the prober's key
    downloaded = publisher.get(vulnerable["statement_url"])
    assert downloaded.status_code == 200
    assert payload_of(downloaded.content) == payload_of(envelope)


def test_the_stored_statement_verifies_offline(
    publisher: httpx.Client, attached: dict[str, Any], keys: dict[str, Path], tmp_path: Path, model: dict[str, Any]
) -> None:
    hardened = next(p for p in probes_of(publisher, model["name"]) if p["endpoint"].endswith("/hardened"))
    saved = tmp_path / "from-catalog.dsse.json"
    saved.write_bytes(publisher.get(hardened["statement_url"]).content)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "red-team.pub").write_bytes(keys["pub"].read_bytes())
    verified = cli("verify", str(saved), "--trust", str(trust))
    assert verified.returncode == 0 and verified.stdout.startswith("VERIFIED"), verified.stdout + verified.stderr


def test_attaching_is_audited_and_alerted(server: LiveServer, attached: dict[str, Any], model: dict[str, Any]) -> None:
    with server.client() as admin:
        entries = admin.get("/api/v1/audit", params={"action": "probe.attach"}).json()["entries"]
        mine = [e for e in entries if e["target"] == f"model:{model['id']}"]
        assert [e["detail"]["endpoint"].rsplit("/", 1)[-1] for e in mine] == ["swapped", "hardened", "vulnerable"]
        assert all(e["actor"] == "probe-publisher" and e["detail"]["signer"] == "red-team" for e in mine)
        deliveries = admin.get(f"/api/v1/webhooks/{attached['webhook']}/deliveries").json()["deliveries"]
    assert [d["event"] for d in deliveries].count("model.probe") == 3, deliveries


def test_the_model_page_shows_the_endpoint_probes(
    server: LiveServer, attached: dict[str, Any], model: dict[str, Any], endpoint: str
) -> None:
    page = ui_page(server, f"/ui/models/{model['id']}")
    section = page.split("<h2>Endpoint probes</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count('data-testid="probe-row"') == 3
    assert section.count('data-drift="True"') == 1 and ">DRIFT</td>" in section
    assert 'data-verdict="fail"' in section and 'data-verdict="pass"' in section
    assert f"{endpoint}/vulnerable" in section and "persona-7b" in section and "red-team" in section
    assert section.count('data-family="system-prompt-leak"') == 3
    assert 'id="model-status" data-status="passed"' in page
    row = section.split('data-testid="probe-row"', 2)[1]
    link = row.split('data-testid="probe-statement-download"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        browser.post("/ui/login", data={"token": server.admin_token})
        download = browser.get(link)
    assert download.status_code == 200 and payload_of(download.content)["predicateType"].endswith("/probe/v1")


def test_untrusted_endpoint_and_model_names_are_escaped_on_the_page(
    server: LiveServer, publisher: httpx.Client, model: dict[str, Any], attached: dict[str, Any], keys: dict[str, Path]
) -> None:
    statement = payload_of((attached["runs"]["hardened"] / "statement.dsse.json").read_bytes())
    statement["predicate"]["endpoint"] = "http://evil.example/<script>alert(1)</script>"
    statement["predicate"]["model"] = '"><img src=x onerror=alert(2)>'
    answer = publisher.post(f"/api/v1/models/{model['id']}/probes", content=signed(statement, keys["key"]))
    assert answer.status_code == 201, answer.text
    page = ui_page(server, f"/ui/models/{model['id']}")
    assert "<script>alert(1)</script>" not in page and "<img src=x onerror" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --------------------------------------------------------------------------------------------- refusals


def test_bad_statements_are_refused_with_a_clear_error_and_nothing_is_stored(
    server: LiveServer,
    publisher: httpx.Client,
    model: dict[str, Any],
    attached: dict[str, Any],
    keys: dict[str, Path],
) -> None:
    good = (attached["runs"]["vulnerable"] / "statement.dsse.json").read_bytes()
    statement = payload_of(good)
    tampered = json.loads(good)
    forged = copy.deepcopy(statement)
    forged["predicate"]["verdict"] = "pass"
    tampered["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    expired = copy.deepcopy(statement)
    expired["predicate"]["expiresAt"] = "2020-01-01T00:00:00Z"
    no_verdict = copy.deepcopy(statement)
    no_verdict["predicate"]["verdict"] = "fine"
    scan_attestation = publisher.get(f"/api/v1/models/{model['id']}/attestation").content
    assert payload_of(scan_attestation)["predicateType"].endswith("/scan/v1")
    other_type = copy.deepcopy(statement)
    other_type["predicateType"] = "https://slsa.dev/provenance/v1"
    cases: list[tuple[str, bytes, int, str]] = [
        ("garbage", b"\x00not json{", 400, "malformed_json"),
        ("nested", b"[" * 200_000, 400, "malformed_json"),
        ("not an envelope", b'{"hello": "world"}', 400, "invalid_envelope"),
        ("bad base64", json.dumps({**json.loads(good), "payload": "@@@"}).encode(), 400, "invalid_envelope"),
        ("scan attestation", scan_attestation, 422, "not_a_probe_statement"),
        ("other predicate", signed(other_type, keys["key"]), 422, "not_a_probe_statement"),
        ("tampered payload", json.dumps(tampered).encode(), 422, "bad_signature"),
        ("stranger's key", signed(statement, keys["stranger"]), 422, "untrusted_signer"),
        ("expired", signed(expired, keys["key"]), 422, "expired_statement"),
        ("malformed predicate", signed(no_verdict, keys["key"]), 422, "malformed_statement"),
        ("duplicate", good, 409, "duplicate_statement"),
        ("oversized", b'{"payload": "' + b"A" * (2 << 20) + b'"}', 413, "payload_too_large"),
    ]
    before = probes_of(publisher, model["id"])
    for name, body, status, code in cases:
        answer = publisher.post(f"/api/v1/models/{model['id']}/probes", content=body)
        assert (answer.status_code, error_code(answer)) == (status, code), (name, answer.text)
    missing = publisher.post("/api/v1/models/no-such-model/probes", content=good)
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    assert probes_of(publisher, model["id"]) == before
    assert "internal error" not in server.log_tail(200_000)


def test_roles_and_a_revoked_model(
    server: LiveServer, publisher: httpx.Client, attached: dict[str, Any], tmp_path: Path
) -> None:
    good = (attached["runs"]["hardened"] / "statement.dsse.json").read_bytes()
    answer = upload(publisher, "revoked-persona", [models.benign_pickle(tmp_path, seed=71)])
    assert answer.status_code == 201, answer.text
    revoked_id = answer.json()["id"]
    wait_model(publisher, revoked_id, timeout=120)
    with server.client() as admin:
        assert admin.post(f"/api/v1/models/{revoked_id}/revoke", json={"reason": "test"}).status_code == 200
    refused = publisher.post(f"/api/v1/models/{revoked_id}/probes", content=good)
    assert (refused.status_code, error_code(refused)) == (409, "revoked")
    with server.client(server.token("viewer", "probe-viewer")) as viewer:
        denied = viewer.post(f"/api/v1/models/{revoked_id}/probes", content=good)
        assert (denied.status_code, error_code(denied)) == (403, "insufficient_role")
        assert viewer.get(f"/api/v1/models/{revoked_id}/probes").json()["probes"] == []
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        assert anonymous.get(f"/api/v1/models/{revoked_id}/probes").status_code == 401
        assert anonymous.post(f"/api/v1/models/{revoked_id}/probes", content=good).status_code == 401


def test_only_an_admin_chooses_the_probe_signers(
    server: LiveServer, publisher: httpx.Client, model: dict[str, Any], attached: dict[str, Any], keys: dict[str, Path]
) -> None:
    pem = keys["stranger_pub"].read_text()
    denied = publisher.post("/api/v1/probe-signers", json={"name": "me", "pem": pem})
    assert (denied.status_code, error_code(denied)) == (403, "insufficient_role")
    with server.client() as admin:
        private = admin.post("/api/v1/probe-signers", json={"name": "oops", "pem": keys["stranger"].read_text()})
        assert (private.status_code, error_code(private)) == (422, "invalid_key")
        junk = admin.post("/api/v1/probe-signers", json={"name": "junk", "pem": "not a key"})
        assert (junk.status_code, error_code(junk)) == (422, "invalid_key")
        again = admin.post("/api/v1/probe-signers", json={"name": "twice", "pem": keys["pub"].read_text()})
        assert (again.status_code, error_code(again)) == (409, "signer_exists")
        added = admin.post("/api/v1/probe-signers", json={"name": "stranger", "pem": pem})
        assert added.status_code == 201, added.text
        statement = payload_of((attached["runs"]["hardened"] / "statement.dsse.json").read_bytes())
        statement["predicate"]["probedAt"] = "2026-12-01T00:00:00Z"  # another statement
        ok = publisher.post(f"/api/v1/models/{model['id']}/probes", content=signed(statement, keys["stranger"]))
        assert ok.status_code == 201 and ok.json()["signer"]["name"] == "stranger", ok.text
        assert admin.delete(f"/api/v1/probe-signers/{added.json()['keyid']}").status_code == 200
        statement["predicate"]["probedAt"] = "2026-12-02T00:00:00Z"
        gone = publisher.post(f"/api/v1/models/{model['id']}/probes", content=signed(statement, keys["stranger"]))
        assert (gone.status_code, error_code(gone)) == (422, "untrusted_signer")
        names = [s["name"] for s in admin.get("/api/v1/probe-signers").json()["signers"]]
        assert names == ["red-team"]
        actions = {e["action"] for e in admin.get("/api/v1/audit").json()["entries"]}
        assert {"probe_signer.add", "probe_signer.remove"} <= actions
    kept = [p for p in probes_of(publisher, model["id"]) if p["signer"]["name"] == "stranger"]
    assert len(kept) == 1  # attached while trusted: history is not rewritten


# --------------------------------------------------------------------------------------------- the CLI's errors


def test_a_catalog_refusal_is_exit_2_and_the_report_is_still_written(
    server: LiveServer, endpoint: str, keys: dict[str, Path], tmp_path: Path, attached: dict[str, Any]
) -> None:
    token = server.token("publisher", "probe-publisher")
    missing = probe_cli(
        f"{endpoint}/hardened", keys["key"], tmp_path / "a", "--catalog", server.base_url, "--catalog-model", "nope",
        token=token,
    )  # fmt: skip
    assert missing.returncode == 2, missing.stderr
    assert "refused the probe statement for model 'nope': 404 not_found" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert json.loads((tmp_path / "a" / "report.json").read_text())["verdict"] == "pass"
    assert (tmp_path / "a" / "statement.dsse.json").is_file()

    down = probe_cli(
        f"{endpoint}/hardened", keys["key"], tmp_path / "b", "--catalog", f"http://127.0.0.1:{servers.free_port()}",
        "--catalog-model", "persona-7b", token=token,
    )  # fmt: skip
    assert down.returncode == 2 and "cannot reach the catalog" in down.stderr, down.stderr
    assert (tmp_path / "b" / "report.json").is_file()

    bad_token = probe_cli(
        f"{endpoint}/hardened", keys["key"], tmp_path / "c", "--catalog", server.base_url,
        "--catalog-model", "persona-7b", token="not-a-token-0123456789abcdef",
    )  # fmt: skip
    assert bad_token.returncode == 2 and "401 unauthorized" in bad_token.stderr, bad_token.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--catalog", "http://127.0.0.1:1", "--catalog-model", "m"], {}, "it needs --sign KEY"),
        (["--catalog", "http://127.0.0.1:1"], {}, "--catalog and --catalog-model go together"),
        (["--catalog", "ftp://x", "--catalog-model", "m", "--sign", "k.key"], {"MODELSHIELD_TOKEN": "t"}, "http(s)"),
        (
            ["--catalog", "http://127.0.0.1:1", "--catalog-model", "m", "--sign", "k.key"],
            {"MODELSHIELD_TOKEN": ""},
            "$MODELSHIELD_TOKEN",
        ),
    ],
    ids=["no-sign", "no-model", "bad-url", "no-token"],
)
def test_an_incomplete_catalog_setup_is_refused_before_probing(
    args: list[str], env: dict[str, str], message: str
) -> None:
    # the endpoint does not exist: the options are refused before anything is sent to it
    done = cli("probe", "http://127.0.0.1:9/never", *args, env=env)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "cannot reach" not in done.stderr


def test_probe_attach_attaches_an_existing_statement_file(
    server: LiveServer, publisher: httpx.Client, attached: dict[str, Any], keys: dict[str, Path], tmp_path: Path
) -> None:
    answer = upload(publisher, "attached-later", [models.benign_pickle(tmp_path, seed=72)])
    assert answer.status_code == 201, answer.text
    statement = attached["runs"]["hardened"] / "statement.dsse.json"
    token = {"CI_TOKEN": server.token("publisher", "probe-publisher")}
    args = ["probe-attach", str(statement), "--catalog", server.base_url, "--catalog-model", "attached-later"]
    done = cli(*args, "--catalog-token-env", "CI_TOKEN", env=token)
    assert done.returncode == 0 and "attached to catalog model 'attached-later'" in done.stderr, done.stderr
    assert [p["verdict"] for p in probes_of(publisher, "attached-later")] == ["pass"]
    again = cli(*args, "--catalog-token-env", "CI_TOKEN", env=token)
    assert again.returncode == 2 and "409 duplicate_statement" in again.stderr, again.stderr
    missing = cli("probe-attach", str(tmp_path / "none.json"), *args[2:], "--catalog-token-env", "CI_TOKEN", env=token)
    assert missing.returncode == 2 and "cannot read the probe statement" in missing.stderr, missing.stderr
    assert "Traceback" not in again.stderr + missing.stderr
