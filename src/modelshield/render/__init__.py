"""SAY it: render a ScanReport as json, sarif, text, html or cyclonedx."""

from __future__ import annotations

from modelshield.errors import UsageError
from modelshield.types import ScanReport

FORMATS = ("text", "json", "sarif", "html", "cyclonedx")


def render(report: ScanReport, fmt: str) -> str:
    """Render ``report`` in format ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        from modelshield.render.json import render_json

        return render_json(report)
    if fmt == "sarif":
        from modelshield.render.sarif import render_sarif

        return render_sarif(report)
    if fmt == "text":
        from modelshield.render.text import render_text

        return render_text(report)
    if fmt == "html":
        from modelshield.render.html import render_html

        return render_html(report)
    if fmt == "cyclonedx":
        from modelshield.render.cyclonedx import render_cyclonedx

        return render_cyclonedx(report)
    raise UsageError(f"unknown output format {fmt!r}", hint="choose one of: " + ", ".join(FORMATS))
