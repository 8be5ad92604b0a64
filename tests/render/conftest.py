"""Fixtures of the report tests: hostile and benign models generated once per session, the installed CLI, chromium.

The hostile models put markup in every string a model controls and the report shows: file names,
the GGUF ``general.name`` and ``tokenizer.chat_template`` (which the scanner quotes as evidence) and
GGUF metadata keys (quoted in findings). The payloads would set ``window.__pwned`` or add an
``<img>`` if the report ever let them become markup. The malicious pickles would touch a canary
if they were ever loaded.

With ``CI`` set (``.ci/run`` sets it) a missing chromium or playwright fails the browser test
instead of skipping it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = os.environ.get("MODELSHIELD_TEST_CHROMIUM", "/usr/bin/chromium")
#: Markup that runs script if it is ever parsed as HTML (attribute break-out, element, handler).
PAYLOAD = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
#: File names a model repo can hold (no slash): an element and an attribute break-out.
HOSTILE_GGUF = "chat<svg onload=window.__pwned=3>.gguf"
#: A GGUF metadata key (written twice: the duplicate-key finding quotes it).
HOSTILE_KEY = 'meta"><img src=x onerror=window.__pwned=6>'
HOSTILE_PICKLE = '"><img src=x onerror=window.__pwned=4>.pkl'


def in_ci() -> bool:
    """True under CI (``CI`` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where the browser test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the browser test must run, so this is a failure, not a skip)")
    pytest.skip(reason)


def modelshield_argv() -> list[str]:
    """The installed ``modelshield`` script of this interpreter's venv (else on PATH, else ``python -m``)."""
    script = Path(sys.executable).with_name("modelshield")
    if script.is_file():
        return [str(script)]
    found = shutil.which("modelshield")
    return [found] if found else [sys.executable, "-m", "modelshield.cli"]


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a subprocess."""
    return subprocess.run(
        [*modelshield_argv(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def write_gguf(path: Path, *, name: str, template: str | None, extra: dict[str, str] | None = None) -> Path:
    """A GGUF written by gguf.GGUFWriter (llama architecture) with the given name, template and string keys."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    for key, value in (extra or {}).items():
        writer.add_string(key, value)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def system_pickle(command: str) -> bytes:
    """A protocol-2 pickle that would call ``os.system(command)`` if loaded (it never is)."""
    return b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command.encode() + b"\x85R."


@dataclass(frozen=True)
class Models:
    """The generated models: a hostile folder, a benign attested file, and the canary nothing may touch."""

    hostile: Path
    gguf: Path
    pickle: Path
    torch_zip: Path
    benign: Path
    canary: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Hostile folder (GGUF with markup everywhere, malicious pickle, torch zip holding one) and a benign file."""
    root = tmp_path_factory.mktemp("render-models")
    canary = root / "canary"
    hostile = root / "hostile"
    hostile.mkdir()
    # the scanner quotes the chat template as evidence of the sandbox escape: the payload rides along
    template = "{{ cycler.__init__.__globals__.os.popen('id').read() }}" + PAYLOAD
    gguf_path = write_gguf(
        hostile / HOSTILE_GGUF,
        name=PAYLOAD,
        template=template,
        extra={
            "general.description": "</td></tr></table><script>window.__pwned=5</script>",
            HOSTILE_KEY + "A": "1",
            HOSTILE_KEY + "B": "2",
        },
    )
    data = gguf_path.read_bytes()
    gguf_path.write_bytes(data.replace((HOSTILE_KEY + "B").encode(), (HOSTILE_KEY + "A").encode()))
    pickle_path = hostile / HOSTILE_PICKLE
    pickle_path.write_bytes(system_pickle(f"touch {canary}"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", system_pickle(f"touch {canary}"))
        archive.writestr("archive/version", "3\n")
    torch_zip = hostile / "checkpoint.pt"
    torch_zip.write_bytes(buffer.getvalue())
    benign_dir = root / "benign"
    benign_dir.mkdir()
    from safetensors.numpy import save_file

    benign = benign_dir / "model.safetensors"
    save_file({"w": np.arange(16, dtype=np.float32)}, str(benign))
    return Models(hostile, gguf_path, pickle_path, torch_zip, benign, canary)


@pytest.fixture(scope="module")  # closed before other modules start their own sync Playwright
def browser() -> Iterator[Any]:
    """Debian's chromium (``MODELSHIELD_TEST_CHROMIUM``) driven by Playwright, headless, no network services."""
    if not Path(CHROMIUM).is_file():
        unavailable(f"no chromium at {CHROMIUM}: apt-get install chromium (Playwright downloads no browser here)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: pip install -e '.[test]'")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield instance
        instance.close()
