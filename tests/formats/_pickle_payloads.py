"""Hand-assembled and generated malicious pickles for the pickle engine tests.

Every payload only creates a canary file given by the test (in tmp_path). Builders return bytes;
nothing here loads anything.
"""

from __future__ import annotations

import marshal
import os
import pickle
import struct
import subprocess
import sys


def s0(text: str) -> bytes:
    """Protocol-0 STRING literal line."""
    return b"S" + repr(text).encode() + b"\n"


def u4(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def g0(module: str, name: str) -> bytes:
    """GLOBAL."""
    return f"c{module}\n{name}\n".encode()


def call0(func: bytes, *args: bytes) -> bytes:
    """func(*args) with MARK ... TUPLE REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def touch(canary: str) -> str:
    """Shell command creating the canary."""
    return f"touch {canary}"


class _Reduce:
    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def reduce_obj(func: object, *args: object) -> object:
    """An object that pickles as ``func(*args)``."""
    return _Reduce(func, args)


def os_system(canary: str, proto: int) -> bytes:
    """os.system via pickle.dumps at any protocol."""
    return pickle.dumps(reduce_obj(os.system, touch(canary)), protocol=proto)


def payloads(canary: str, tmp: str) -> dict[str, bytes]:
    """Every malicious sample by name (the canary is created only if one is loaded)."""
    cmd = touch(canary)
    pycode = f"open({canary!r}, 'w').close()"
    script = os.path.join(tmp, "payload_script.py")
    with open(script, "w") as fh:
        fh.write(pycode + "\n")
    code = marshal.dumps(compile(pycode, "<payload>", "exec"))
    out: dict[str, bytes] = {f"os-system-p{p}": os_system(canary, p) for p in range(6)}
    out["subprocess-popen"] = pickle.dumps(reduce_obj(subprocess.Popen, ["touch", canary]), protocol=2)
    out["subprocess-run"] = pickle.dumps(reduce_obj(subprocess.run, ["touch", canary]), protocol=4)
    out["eval"] = call0(g0("builtins", "eval"), s0(f"__import__('os').system({cmd!r})")) + b"."
    out["exec"] = call0(g0("builtins", "exec"), s0(pycode)) + b"."
    out["import-getattr-chain"] = (
        call0(call0(g0("builtins", "getattr"), call0(g0("builtins", "__import__"), s0("os")), s0("system")), s0(cmd))
        + b"."
    )
    out["runpy"] = call0(g0("runpy", "run_path"), s0(script)) + b"."
    out["importlib"] = (
        call0(
            call0(g0("builtins", "getattr"), call0(g0("importlib", "import_module"), s0("os")), s0("system")), s0(cmd)
        )
        + b"."
    )
    out["marshal-functiontype"] = (
        b"\x80\x03"
        + g0("types", "FunctionType")
        + b"("
        + g0("marshal", "loads")
        + b"(B"
        + struct.pack("<I", len(code))
        + code
        + b"tR}tR)R."
    )
    out["operator-attrgetter"] = (
        call0(call0(g0("operator", "attrgetter"), s0("system")), call0(g0("builtins", "__import__"), s0("os")))
        + b"("
        + s0(cmd)
        + b"tR."
    )
    # BUILD gadget: plant __setstate__ on an allowlisted instance via slot state, then BUILD again.
    out["build-gadget"] = (
        b"\x80\x02"
        + g0("argparse", "Namespace")
        + b")\x81"
        + b"N}"
        + u4("__setstate__")
        + g0("os", "system")
        + b"s\x86b"
        + u4(cmd)
        + b"b."
    )
    # STACK_GLOBAL with module/name strings fetched from the memo, global memoised and called later.
    out["stack-global-memo"] = (
        b"\x80\x04"
        + u4("os")
        + b"\x94"
        + u4("system")
        + b"\x94"
        + b"00"
        + b"h\x00h\x01\x93\x94"
        + b"0"
        + b"h\x02"
        + u4(cmd)
        + b"\x85R."
    )
    out["inst"] = b"(" + s0(cmd) + b"ios\nsystem\n."
    out["obj"] = b"(" + g0("os", "system") + s0(cmd) + b"o."
    out["newobj-ex"] = b"\x80\x04" + g0("subprocess", "Popen") + b"]" + u4("touch") + b"a" + b"\x85}\x92."
    out["protocol0-text"] = os_system(canary, 0)
    benign = pickle.dumps({"weights": [1.0, 2.0]}, protocol=2)
    out["payload-before-broken-stream"] = os_system(canary, 2)[:-1] + b"\xff\xfe garbage"
    out["second-stream-after-benign"] = benign + os_system(canary, 4)
    return out


def subprocess_load(path: str, loader: str = "pickle") -> int:
    """Load ``path`` with a real loader in a throwaway child process; return its exit code."""
    code = {
        "pickle": "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",
    }[loader]
    return subprocess.run([sys.executable, "-c", code, path], capture_output=True, timeout=60).returncode
