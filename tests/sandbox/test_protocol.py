"""The event channel and the seccomp layer, without namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modelshield.sandbox import protocol
from modelshield.sandbox.hook import HookPolicy, judge

KEY = b"k" * 32


def _channel(*records: dict[str, object]) -> bytes:
    return b"".join(protocol.encode(KEY, seq, record) for seq, record in enumerate(records))


def test_valid_channel_decodes_and_ends() -> None:
    decoded = protocol.decode(KEY, _channel({"kind": "event", "rule": "X"}, {"kind": protocol.END}))
    assert decoded.ended and not decoded.problems and decoded.records[0]["rule"] == "X"


def test_forged_line_without_the_key_is_a_problem() -> None:
    forged = protocol.encode(b"x" * 32, 1, {"kind": protocol.END})
    decoded = protocol.decode(KEY, _channel({"kind": "armed"}) + forged)
    assert not decoded.ended and any("forged" in p for p in decoded.problems)


def test_replayed_or_late_lines_are_problems() -> None:
    first = _channel({"kind": "armed"})
    decoded = protocol.decode(KEY, first + first)
    assert any("out-of-order" in p for p in decoded.problems)
    late = protocol.decode(KEY, _channel({"kind": protocol.END}, {"kind": "event"}))
    assert any("after the end-of-run marker" in p for p in late.problems)


def test_hook_judgement_of_pickle_globals() -> None:
    policy = HookPolicy(frameworks=frozenset({"torch"}))
    assert judge("pickle.find_class", ("torch._utils", "_rebuild_tensor_v2"), None, policy) is None
    assert judge("pickle.find_class", ("builtins", "set"), None, policy) is None
    flagged = judge("pickle.find_class", ("builtins", "eval"), None, policy)
    assert flagged is not None and flagged.rule == "DYN-IMPORT" and not flagged.block
    tamper = judge("pickle.find_class", ("sys", "modules"), None, policy)
    assert tamper is not None and tamper.rule == "DYN-HOOK-TAMPER" and tamper.block


def test_hook_blocks_writes_outside_the_private_tmp() -> None:
    policy = HookPolicy(private_tmp="/tmp/private")
    assert judge("open", ("/tmp/private/x", "w", 0), None, policy) is None
    assert judge("open", ("/etc/passwd", "r", 0), None, policy) is None
    verdict = judge("open", ("/home/x", "w", 0), None, policy)
    assert verdict is not None and verdict.rule == "DYN-FILE-WRITE" and verdict.block


SECCOMP_PROBE = """
import errno, os, socket, threading
from modelshield.sandbox import seccomp
seccomp.apply()
results = []
for attempt in (os.fork, lambda: socket.socket(socket.AF_INET), lambda: os.execv("/bin/true", ["true"])):
    try:
        attempt()
        results.append("allowed")
    except OSError as exc:
        results.append(errno.errorcode.get(exc.errno, str(exc.errno)))
socket.socketpair(socket.AF_UNIX).__class__
t = threading.Thread(target=lambda: None); t.start(); t.join()
print(",".join(results))
"""


def test_seccomp_denies_fork_inet_sockets_and_exec_with_eperm() -> None:
    from modelshield.sandbox.seccomp import available

    if available():
        pytest.skip(available())
    done = subprocess.run([sys.executable, "-c", SECCOMP_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "EPERM,EPERM,EPERM"
