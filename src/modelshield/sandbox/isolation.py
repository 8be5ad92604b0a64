"""Namespace isolation of the detonation child: bubblewrap when present, else util-linux ``unshare``.

Either way the child gets new user, mount, PID, IPC, UTS and network namespaces (no network
interface but loopback), a read-only view of only what Python needs (``/usr``, the interpreter,
its site-packages), a fresh ``/proc`` and a minimal ``/dev``, a private size-capped tmpfs as its
only writable place, and the artifact bound read-only. If neither backend works here,
:func:`probe` raises :class:`SandboxUnavailable`: modelshield never runs a model unsandboxed.
"""

from __future__ import annotations

import enum
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from modelshield.errors import ModelShieldError

PRIVATE_TMP = "/tmp/private"
TMPFS_BYTES = 64 * 1024 * 1024
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_DEV_FILES = ("null", "zero", "full", "random", "urandom")
PROBE_TIMEOUT_S = 20.0


class SandboxUnavailable(ModelShieldError):
    """No working isolation on this machine: detonation is refused, never run unsandboxed."""


class Backend(enum.StrEnum):
    """How the child is isolated."""

    BWRAP = "bwrap"
    UNSHARE = "unshare"


@dataclass(frozen=True, slots=True)
class View:
    """What the child sees: read-only paths, symlinks (target, link), artifact paths (read-only)."""

    readonly: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    artifacts: tuple[str, ...]


def _minimal(paths: Sequence[str]) -> tuple[str, ...]:
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return tuple(kept)


def system_view(artifacts: Sequence[str] = ()) -> View:
    """The read-only system view for this interpreter, plus the artifacts."""
    paths: list[str] = ["/usr", *(p for p in _ETC_FILES if os.path.exists(p))]
    links: list[tuple[str, str]] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            links.append((os.readlink(top), top))
        elif os.path.isdir(top):
            paths.append(top)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)}:
        paths.extend({prefix, os.path.realpath(prefix)})
    too_wide = {"/", os.path.realpath(tempfile.gettempdir()), "/tmp", "/var/tmp", os.path.expanduser("~")}
    for entry in sys.path:
        # sys.path may hold a script's folder such as /tmp: never expose a whole temp or home folder
        if entry and os.path.isdir(entry) and os.path.realpath(entry) not in too_wide:
            paths.extend({os.path.abspath(entry), os.path.realpath(entry)})
    return View(_minimal(paths), tuple(links), tuple(os.path.abspath(a) for a in artifacts))


def child_env() -> dict[str, str]:
    """The child's whole environment: nothing of the caller's leaks in."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": PRIVATE_TMP,
        "TMPDIR": PRIVATE_TMP,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def bwrap_argv(command: Sequence[str], view: View) -> list[str]:
    """bubblewrap command line running ``command`` in the sandbox."""
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    argv += ["--cap-drop", "ALL", "--hostname", "modelshield-sandbox", "--uid", "65534", "--gid", "65534"]
    # The private /tmp comes first: an interpreter or venv that lives under /tmp (a CI checkout)
    # is then bound on top of it instead of being hidden by it.
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--dir", PRIVATE_TMP]
    for path in view.readonly:
        argv += ["--ro-bind", path, path]
    for target, link in view.symlinks:
        argv += ["--symlink", target, link]
    for path in view.artifacts:
        argv += ["--ro-bind", path, path]
    argv += ["--chdir", PRIVATE_TMP, "--", *command]
    return argv


# Runs as root of a new user namespace (util-linux unshare -r): builds a tmpfs root holding
# read-only binds, then chroots into it and drops every capability before running the child.
_UNSHARE_SCRIPT = r"""
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
W=$1; shift
mount -t tmpfs -o size=$1,mode=0755 modelshield "$W"; shift
R="$W/root"; mkdir "$R"
bind_ro() {
  if [ -d "$1" ]; then mkdir -p "$R$1"; else mkdir -p "$(dirname "$R$1")"; : > "$R$1"; fi
  mount --rbind "$1" "$R$1"
  mount -o remount,bind,ro "$R$1"
}
while [ "$1" != "--" ]; do
  case "$1" in
    ro:*) bind_ro "${1#ro:}" ;;
    ln:*) spec=${1#ln:}; ln -s "${spec%%:*}" "$R${spec#*:}" ;;
  esac
  shift
done
shift
mkdir -p "$R/proc" "$R/dev" "$R/tmp/private"
mount -t proc proc "$R/proc"
for d in null zero full random urandom; do : > "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
hostname modelshield-sandbox
cd "$R/tmp/private"
# Not exec: this shell stays PID 1 of the new PID namespace and the loader runs as PID 2, so
# signals (a CPU-limit SIGXCPU, our SIGKILL) act on it normally and its death by a signal is
# reported as 128+N instead of being ignored the way PID 1 ignores unhandled signals.
chroot "$R" /usr/bin/setpriv --no-new-privs --bounding-set=-all --inh-caps=-all "$@"
"""


def unshare_argv(command: Sequence[str], view: View, workdir: str) -> list[str]:
    """util-linux unshare command line running ``command`` in the sandbox (``workdir``: an empty dir)."""
    argv = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--ipc", "--uts", "--net"]
    argv += ["--kill-child", "/bin/sh", "-c", _UNSHARE_SCRIPT, "sh", workdir, str(TMPFS_BYTES)]
    argv += [f"ro:{path}" for path in (*view.readonly, *view.artifacts)]
    argv += [f"ln:{target}:{link}" for target, link in view.symlinks]
    return [*argv, "--", *command]


def _works(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, env=child_env(), capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return (done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}")[-300:]
    return ""


@functools.cache
def probe(preferred: str = "auto") -> Backend:
    """The working backend (``auto``: bubblewrap, then unshare). Raises SandboxUnavailable."""
    import tempfile

    from modelshield.sandbox import seccomp

    problems: list[str] = []
    command = [sys.executable, "-I", "-S", "-c", "pass"]
    order = [Backend.BWRAP, Backend.UNSHARE] if preferred == "auto" else [Backend(preferred)]
    for backend in order:
        if shutil.which(backend.value) is None:
            problems.append(f"{backend.value}: not installed")
            continue
        with tempfile.TemporaryDirectory(prefix="modelshield-probe-") as work:
            view = system_view()
            argv = bwrap_argv(command, view) if backend is Backend.BWRAP else unshare_argv(command, view, work)
            problem = _works(argv)
        if not problem:
            missing = seccomp.available()
            if missing:
                raise SandboxUnavailable(f"the seccomp layer is unavailable: {missing}", hint=_HINT)
            return backend
        problems.append(f"{backend.value}: {problem}")
    raise SandboxUnavailable(
        "no working sandbox on this machine, so the model is not loaded (it never runs unsandboxed): "
        + "; ".join(problems),
        hint=_HINT,
    )


_HINT = (
    "dynamic analysis needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
    "or a container started with namespaces allowed) and bubblewrap (apt-get install bubblewrap) or "
    "util-linux unshare, plus libseccomp (apt-get install libseccomp2; pip install 'modelshield[sandbox]'). "
    "Static scanning (without --dynamic) works everywhere."
)
