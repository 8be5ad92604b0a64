"""Dynamic detonation: load a model for real inside an isolated child and report what it tries.

This is the only place in modelshield (with ``guard/``) that runs untrusted content, and it only
does so in a child process that is isolated in layers:

1. namespaces (user, mount, PID, IPC, UTS, network) through bubblewrap or util-linux ``unshare``,
   with a read-only view of the system (see :mod:`modelshield.sandbox.isolation`);
2. a seccomp filter that makes process creation, non-AF_UNIX sockets, ptrace, mount and similar
   system calls fail with EPERM (see :mod:`modelshield.sandbox.seccomp`);
3. resource limits and a wall-clock timeout (see :mod:`modelshield.sandbox.rlimits`);
4. a PEP 578 audit hook, installed before anything untrusted runs, that records every
   security-relevant event over an authenticated channel and blocks the dangerous ones
   (see :mod:`modelshield.sandbox.hook`).

Public entry points (import them from their modules; this package imports nothing so the
child starts fast):

* :func:`modelshield.sandbox.runner.detonate` - detonate one file or folder;
* :func:`modelshield.sandbox.isolation.probe` - is a sandbox available here, and which one;
* :func:`modelshield.sandbox.dynamic.add_dynamic_findings` - merge detonations into a ScanReport.
"""
