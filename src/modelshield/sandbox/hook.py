"""The PEP 578 audit hook of the sandboxed child (runs in the child; standard library only).

:func:`install` adds the hook before anything untrusted runs. It stays passive while the child
prepares (imports the framework, sets limits), records nothing until :meth:`HookControl.arm`,
and from then on judges every security-relevant event: recorded events go to the parent over
the authenticated channel (:mod:`modelshield.sandbox.protocol`), dangerous ones are blocked by
raising ``PermissionError`` from the hook, which aborts the audited operation.

The hook's state (channel fd, key, sequence number) lives in closures: a payload can reach it
only through frames or the garbage collector, and those routes are audited themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from modelshield.sandbox import protocol

# Rule ids the child reports (declared with their text in modelshield.sandbox.findings).
PROCESS = "DYN-PROCESS-EXEC"
NETWORK = "DYN-NETWORK"
FILE_WRITE = "DYN-FILE-WRITE"
FILE_READ = "DYN-FILE-READ"
CODE_EXEC = "DYN-CODE-EXEC"
IMPORT = "DYN-IMPORT"
TAMPER = "DYN-HOOK-TAMPER"
ENVIRONMENT = "DYN-ENVIRONMENT"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "f_locals", "f_globals"})
_CODE_ATTRS = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__closure__", "__class__", "__bases__"})
# Standard-library modules whose functions are the usual gadgets (never needed to rebuild data).
SENSITIVE_MODULES = frozenset(
    [
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "socket",
        "_socket",
        "ssl",
        "ctypes",
        "_ctypes",
        "pty",
        "shutil",
        "multiprocessing",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "telnetlib",
        "webbrowser",
        "code",
        "codeop",
        "runpy",
        "importlib",
        "zipimport",
        "pickle",
        "_pickle",
        "marshal",
        "shelve",
        "tempfile",
        "signal",
        "asyncio",
        "threading",
        "_thread",
        "sys",
        "builtins",
        "gc",
        "inspect",
        "platform",
        "pdb",
        "bdb",
        "timeit",
        "trace",
        "profile",
        "cProfile",
        "pydoc",
        "idlelib",
        "lib2to3",
        "distutils",
        "ensurepip",
        "venv",
        "operator",
        "_operator",
        "functools",
        "types",
        "io",
        "_io",
        "mmap",
        "resource",
        "fcntl",
        "select",
        "selectors",
        "xmlrpc",
        "socketserver",
        "sched",
        "site",
        "sysconfig",
        "commands",
        "modelshield",
    ]
)
# Globals that legitimate data pickles reference outside the framework packages.
SAFE_BUILTINS = frozenset(
    [
        "set",
        "frozenset",
        "dict",
        "list",
        "tuple",
        "int",
        "float",
        "complex",
        "bytes",
        "bytearray",
        "str",
        "slice",
        "range",
        "bool",
        "object",
    ]
)
SAFE_STDLIB_GLOBALS = frozenset(
    [
        "collections",
        "copyreg",
        "_codecs",
        "datetime",
        "decimal",
        "fractions",
        "uuid",
        "enum",
        "array",
        "re",
        "pathlib",
        "numbers",
    ]
)


@dataclass
class HookPolicy:
    """What the loader legitimately does: packages it imports, where trusted code lives."""

    frameworks: frozenset[str] = frozenset()
    trusted_roots: tuple[str, ...] = ()
    untrusted_roots: tuple[str, ...] = ()
    code_roots: tuple[str, ...] = ()
    code_callers: tuple[str, ...] = ()
    private_tmp: str = ""
    readable_roots: tuple[str, ...] = ()
    stdlib: frozenset[str] = field(default_factory=lambda: frozenset(sys.stdlib_module_names))


@dataclass
class Verdict:
    """The hook's judgement of one event."""

    rule: str
    block: bool
    detail: str = ""
    severity: str = ""


class HookControl:
    """One-shot controls of the installed hook, held only by the child's main function."""

    def __init__(
        self,
        configure: Callable[[int, bytes, HookPolicy], None],
        arm: Callable[[], None],
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self.configure = configure
        self.arm = arm
        self.send = send


def describe(value: object, limit: int = 300) -> str:
    """A short, safe text for an audit argument (code objects by name, long values cut)."""
    if isinstance(value, CodeType):
        return f"<code {value.co_name} from {value.co_filename}>"
    if isinstance(value, (list, tuple)) and len(value) > 20:
        value = [*value[:20], "..."]
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not break the hook
        text = f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots if root)


def _trusted_file(path: str, policy: HookPolicy) -> bool:
    return _under(path, policy.trusted_roots) and not _under(path, policy.untrusted_roots)


def _importing(caller: FrameType | None) -> bool:
    return caller is not None and caller.f_code.co_filename.startswith("<frozen importlib")


def _module_expected(module: str, policy: HookPolicy) -> bool:
    top = module.split(".", 1)[0]
    if top in policy.frameworks:
        return True
    return top in policy.stdlib and top not in SENSITIVE_MODULES


