"""Parent side of a detonation: start the isolated child, feed it the job, watch it, read its events.

>>> result = detonate("model.pkl", "pickle")          # doctest: +SKIP
>>> [f.rule_id for f in result.findings()]           # doctest: +SKIP
['DYN-IMPORT', 'DYN-PROCESS-EXEC']
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time

from modelshield.sandbox import isolation
from modelshield.sandbox.findings import Detonation
from modelshield.sandbox.protocol import decode
from modelshield.sandbox.rlimits import SandboxLimits

__all__ = ["MAX_CHANNEL", "MAX_OUTPUT", "Detonation", "Outcome", "detonate"]

MAX_CHANNEL = 8 * 1024 * 1024
MAX_OUTPUT = 16 * 1024


class Outcome:
    """How a detonation ended (plain strings, stable in reports)."""

    COMPLETED = "completed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    CUT_SHORT = "cut-short"


def _command() -> list[str]:
    return [sys.executable, "-I", "-B", "-m", "modelshield.sandbox.child"]


def _argv(backend: isolation.Backend, visible: list[str], workdir: str) -> list[str]:
    view = isolation.system_view(visible)
    if backend is isolation.Backend.BWRAP:
        return isolation.bwrap_argv(_command(), view)
    return isolation.unshare_argv(_command(), view, workdir)


def detonate(
    path: str,
    loader: str,
    *,
    limits: SandboxLimits | None = None,
    backend: str = "auto",
    seccomp: bool = True,
) -> Detonation:
    """Load ``path`` with ``loader`` in the sandbox and return what it did.

    Raises :class:`~modelshield.sandbox.isolation.SandboxUnavailable` when no sandbox works here.
    ``seccomp=False`` exists only to test the other layers alone.
    """
    limits = limits or SandboxLimits()
    chosen = isolation.probe(backend)
    path = os.path.abspath(path)
    visible = [os.path.dirname(path)] if loader in {"remote-code", "jinja-chat-template"} else [path]
    key = secrets.token_bytes(32)
    read_fd, write_fd = os.pipe()
    job = {"loader": loader, "path": path, "fd": write_fd, "key": key.hex(), "limits": limits.to_dict()}
    job |= {"seccomp": seccomp, "private_tmp": isolation.PRIVATE_TMP, "visible": visible}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelshield-detonate-") as workdir:
        try:
            process = subprocess.Popen(
                _argv(chosen, visible, workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=isolation.child_env(),
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        streams, timed_out = _supervise(process, read_fd, json.dumps(job).encode(), limits.wall_s)
    decoded = decode(key, streams["channel"])
    outcome = _outcome(process.returncode, timed_out, decoded.ended)
    return Detonation(
        path,
        loader,
        chosen.value,
        outcome,
        time.perf_counter() - started,
        process.returncode,
        decoded.records,
        decoded.problems,
        streams["stdout"][-MAX_OUTPUT:].decode(errors="replace"),
        streams["stderr"][-MAX_OUTPUT:].decode(errors="replace"),
        limits,
    )


def _outcome(returncode: int | None, timed_out: bool, ended: bool) -> str:
    if timed_out:
        return Outcome.TIMEOUT
    if ended and returncode == 0:
        return Outcome.COMPLETED
    if returncode is not None and (returncode < 0 or returncode > 128):
        return Outcome.KILLED
    return Outcome.CUT_SHORT


def _supervise(
    process: subprocess.Popen[bytes], read_fd: int, job: bytes, wall_s: float
) -> tuple[dict[str, bytes], bool]:
    """Send the job, collect channel/stdout/stderr until all close, kill at the deadline."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        process.stdin.write(job)
        process.stdin.close()
    except BrokenPipeError:
        pass
    buffers = {"channel": bytearray(), "stdout": bytearray(), "stderr": bytearray()}
    deadline = time.monotonic() + wall_s
    timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(read_fd, selectors.EVENT_READ, "channel")
        selector.register(process.stdout, selectors.EVENT_READ, "stdout")
        selector.register(process.stderr, selectors.EVENT_READ, "stderr")
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in selector.select(timeout=min(remaining, 1.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                cap = MAX_CHANNEL if key.data == "channel" else MAX_OUTPUT * 4
                if len(buffers[key.data]) < cap:
                    buffers[key.data] += chunk
    _reap(process, kill=timed_out)
    os.close(read_fd)
    process.stdout.close()
    process.stderr.close()
    return {name: bytes(data) for name, data in buffers.items()}, timed_out


def _reap(process: subprocess.Popen[bytes], *, kill: bool) -> None:
    if not kill:
        try:
            process.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
