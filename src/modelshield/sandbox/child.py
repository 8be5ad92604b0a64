"""Entry point of the sandboxed child: ``python -I -B -m modelshield.sandbox.child``.

Order matters: the audit hook is installed first, before the job is even read; then the loader's
framework is imported (trusted), limits and the seccomp filter are applied, the hook is armed,
and only then the untrusted load runs. Every outcome ends with an authenticated end-of-run
marker; a run without one was cut short (killed, or tampered with).
"""

from __future__ import annotations

from modelshield.sandbox import hook

_CONTROL = hook.install()  # first: before anything reads the job or touches the artifact

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
from typing import Any  # noqa: E402

from modelshield.sandbox import protocol, rlimits, seccomp  # noqa: E402
from modelshield.sandbox.loaders import LOADERS, Loader, LoaderUnavailable, Prepared  # noqa: E402

MAX_JOB = 1 << 20
_WATCHED_MODULES = ("os", "sys", "builtins", "posix", "subprocess", "socket", "pickle", "modelshield.sandbox.hook")
_WATCHED_BUILTINS = ("open", "__import__", "exec", "eval", "compile", "getattr", "setattr")


def _trusted_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(sorted(os.path.realpath(r) for r in roots) + sorted(roots))


# Standard-library code that legitimately compiles code while a framework loads data: ast.parse
# (an AST only), typing's forward references, dataclass and namedtuple generated methods. The
# payload cannot reach them without a pickle global outside the expected set, which is reported.
_SYSTEM_READABLE = ("/proc", "/sys", "/dev", "/etc", "/usr", "/lib", "/lib64", "/bin")
_STDLIB_CODE_CALLERS = ("ast.py", "typing.py", "dataclasses.py", "collections/__init__.py")


def _policy(loader: Loader, prepared: Prepared, job: dict[str, Any]) -> hook.HookPolicy:
    sandbox_dir = os.path.dirname(os.path.abspath(__file__))
    stdlib = sysconfig.get_paths()["stdlib"]
    callers = tuple(os.path.join(stdlib, name) for name in _STDLIB_CODE_CALLERS)
    return hook.HookPolicy(
        frameworks=loader.frameworks | prepared.frameworks,
        trusted_roots=_trusted_roots(),
        untrusted_roots=(sandbox_dir, os.path.realpath(sandbox_dir), *prepared.code_roots),
        code_roots=prepared.code_roots,
        code_callers=(*prepared.code_callers, *callers, *(os.path.realpath(c) for c in callers)),
        private_tmp=str(job.get("private_tmp", "")),
        readable_roots=(
            *_trusted_roots(),
            *prepared.code_roots,
            *(str(p) for p in job.get("visible", ())),
            *_SYSTEM_READABLE,
            str(job.get("private_tmp", "")),
        ),
    )


def _snapshot() -> dict[str, int]:
    import builtins

    state = {f"sys.modules[{name!r}]": id(sys.modules.get(name)) for name in _WATCHED_MODULES}
    state.update({f"builtins.{name}": id(getattr(builtins, name, None)) for name in _WATCHED_BUILTINS})
    state["sys.modules"] = id(sys.modules)
    return state


def _tamper_events(before: dict[str, int]) -> list[dict[str, Any]]:
    after = _snapshot()
    return [
        {
            "kind": "event",
            "event": "integrity",
            "rule": hook.TAMPER,
            "blocked": False,
            "detail": f"{name} was replaced during the load",
            "call": name,
        }  # fmt: skip
        for name, ident in before.items()
        if after.get(name) != ident
    ]


def _run_load(loader: Loader, path: str, prepared: Prepared) -> dict[str, Any]:
    try:
        loaded = loader.load(path, prepared)
    except MemoryError:
        return {"kind": "limit", "detail": "memory limit reached during the load (MemoryError)"}
    except RecursionError:
        return {"kind": "limit", "detail": "recursion limit reached during the load"}
    except LoaderUnavailable as exc:
        return {"kind": "unavailable", "detail": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - the payload may raise anything, SystemExit included
        return {"kind": "load-error", "detail": hook.describe(exc, 500), "type": type(exc).__name__}
    summary = hook.describe(type(loaded).__name__, 100)
    del loaded
    gc.collect()  # run finalizers (__del__ payloads) while still watched
    return {"kind": "loaded", "detail": f"loaded an object of type {summary}"}


def main() -> int:
    """Read the job from stdin, prepare, lock down, arm the hook, load, report."""
    control = globals().pop("_CONTROL")  # held only by this frame from now on
    send = control.send
    job = json.loads(sys.stdin.buffer.read(MAX_JOB))
    loader = LOADERS[job["loader"]]
    path = job["path"]
    try:
        prepared = loader.prepare(path)
    except LoaderUnavailable as exc:
        control.configure(int(job["fd"]), bytes.fromhex(job["key"]), hook.HookPolicy())
        send({"kind": "unavailable", "detail": str(exc)})
        send({"kind": protocol.END})
        return 0
    control.configure(int(job["fd"]), bytes.fromhex(job["key"]), _policy(loader, prepared, job))
    rlimits.apply(job["limits"])
    if job.get("seccomp", True):
        seccomp.apply()
    send({"kind": "armed", "loader": loader.name, "seccomp": bool(job.get("seccomp", True))})
    before = _snapshot()
    control.arm()
    del control
    outcome = _run_load(loader, path, prepared)
    for event in _tamper_events(before):
        send(event)
    send(outcome)
    send({"kind": protocol.END})
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: nothing of the payload runs after the end marker
