"""The HTML report: rendered by the installed CLI, escaped, self-contained, and checked in a real browser.

Model-controlled strings (file names, GGUF metadata, the chat template quoted as evidence) carry
markup payloads; the report must show them as text. The page is opened in Debian's chromium:
what a person sees is checked, no script ran, no injected element exists and no request left
the page. A control page with the same payload inserted raw proves the payload does run in this
browser, so the main check could fail. The README's screenshot (docs/report.png) is rewritten
with MODELSHIELD_UPDATE_SCREENSHOTS=1; otherwise it goes to the test's temp dir.
"""

from __future__ import annotations

import html
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.render.conftest import HOSTILE_GGUF, HOSTILE_KEY, HOSTILE_PICKLE, PAYLOAD, Models, cli

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "report.png"


@pytest.fixture(scope="session")
def hostile_html(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``modelshield scan HOSTILE --hash -f html -o report.html`` (exit 1: the scan fails)."""
    out = tmp_path_factory.mktemp("html") / "report.html"
    done = cli("scan", models.hostile, "--hash", "-f", "html", "-o", out, "--no-progress")
    assert done.returncode == 1, done.stderr
    assert "verdict: FAIL" in done.stderr
    return out


def test_payloads_are_escaped_text(hostile_html: Path) -> None:
    page = hostile_html.read_text(encoding="utf-8")
    lowered = page.lower()
    # the template itself has no script and no image: any such tag came from the model
    assert "<script" not in lowered
    assert "<img" not in lowered and "<svg" not in lowered
    # ... and every payload is there, as escaped text
    assert html.escape(PAYLOAD).replace("&quot;", "&#34;").replace("&#x27;", "&#39;") in page
    assert "chat&lt;svg onload=window.__pwned=3&gt;.gguf" in page
    assert "&lt;img src=x onerror=window.__pwned=4&gt;.pkl" in page


class _Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


ADVISORY_SITES = (
    "https://nvd.nist.gov/",
    "https://github.com/advisories/",
    "https://osv.dev/",
    "https://cwe.mitre.org/",
)


def test_self_contained_and_no_injected_markup(hostile_html: Path) -> None:
    page = hostile_html.read_text(encoding="utf-8")
    tags = tags_of(page)
    names = {tag for tag, _ in tags}
    # nothing that loads or runs anything: no script, image, frame, object, link, svg; no src, no handler
    assert not names & {"script", "img", "svg", "iframe", "object", "embed", "link", "base", "form", "video", "audio"}
    for tag, attrs in tags:
        assert "src" not in attrs, tag
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        if "href" in attrs:  # the only URLs: plain navigation links to advisory pages
            assert tag == "a" and str(attrs["href"]).startswith(ADVISORY_SITES), attrs
    assert "@import" not in page and "url(" not in page.split("</style>")[0]
    assert "default-src 'none'" in page  # a CSP as a second wall
    assert any(tag == "a" and str(a.get("href")).startswith("https://nvd.nist.gov/") for tag, a in tags)


def test_sections_a_person_reads(hostile_html: Path) -> None:
    page = hostile_html.read_text(encoding="utf-8")
    for section in ("verdict-banner", "files", "findings", "coverage", "cves", "attestation"):
        assert f'id="{section}"' in page
    assert 'data-verdict="fail"' in page
    assert page.count('class="file-row"') == 3
    assert 'data-indicator="Unsafe"' in page


def test_output_suffix_alone_selects_html(models: Models, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    done = cli("scan", models.benign, "-o", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert 'data-verdict="pass"' in page and 'data-indicator="Safe"' in page


def test_attestation_status_is_shown(models: Models, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model.safetensors"
    shutil.copy(models.benign, model)
    keygen = cli("keygen", "--out", tmp_path / "release")
    assert keygen.returncode == 0, keygen.stderr
    out = tmp_path / "attested.html"
    done = cli("scan", model, "--attest", "--key", tmp_path / "release.key", "-f", "html", "-o", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "attested pass" in page
    assert "Its subjects match the bytes scanned here." in page
    assert keygen.stdout.strip()[:16] in page  # the signer's key id
    plain = tmp_path / "plain.html"
    assert cli("scan", models.benign, "-f", "html", "-o", plain, "--no-progress").returncode == 0
    assert "not attested" in plain.read_text(encoding="utf-8")


def _open(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=True)
    context.set_default_timeout(15_000)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
    page = context.new_page()
    page.goto(url)
    page.wait_for_load_state("load")
    return context, page, requests


def test_control_the_payload_runs_when_injected_raw(browser: Any, tmp_path: Path) -> None:
    """Without escaping the same payload does run here: the checks below can fail."""
    raw = tmp_path / "raw.html"
    raw.write_text(f'<!DOCTYPE html><html><body><p title="{PAYLOAD}</p></body></html>', encoding="utf-8")
    context, page, _ = _open(browser, raw.as_uri())
    try:
        page.wait_for_function("window.__pwned !== undefined")
        assert page.evaluate("document.querySelectorAll('img, script').length") >= 1
    finally:
        context.close()


def test_in_chromium(browser: Any, hostile_html: Path, models: Models, tmp_path: Path) -> None:
    url = hostile_html.as_uri()
    context, page, requests = _open(browser, url)
    try:
        text = page.inner_text("body")
        assert page.inner_text("#verdict").strip() == "Verdict: FAIL"
        for name in (HOSTILE_GGUF, HOSTILE_PICKLE, "checkpoint.pt"):
            assert name in text
        for rule in ("TEMPLATE-SSTI", "PICKLE-UNSAFE-GLOBAL", "CVE-2024-34359"):
            assert rule in text
        assert PAYLOAD in text  # the chat template, quoted as evidence, is visible as text
        assert f"duplicate metadata key '{HOSTILE_KEY}A'" in text  # a GGUF metadata key, quoted by a finding
        indicators = page.eval_on_selector_all("tr.file-row", "rows => rows.map(r => r.dataset.indicator)")
        assert sorted(indicators) == ["Unsafe", "Unsafe", "Unsafe"]
        assert page.locator("#cves tbody tr").count() >= 1
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('img, svg, script, iframe, object, embed').length") == 0
        assert requests == [url]  # nothing but the page itself
        update = os.environ.get("MODELSHIELD_UPDATE_SCREENSHOTS") == "1"
        shot = SCREENSHOT if update else tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        context.close()
    assert not models.canary.exists()


def test_policy_decision_is_shown(models: Models, tmp_path: Path) -> None:
    assert cli("policy", "init", cwd=tmp_path).returncode == 0
    out = tmp_path / "policy.html"
    done = cli(
        "scan", models.pickle, "--policy", "modelshield-policy.yaml", "--profile", "production", "-o", out,
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    page = out.read_text(encoding="utf-8")
    assert 'id="policy"' in page and '<strong class="decision">DENY</strong>' in page
    assert "<code>production</code>" in page


def test_a_forged_attestation_sidecar_stays_text(models: Models, tmp_path: Path) -> None:
    """The sidecar beside a model is attacker-controlled too: its verdict, times and key id are escaped."""
    import base64
    import json
    import shutil

    model = tmp_path / "model.safetensors"
    shutil.copy(models.benign, model)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": model.name, "digest": {"sha256": "0" * 64}}],
        "predicateType": "https://modelshield.dev/attestation/scan/v1",
        "predicate": {
            "scanner": {"name": "modelshield", "version": "1"},
            "rulesVersion": "1",
            "verdict": PAYLOAD,
            "counts": {},
            "report": {"sha256": "0" * 64},
            "coverage": {"complete": True, "gaps": 0},
            "model": {"rootDigest": "0" * 64},
            "scannedAt": "2026-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T00:00:00Z",
        },
    }
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
        "signatures": [{"keyid": PAYLOAD, "sig": base64.b64encode(b"not a signature").decode()}],
    }
    (tmp_path / "model.safetensors.modelshield.dsse.json").write_text(json.dumps(envelope))
    out = tmp_path / "forged.html"
    done = cli("scan", model, "--hash", "-o", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "Its subjects differ from the bytes scanned here." in page
    assert "attested &#34;&gt;&lt;img" in page
    names = {tag for tag, _ in tags_of(page)}
    assert not names & {"script", "img", "svg"}
