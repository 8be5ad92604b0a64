"""Bad input and faults against a real ``modelshield serve``: each one answered correctly, nothing lost.

Oversized uploads (413, nothing half-stored), traversal in file names, a non-model file, a zip bomb,
a duplicate name, malformed JSON, wrong or missing tokens, the database going away (503, then
recovery), a worker SIGKILLed mid-scan (the job is retried, the model reaches its final state), a
worker killed on every attempt (scan_failed, never safe), and a restart with jobs still queued.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.service import models
from tests.service.live import LiveServer
from tests.service.service_helpers import (
    blob_files,
    error_code,
    temp_files,
    upload,
    upload_named,
    wait_for,
    wait_model,
)

LIMIT_MB = 1
FAST = {"MODELSHIELD_SCHEDULER_TICK": "1", "MODELSHIELD_LEASE_SECONDS": "2"}


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One catalog with a 1 MiB upload limit per module and database kind."""
    live = LiveServer.start(
        tmp_path_factory.mktemp("serve"),
        database_url,
        workers=1,
        extra_args=["--max-upload-mb", str(LIMIT_MB)],
        env=FAST,
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(server.token("publisher", "fault-publisher")) as http:
        yield http


def kind_of(database_url: str) -> str:
    """The database kind of this module's parameter."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def names_of(client: httpx.Client) -> set[str]:
    return {m["name"] for m in client.get("/api/v1/models", params={"limit": 500}).json()["models"]}


# --------------------------------------------------------------------------------------------- bad input


def raw_upload(client: httpx.Client, name: str, files: dict[str, bytes]) -> httpx.Response:
    """A multipart upload with the file names sent byte for byte (httpx would percent-encode control characters)."""
    boundary = b"rawBoundary7MA4YWxk"
    body = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + name.encode() + b"\r\n"
    for filename, data in files.items():
        quoted = filename.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        body += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + quoted + b'"\r\n'
        body += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return client.post(
        "/api/v1/models", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    )


def test_an_oversized_upload_is_413_and_nothing_is_half_stored(server: LiveServer, client: httpx.Client) -> None:
    before = blob_files(server)
    big = os.urandom(LIMIT_MB * (1 << 20) + 4096)
    declared = upload_named(client, "too-big", {"big.bin": big})
    assert declared.status_code == 413 and error_code(declared) == "payload_too_large"
    two = upload_named(client, "too-big-in-sum", {"a.bin": big[:700_000], "b.bin": big[700_000:]})
    assert two.status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        boundary = b"--XyZ"
        yield boundary + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\nstreamed\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n\r\n'
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]
        yield b"\r\n" + boundary + b"--\r\n"

    streamed = client.post(
        "/api/v1/models", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    assert streamed.status_code == 413 and error_code(streamed) == "payload_too_large"
    assert blob_files(server) == before
    assert temp_files(server) == []
    assert not {"too-big", "too-big-in-sum", "streamed"} & names_of(client)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.pkl",
        "../../../../etc/cron.d/x",
        "/etc/passwd",
        "a/../../b.pkl",
        "a//b",
        "./x",
        "..\\win.pkl",
        "C:/x.pkl",
        "bad\x00name",
        "tab\tname",
        ".git/config",
        "modelshield.attestation.dsse.json",
        "x/" * 40 + "y",
    ],
)
def test_file_names_that_could_escape_are_refused(server: LiveServer, client: httpx.Client, name: str) -> None:
    before = blob_files(server)
    answer = raw_upload(client, "traversal", {"ok.safetensors": b"x" * 10, name: b"payload"})
    assert answer.status_code == 400 and error_code(answer) == "invalid_file_name", (name, answer.text)
    assert blob_files(server) == before and temp_files(server) == []
    assert "traversal" not in names_of(client)
    assert not (server.data_dir.parent / "evil.pkl").exists()


def test_a_file_that_is_no_model_is_never_safe(client: httpx.Client) -> None:
    noise = random.Random(7).randbytes(4096)
    answer = upload_named(client, "random-noise", {"weights.bin": noise})
    assert answer.status_code == 201
    model = wait_model(client, answer.json()["id"])
    assert model["status"] in {"warn", "failed"}, model["status_reason"]
    item = model["files"][0]
    assert item["indicator"] != "safe"
    assert "UNKNOWN-CONTENT" in {f["rule_id"] for f in item["findings"]}


def test_a_zip_bomb_is_reported_not_extracted(server: LiveServer, client: httpx.Client, tmp_path: Path) -> None:
    bomb = tmp_path / "weights.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("weights.bin", "w", force_zip64=True) as member,
    ):
        chunk = b"\0" * (1 << 20)
        for _ in range(300):  # 300 MiB that deflate to ~300 KiB
            member.write(chunk)
    assert bomb.stat().st_size < LIMIT_MB << 20
    answer = upload(client, "zip-bomb", [bomb])
    assert answer.status_code == 201, answer.text
    model = wait_model(client, answer.json()["id"])
    assert model["status"] == "failed", model["status_reason"]
    assert model["files"][0]["indicator"] == "unsafe"
    assert any(f["severity"] in {"high", "critical"} for f in model["files"][0]["findings"])
    stored = sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file())
    assert stored < 50 << 20  # nothing was inflated to disk
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def test_a_duplicate_name_is_409_and_stores_nothing(server: LiveServer, client: httpx.Client, tmp_path: Path) -> None:
    first = upload(client, "only-once", [models.benign_safetensors(tmp_path, 21)])
    assert first.status_code == 201
    before = blob_files(server)
    second = upload(client, "only-once", [models.benign_pickle(tmp_path, 22)])
    assert second.status_code == 409 and error_code(second) == "name_taken"
    assert blob_files(server) == before and temp_files(server) == []


def test_malformed_requests_are_400_and_invalid_ones_422(client: httpx.Client) -> None:
    json_type = {"Content-Type": "application/json"}
    broken = client.post("/api/v1/models", content=b'{"name": "x", "path": ', headers=json_type)
    assert broken.status_code == 400 and error_code(broken) == "malformed_json"
    not_utf8 = client.post("/api/v1/models", content=b'{"name": "\xff"}', headers=json_type)
    assert not_utf8.status_code == 400
    assert client.post("/api/v1/models", content=b"[1, 2]", headers=json_type).status_code == 422
    extra = client.post("/api/v1/models", json={"name": "x", "hf_cache_id": "a/b", "sudo": True})
    assert extra.status_code == 422 and error_code(extra) == "invalid_request"
    assert client.post("/api/v1/models", json={"name": "x"}).status_code == 422
    wrong_type = client.post("/api/v1/models", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400 and error_code(wrong_type) == "bad_content_type"
    no_files = client.post("/api/v1/models", files={"name": (None, "no-files")})
    assert no_files.status_code == 422 and error_code(no_files) == "empty_model"
    clash = upload_named(client, "file-and-folder", {"a": b"1", "a/b.bin": b"2"})
    assert clash.status_code == 422 and error_code(clash) == "conflicting_file_names"
    twice = raw_upload(client, "same-file-twice", {"a.bin": b"1"} | {"b.bin": b"2"})
    assert twice.status_code == 201  # (control: distinct names are fine)
    bad_name = upload_named(client, "../x", {"a.bin": b"1"})
    assert bad_name.status_code == 422 and error_code(bad_name) == "invalid_name"
    garbage = client.post(
        "/api/v1/models",
        content=b"--B\r\nnot a header\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    assert garbage.status_code == 400
    waiver = client.post("/api/v1/models/1/waivers", content=b"{oops", headers=json_type)
    assert waiver.status_code == 400 and error_code(waiver) == "malformed_json"
    huge = client.post("/api/v1/models/1/waivers", content=b"[" + b"1," * 700_000 + b"1]", headers=json_type)
    assert huge.status_code == 413


def test_wrong_role_is_403_and_no_token_401(server: LiveServer, tmp_path: Path) -> None:
    with server.client(server.token("viewer", "fault-viewer")) as viewer:
        denied = upload(viewer, "viewer-tries", [models.benign_pickle(tmp_path, 1)])
        assert denied.status_code == 403 and error_code(denied) == "insufficient_role"
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        missing = upload(anonymous, "anonymous-tries", [models.benign_pickle(tmp_path, 1)])
        assert missing.status_code == 401 and error_code(missing) == "unauthorized"
    assert temp_files(server) == []


# --------------------------------------------------------------------------------------------- the database goes away


class TcpProxy:
    """A loopback TCP forwarder that can cut every connection and refuse new ones (a lost database server)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            for sock in [*self._sockets, *([listener] if listener else [])]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def outage(database_url: str, new_database: Any) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(URL the server uses, take the database away, bring it back): SQLite file moved away, or PostgreSQL cut off.

    A database of its own: another catalog's workers on the same database would take its jobs.
    """
    fresh = new_database(kind_of(database_url))
    if fresh.startswith("sqlite"):
        path = Path(fresh.removeprefix("sqlite:///"))
        away = path.with_name("outage.db.away")

        def down() -> None:
            os.rename(path, away)

        def up() -> None:
            os.rename(away, path)

        yield f"sqlite:///{path}", down, up
        return
    from sqlalchemy import make_url

    url = make_url(fresh)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy.down, proxy.up
    proxy.down()


def test_the_database_going_away_is_503_and_the_service_recovers(
    live_server_factory: Callable[..., LiveServer],
    outage: tuple[str, Callable[[], None], Callable[[], None]],
    tmp_path: Path,
) -> None:
    url, down, up = outage
    server = live_server_factory(url, workers=1, env=FAST)
    with server.client() as client:
        assert client.get("/api/v1/models").status_code == 200
        down()
        try:
            for request in (
                lambda: client.get("/api/v1/models"),
                lambda: client.get("/healthz"),
                lambda: upload(client, "during-outage", [models.benign_pickle(tmp_path, 3)]),
                lambda: client.get("/badge/anything.svg"),
            ):
                answer = request()
                assert answer.status_code == 503, answer.text
                if answer.headers.get("content-type", "").startswith("application/json"):
                    assert error_code(answer) == "database_unavailable"
                assert answer.headers.get("retry-after") == "5"
            time.sleep(1.5)  # the worker meets the outage too, and must survive it
        finally:
            up()
        wait_for(lambda: client.get("/healthz").status_code == 200, 30, "recovery")
        assert temp_files(server) == []
        answer = upload(client, "after-outage", [models.benign_safetensors(tmp_path, 4)])
        assert answer.status_code == 201, answer.text
        after = wait_model(client, answer.json()["id"])
        assert after["status"] == "passed", (after["status_reason"], after["files"])
        assert "during-outage" not in names_of(client)
        health = wait_for(
            lambda: (h := client.get("/healthz").json())["workers"]["alive"] >= 1 and h, 30, "worker back"
        )
        assert health["status"] == "ok"


# ------------------------------------------------------------------------------ workers die, the service restarts


def _kill_during_scan(
    client: httpx.Client, server: LiveServer, model_id: int, env: dict[str, str], attempt: int = 1
) -> subprocess.Popen[bytes]:
    """Start a worker and SIGKILL it as soon as it is scanning the model (attempt ``attempt``)."""
    worker = server.start_worker(env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        model = client.get(f"/api/v1/models/{model_id}").json()
        if model["status"] == "scanning" and model["jobs"][0]["attempts"] == attempt:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            return worker
        assert model["status"] in {"pending", "scanning"}, f"scanned before it could be killed: {model['status']}"
        time.sleep(0.005)
    raise AssertionError("the worker never started the scan")


def test_a_worker_killed_mid_scan_loses_nothing(
    live_server_factory: Callable[..., LiveServer], database_url: str, new_database: Any, tmp_path: Path
) -> None:
    server = live_server_factory(new_database(kind_of(database_url)), workers=0, env=FAST)
    with server.client() as client:
        answer = upload(
            client,
            "killed-mid-scan",
            [models.benign_safetensors(tmp_path, 31), models.benign_pickle(tmp_path, 31), models.slow_pickle(tmp_path)],
        )
        model_id = answer.json()["id"]
        _kill_during_scan(client, server, model_id, FAST)
        job = client.get(f"/api/v1/models/{model_id}").json()["jobs"][0]
        assert job["state"] == "running" and job["attempts"] == 1  # held by a dead worker
        server.start_worker(env=FAST)  # a new worker takes the job over once the lease lapses
        model = wait_model(client, model_id, timeout=60)
        assert model["status"] == "passed", model["status_reason"]
        job = model["jobs"][0]
        assert job["state"] == "done" and job["attempts"] == 2
        assert {f["indicator"] for f in model["files"]} == {"safe"}
        scans = [h for h in client.get(f"/api/v1/models/{model_id}/history").json()["history"] if h["kind"] == "scan"]
        assert len(scans) == 1  # one result, from the attempt that finished


def test_a_worker_killed_on_every_attempt_ends_scan_failed(
    live_server_factory: Callable[..., LiveServer], database_url: str, new_database: Any, tmp_path: Path
) -> None:
    server = live_server_factory(
        new_database(kind_of(database_url)), workers=0, extra_args=["--max-attempts", "2"], env=FAST
    )
    with server.client() as client:
        answer = upload(client, "always-killed", [models.slow_pickle(tmp_path, 41)])  # slow: caught mid-scan
        model_id = answer.json()["id"]
        for attempt in (1, 2):
            _kill_during_scan(client, server, model_id, FAST, attempt)
        server.start_worker(env=FAST)  # its scheduler sees the last lease lapse with no attempts left
        model = wait_model(client, model_id, timeout=60)
        assert model["status"] == "scan_failed", model["status_reason"]
        assert "2 attempt" in model["status_reason"]
        assert model["jobs"][0]["state"] == "failed"
        assert {f["indicator"] for f in model["files"]} == {None}  # never called safe
        assert ">failed<" in httpx.get(f"{server.base_url}/badge/always-killed.svg", timeout=10).text
        assert client.get(f"/api/v1/models/{model_id}/attestation").status_code == 404


def test_jobs_queued_when_the_service_stops_resume_after_a_restart(
    database_url: str, new_database: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    url = new_database(kind_of(database_url))
    data_dir = tmp_path_factory.mktemp("restart")
    first = LiveServer.start(data_dir, url, workers=0, env=FAST)
    try:
        with first.client() as client:
            ids = []
            for seed in range(3):
                answer = upload(client, f"queued-{seed}", [models.benign_safetensors(tmp_path, 50 + seed)])
                assert answer.status_code == 201
                ids.append(answer.json()["id"])
            assert {client.get(f"/api/v1/models/{i}").json()["status"] for i in ids} == {"pending"}
            assert client.get("/healthz").json()["queue"]["queued"] == 3
    finally:
        assert first.stop() == 0  # a clean stop
    second = LiveServer.start(data_dir, url, workers=1, env=FAST)
    try:
        with second.client() as client:
            for model_id in ids:
                assert wait_model(client, model_id)["status"] == "passed"
            assert client.get("/healthz").json()["queue"] == {"queued": 0, "running": 0}
    finally:
        second.stop()