def _judge_find_class(args: tuple[Any, ...], policy: HookPolicy) -> Verdict | None:
    module, name = str(args[0]), str(args[1])
    top = module.split(".", 1)[0]
    if (
        top in {"sys", "gc", "modelshield", "ctypes", "_ctypes", "__main__"}
        or module == "builtins"
        and name == "__import__"
    ):
        return Verdict(TAMPER, True, f"pickle global {module}.{name} reaches the interpreter's internals")
    if top in policy.frameworks or top in SAFE_STDLIB_GLOBALS:
        return None
    if module in {"builtins", "__builtin__"} and name in SAFE_BUILTINS:
        return None
    detail = f"pickle global {module}.{name} is outside what this loader needs"
    if top not in policy.stdlib and top not in {"__builtin__", "builtins"}:
        return Verdict(IMPORT, False, detail + " (code of an unknown package)", "low")
    return Verdict(IMPORT, False, detail)


def _initiator(caller: FrameType | None) -> FrameType | None:
    while caller is not None and caller.f_code.co_filename.startswith("<frozen importlib"):
        caller = caller.f_back
    return caller


def _judge_import(args: tuple[Any, ...], caller: FrameType | None, policy: HookPolicy) -> Verdict | None:
    module = str(args[0])
    if _module_expected(module, policy):
        return None
    initiator = _initiator(caller)
    if initiator is not None and _trusted_file(initiator.f_code.co_filename, policy):
        return None  # a library's own lazy import; the payload reaching that library was judged already
    return Verdict(IMPORT, False, f"imports module {module} outside what this loader needs")


def _judge_open(args: tuple[Any, ...], policy: HookPolicy) -> Verdict | None:
    path, mode, flags = args[0], args[1], args[2]
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(int(flags or 0) & _WRITE_FLAGS)
    if not writing:
        return _judge_read(path, policy)
    if isinstance(path, (str, bytes)) and _under(os.fsdecode(path), (policy.private_tmp,)):
        return None
    return Verdict(FILE_WRITE, True, f"opens {path!r} for writing")


def _judge_read(path: object, policy: HookPolicy) -> Verdict | None:
    if not isinstance(path, (str, bytes)) or not policy.readable_roots:
        return None
    text = os.path.join(policy.private_tmp or "/", os.fsdecode(path))
    if _under(os.path.normpath(text), policy.readable_roots):
        return None
    return Verdict(FILE_READ, True, f"reads {path!r}, outside the model and the loader's own files")


def _judge_path_change(args: tuple[Any, ...], policy: HookPolicy) -> Verdict | None:
    path = args[0] if args else ""
    if isinstance(path, (str, bytes)) and _under(os.fsdecode(path), (policy.private_tmp,)):
        return None
    return Verdict(FILE_WRITE, True, "changes the file system")


def _judge_code(event: str, args: tuple[Any, ...], caller: FrameType | None, policy: HookPolicy) -> Verdict | None:
    origin = args[1] if event == "compile" and len(args) > 1 else args[0] if args else None
    filename = origin.co_filename if isinstance(origin, CodeType) else str(origin)
    if _importing(caller) and (
        event.startswith("marshal") or _trusted_file(filename, policy) or _under(filename, policy.code_roots)
    ):
        return None
    if caller is not None and _under(caller.f_code.co_filename, policy.code_callers):
        return None
    return Verdict(CODE_EXEC, True, "runs dynamically built code")


def _judge_frames(event: str, args: tuple[Any, ...], caller: FrameType | None, policy: HookPolicy) -> Verdict | None:
    if event == "object.__getattr__" and str(args[1]) not in _FRAME_ATTRS:
        return None
    if event in {"object.__setattr__", "object.__delattr__"}:
        if str(args[1]) not in _CODE_ATTRS or caller is not None and _trusted_file(caller.f_code.co_filename, policy):
            return None
        return Verdict(CODE_EXEC, True, f"rebinds {args[1]} of {describe(args[0], 80)}")
    if event == "sys._getframe" and caller is not None and _trusted_file(caller.f_code.co_filename, policy):
        return None
    return Verdict(TAMPER, True, "inspects interpreter frames or objects (could reach the monitor)")


