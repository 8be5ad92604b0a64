"""A tiny stand-in for the Hugging Face Hub HTTP API on 127.0.0.1, enough for ``snapshot_download``.

It serves what huggingface_hub asks for when downloading a model repo: the revision's commit
(``/api/models/ORG/NAME/revision/REV``), the file listing (``/api/models/ORG/NAME/tree/COMMIT``)
and each file (``HEAD``/``GET /ORG/NAME/resolve/COMMIT/PATH``), with the headers it reads
(``X-Repo-Commit``, ``ETag``, ``Content-Length``) and the error codes it maps to exceptions
(``X-Error-Code: RepoNotFound`` / ``RevisionNotFound``). Large files are served as LFS entries.
Every request is recorded so a test can see what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LFS_SUFFIXES = (".bin", ".pkl", ".pt", ".safetensors", ".gguf", ".onnx", ".h5")


class FakeRepo:
    """One repo: a commit, its refs and its files."""

    def __init__(self, repo_id: str, files: dict[str, bytes], commit: str, refs: tuple[str, ...] = ("main",)) -> None:
        self.repo_id = repo_id
        self.files = files
        self.commit = commit
        self.refs = refs

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        item: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": git_oid}
        if path.endswith(LFS_SUFFIXES):
            item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return item

    def etag(self, path: str) -> str:
        entry = self.entry(path)
        return entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]


class FakeHub:
    """The server's state: repos by id and the log of requests."""

    def __init__(self, repos: list[FakeRepo]) -> None:
        self.repos = {repo.repo_id: repo for repo in repos}
        self.requests: list[tuple[str, str]] = []
        self.url = ""


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _error(self, code: int, error_code: str) -> None:
            data = json.dumps({"error": error_code}).encode()
            self.send_response(code)
            self.send_header("X-Error-Code", error_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self, value: object, body: bool) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _serve(self, body: bool) -> None:
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo = hub.repos.get("/".join(parts[2:4]))
                if repo is None:
                    return self._error(404, "RepoNotFound")
                kind, revision = parts[4], parts[5]
                if revision not in repo.refs and revision != repo.commit:
                    return self._error(404, "RevisionNotFound")
                if kind == "revision":
                    siblings = [{"rfilename": name} for name in sorted(repo.files)]
                    return self._json({"id": repo.repo_id, "sha": repo.commit, "siblings": siblings}, body)
                if kind == "tree":
                    return self._json([repo.entry(name) for name in sorted(repo.files)], body)
                return self._error(404, "EntryNotFound")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = hub.repos.get("/".join(parts[:2]))
                if repo is None:
                    return self._error(404, "RepoNotFound")
                if parts[3] not in repo.refs and parts[3] != repo.commit:
                    return self._error(404, "RevisionNotFound")
                name = "/".join(parts[4:])
                if name not in repo.files:
                    return self._error(404, "EntryNotFound")
                data = repo.files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("ETag", f'"{repo.etag(name)}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return None
            return self._error(404, "NotFound")

    return Handler


@contextmanager
def serve(repos: list[FakeRepo]) -> Iterator[FakeHub]:
    """Run the fake Hub on a free loopback port for the duration of the ``with`` block."""
    hub = FakeHub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
