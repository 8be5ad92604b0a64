"""Python source shipped with a model (``modeling_*.py`` for trust_remote_code, pipelines, scripts).

Parsed with :func:`ast.parse` (never imported or run) into a :class:`PythonSource`, which
:mod:`modelshield.analyzers.python_code` reviews. The generic checks (EICAR, YARA) run too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from modelshield._record import record
from modelshield.errors import FormatError, LimitExceeded
from modelshield.formats._sniff import sniff_python_source
from modelshield.formats.executables import generic_findings
from modelshield.formats.interface import Blob, Reader, ScanContext, register_reader

MAX_SOURCE_BYTES = 8 * 1024 * 1024


@record
class PythonSource:
    """A parsed Python file: its name (for evidence), source lines and syntax tree."""

    filename: str
    lines: tuple[str, ...]
    tree: ast.Module

    def line(self, number: int) -> str:
        """Source line ``number`` (1-based), stripped, or '' when out of range."""
        return self.lines[number - 1].strip() if 0 < number <= len(self.lines) else ""


def parse_python(data: bytes, filename: str) -> PythonSource:
    """Parse source bytes; FormatError when they are not valid Python."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{filename}: not UTF-8 at byte {exc.start}") from None
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise FormatError(f"{filename}: Python syntax error at line {exc.lineno}: {exc.msg}") from None
    except (ValueError, MemoryError) as exc:
        raise FormatError(f"{filename}: cannot parse Python: {exc}") from None
    return PythonSource(filename, tuple(text.splitlines()), tree)


@register_reader
class PythonSourceReader(Reader):
    """``.py`` files and ``#!...python`` scripts."""

    name = "python-source"
    priority = 60

    def sniff(self, head: bytes, blob: Blob) -> bool:
        """A Python file name or a python shebang, and text (no NUL)."""
        return sniff_python_source(head, blob)

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        """Yield the parsed source for the code review, then the generic checks."""
        if blob.size > MAX_SOURCE_BYTES:
            raise LimitExceeded("max_header_bytes", MAX_SOURCE_BYTES, "Python source too large to review")
        with blob.open() as stream:
            data = stream.read(MAX_SOURCE_BYTES + 1)
        yield parse_python(data, blob.name)
        yield from generic_findings(data, ctx)
