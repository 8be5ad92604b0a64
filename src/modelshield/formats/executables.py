"""Generic checks: native executables, shebang scripts and the EICAR test string.

A model folder has no business shipping an ELF, PE or Mach-O binary or a shell script, and
weights must not carry one appended (the trailing-bytes child blobs other readers yield land
here). The EICAR test string is reported wherever it is seen, so anti-malware pipelines can be
tested end to end.

:func:`generic_findings` is the reusable part: other readers (text, JSON, Python source) call
it on small content to look for EICAR, embedded executables and the bundled YARA rules.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.formats._sniff import EICAR, executable_kind, shebang_line, sniff_eicar, sniff_executable
from modelshield.formats.interface import Blob, Reader, ScanContext, detect, register_reader
from modelshield.rules import rule
from modelshield.types import Category, Finding, Severity

#: Content up to this size is read whole for the generic checks (EICAR, YARA).
GENERIC_SCAN_MAX = 16 * 1024 * 1024
_CHUNK = 1 << 20

EICAR_RULE = rule(
    "EICAR-TEST-FILE",
    "EICAR anti-malware test string",
    Severity.CRITICAL,
    Category.MALICIOUS_CODE,
    "The file contains the EICAR test string, which every anti-malware product treats as "
    "malware. It is harmless by itself but proves that content was planted or that a "
    "detection pipeline is being tested.",
    "Remove the file; if this is a pipeline test, the scanner worked.",
)
EXECUTABLE = rule(
    "EMBEDDED-EXECUTABLE",
    "Native executable in a model",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A native executable (ELF, PE or Mach-O) was found in the model folder or appended to model "
    "data. Models need no native programs; a dropper hides its payload this way.",
    "Remove the binary and obtain the model from a trusted source; never run the file.",
    ("CWE-506",),
)
SCRIPT = rule(
    "SHEBANG-SCRIPT",
    "Executable script in a model",
    Severity.HIGH,
    Category.MALICIOUS_CODE,
    "A script with a '#!' interpreter line was found in the model or appended to model data. "
    "Model files are data; scripts shipped with them run with the user's rights.",
    "Review the script before anything runs it, or remove it from the model.",
    ("CWE-506",),
)


def read_small(blob: Blob, limit: int = GENERIC_SCAN_MAX) -> bytes | None:
    """All bytes of ``blob`` when it is at most ``limit`` bytes long, else None."""
    if blob.size < 0 or blob.size > limit:
        return None
    with blob.open() as stream:
        return stream.read(limit + 1)[:limit]


def eicar_offsets(blob: Blob, ctx: ScanContext, limit: int = GENERIC_SCAN_MAX) -> Iterator[int]:
    """Offsets of the EICAR string in the first ``limit`` bytes of ``blob``, streamed in chunks."""
    keep = len(EICAR) - 1
    with blob.open() as stream:
        base = 0
        tail = b""
        while base < limit and (chunk := stream.read(_CHUNK)):
            ctx.check_time()
            window = tail + chunk
            start = 0
            while (hit := window.find(EICAR, start)) >= 0:
                yield base - len(tail) + hit
                start = hit + 1
            tail = window[-keep:]
            base += len(chunk)


def generic_findings(data: bytes, ctx: ScanContext, *, executables: bool = True) -> Iterator[Finding]:
    """EICAR, embedded executables (when ``executables``) and YARA matches in ``data``."""
    hit = data.find(EICAR)
    if hit >= 0:
        yield ctx.finding(EICAR_RULE.id, "EICAR anti-malware test string found", offset=hit, evidence=EICAR.decode())
    if executables:
        for marker in (b"\x7fELF", b"MZ"):
            start = data.find(marker, 1)
            while start > 0:
                kind = executable_kind(data[start : start + 4096])
                if kind:
                    yield ctx.finding(EXECUTABLE.id, f"{kind} embedded at byte {start}", offset=start, evidence=kind)
                    break
                start = data.find(marker, start + 1)
    from modelshield.analyzers.yara_rules import yara_findings

    yield from yara_findings(data, ctx)


def _next_reader(skip: Reader, head: bytes, blob: Blob) -> Reader | None:
    return detect(blob, head, below=skip.priority)


@register_reader
class EicarReader(Reader):
    """Reports the EICAR test string at the start of a blob, then lets the real reader parse it."""

    name = "eicar"
    priority = 1000

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """The EICAR string in the first bytes (the whole blob when it is small)."""
        return sniff_eicar(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """One critical finding per occurrence, then the next matching reader's output."""
        head = blob.head()
        for offset in eicar_offsets(blob, ctx):
            yield ctx.finding(EICAR_RULE.id, "EICAR anti-malware test string found", offset=offset)
        nxt = _next_reader(self, head, blob)
        if nxt is not None:
            ctx.format = nxt.name
            for item in nxt.read(blob, ctx):
                if not (isinstance(item, Finding) and item.rule_id == EICAR_RULE.id):  # reported above
                    yield item
        else:
            ctx.format = "eicar"


@register_reader
class ExecutableReader(Reader):
    """ELF, PE and Mach-O binaries and ``#!`` scripts (alone or carved from trailing bytes)."""

    name = "executable"
    priority = 95

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A native executable header or a shebang line that is not a Python script."""
        return sniff_executable(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """One high finding naming the executable kind; scripts are also checked for EICAR/YARA."""
        head = blob.head()
        kind = executable_kind(head)
        where = "appended to model data" if blob.members and "@" in blob.members[-1] else "in the model"
        if kind:
            ctx.format = "executable"
            yield ctx.finding(EXECUTABLE.id, f"{kind} {where}", offset=0, evidence=f"{kind}; first bytes {head[:16]!r}")
            data = read_small(blob)
            if data is not None:
                from modelshield.analyzers.yara_rules import yara_findings

                yield from yara_findings(data, ctx)
            return
        ctx.format = "script"
        line = shebang_line(head) or ""
        yield ctx.finding(
            SCRIPT.id, f"script for #!{line} {where}", offset=0, evidence=head.split(b"\n", 1)[0].decode()
        )
        data = read_small(blob)
        if data is not None:
            yield from generic_findings(data, ctx, executables=False)