_SIMPLE: dict[str, Verdict] = {
    **{e: Verdict(PROCESS, True, "starts a process") for e in ("os.system", "subprocess.Popen", "os.posix_spawn")},
    **{e: Verdict(PROCESS, True, "forks the process") for e in ("os.fork", "os.forkpty")},
    **{e: Verdict(PROCESS, True, "signals a process") for e in ("os.kill", "os.killpg", "os.startfile")},
    **{
        e: Verdict(NETWORK, True, "opens a network connection")
        for e in (
            "socket.connect",
            "socket.bind",
            "socket.sendto",
            "socket.sendmsg",
            "http.client.connect",
            "http.client.send",
            "ftplib.connect",
            "smtplib.connect",
            "poplib.connect",
            "imaplib.open",
            "nntplib.connect",
            "telnetlib.Telnet.open",
        )
    },
    **{
        e: Verdict(NETWORK, False, "resolves a network address")
        for e in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr")
    },
    "urllib.Request": Verdict(NETWORK, True, "requests a URL"),
    "webbrowser.open": Verdict(NETWORK, True, "opens a web browser"),
    **{e: Verdict(TAMPER, True, "installs a hook on the interpreter") for e in ("sys.addaudithook", "sys.settrace")},
    "sys.setprofile": Verdict(TAMPER, True, "installs a hook on the interpreter"),
    **{e: Verdict(TAMPER, True, "changes resource limits") for e in ("resource.setrlimit", "resource.prlimit")},
    **{e: Verdict(ENVIRONMENT, True, "changes the environment") for e in ("os.putenv", "os.unsetenv")},
    "function.__new__": Verdict(CODE_EXEC, False, "builds a function object"),
    "code.__new__": Verdict(CODE_EXEC, False, "builds a code object"),
}
_PATH_CHANGES = frozenset(
    [
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.mkdir",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.symlink",
        "os.link",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.move",
        "shutil.chown",
        "shutil.make_archive",
        "shutil.unpack_archive",
    ]
)
_CODE_EVENTS = frozenset({"exec", "compile", "marshal.loads", "marshal.load"})
_FRAME_EVENTS = frozenset(
    {"sys._getframe", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "object.__getattr__"}
    | {"object.__setattr__", "object.__delattr__"}
)
_PREFIXES = ("os.exec", "os.spawn", "ctypes.", "os.posix_spawn")


def judge(event: str, args: tuple[Any, ...], caller: FrameType | None, policy: HookPolicy) -> Verdict | None:
    """Judge one audit event: None (legitimate or irrelevant) or what to record and whether to block."""
    simple = _SIMPLE.get(event)
    if simple is not None:
        return simple
    if event == "pickle.find_class":
        return _judge_find_class(args, policy)
    if event == "import":
        return _judge_import(args, caller, policy)
    if event == "open":
        return _judge_open(args, policy)
    if event in _PATH_CHANGES:
        return _judge_path_change(args, policy)
    if event in _CODE_EVENTS:
        return _judge_code(event, args, caller, policy)
    if event in _FRAME_EVENTS:
        return _judge_frames(event, args, caller, policy)
    if event == "socket.__new__":
        family = args[1] if len(args) > 1 else None
        return None if family == 1 else Verdict(NETWORK, True, f"creates a network socket (family {family})")
    if event.startswith("ctypes."):
        return Verdict(CODE_EXEC, True, "calls native code through ctypes")
    if event.startswith(("os.exec", "os.spawn")):
        return Verdict(PROCESS, True, "starts a process")
    return None


def _judge_safely(event: str, args: tuple[Any, ...], caller: FrameType | None, policy: HookPolicy) -> Verdict | None:
    try:
        return judge(event, args, caller, policy)
    except Exception as exc:  # noqa: BLE001 - hostile arguments must not break the monitor
        return Verdict(TAMPER, False, f"event with arguments the monitor could not judge ({type(exc).__name__})")


def _interesting(event: str) -> bool:
    return (
        event in _SIMPLE
        or event in _PATH_CHANGES
        or event in _CODE_EVENTS
        or event in _FRAME_EVENTS
        or event in {"pickle.find_class", "import", "open", "socket.__new__"}
        or event.startswith(_PREFIXES)
    )


def install() -> HookControl:
    """Add the audit hook (passive until armed) and return its one-shot controls."""
    state: dict[str, Any] = {"armed": False, "busy": False, "fd": -1, "key": b"", "seq": 0, "policy": HookPolicy()}

    def send(record: dict[str, Any]) -> None:
        line = protocol.encode(state["key"], state["seq"], record)
        state["seq"] += 1
        view = memoryview(line)
        while view:
            view = view[os.write(state["fd"], view) :]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not state["armed"] or state["busy"] or not _interesting(event):
            return
        state["busy"] = True
        verdict = None
        try:
            verdict = _judge_safely(event, args, sys._getframe(1), state["policy"])
            if verdict is not None:
                call = f"{event}({', '.join(describe(a) for a in args)})"
                send({"kind": "event", "event": event, "rule": verdict.rule, "blocked": verdict.block,
                      "detail": verdict.detail, "call": call, "severity": verdict.severity})  # fmt: skip
        finally:
            state["busy"] = False
        if verdict is not None and verdict.block:
            raise PermissionError(f"blocked by the modelshield sandbox: {event}")

    def configure(fd: int, key: bytes, policy: HookPolicy) -> None:
        if state["fd"] != -1:
            raise PermissionError("the sandbox hook is already configured")
        state.update(fd=fd, key=key, policy=policy)

    def arm() -> None:
        state["armed"] = True

    sys.addaudithook(hook)
    return HookControl(configure, arm, send)
