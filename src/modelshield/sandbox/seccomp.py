"""The seccomp layer (applied in the child, after the framework is imported, before the load).

System calls that a model load never needs fail with EPERM instead of killing the process, so an
attempt that gets past the audit hook (native code, a C extension) is still stopped and the
Python-level error it causes is observed. Uses libseccomp through ``pyseccomp`` (extra
``modelshield[sandbox]``); :func:`available` says whether it can be used here.
"""

from __future__ import annotations

import errno
import importlib
import socket
from typing import Any

#: System calls denied outright (EPERM). Missing names on an architecture are skipped.
DENIED = [
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "keyctl",
    "add_key",
    "request_key",
    "name_to_handle_at",
    "open_by_handle_at",
    "settimeofday",
    "clock_settime",
    "sethostname",
    "setdomainname",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
]
CLONE_THREAD = 0x00010000


def available() -> str:
    """Empty string when seccomp can be used, else why not (for the refusal message)."""
    try:
        importlib.import_module("pyseccomp")
    except (ImportError, OSError) as exc:
        return f"pyseccomp/libseccomp unavailable ({exc}); install libseccomp2 and `pip install modelshield[sandbox]`"
    return ""


def build_filter() -> Any:
    """The filter: allow by default, deny the listed calls, threads only, AF_UNIX sockets only."""
    sc: Any = importlib.import_module("pyseccomp")

    deny = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            flt.add_rule(deny, name)
        except (ValueError, RuntimeError, OSError):
            continue  # not a system call on this architecture
    # clone without CLONE_THREAD creates a process; clone3 hides its flags, so make libc fall back to clone.
    flt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for call in ("socket", "socketpair"):
        flt.add_rule(deny, call, sc.Arg(0, sc.NE, socket.AF_UNIX))
    return flt


def apply() -> None:
    """Load the filter into this process (sets no_new_privs). Raises OSError if the kernel refuses."""
    build_filter().load()
