"""The catalog UI in a real browser: Playwright drives Debian's chromium against ``modelshield serve``.

One walk through what a person does: log in with a token, upload a benign and a malicious model,
watch both go from pending to passed / failed (the server starts with no worker, so "pending" is
really seen; a ``modelshield worker`` is started once both are listed), open each model page (per-file
indicators, findings, policy decision, badge), request a waiver as a publisher and approve it as the
admin (the requester cannot approve their own). The malicious pickle would touch a canary if it
were ever loaded; the canary must not exist at the end.

The screenshot the README shows (docs/catalog.png) is rewritten with MODELSHIELD_UPDATE_SCREENSHOTS=1;
otherwise it goes to the test's temp dir.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.service import models
from tests.service.conftest import Databases
from tests.service.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs"
SCAN_TIMEOUT_MS = 90_000
BENIGN, EVIL = "tiny-classifier", "suspicious-checkpoint"


def screenshot_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """docs/ when asked to update the README's screenshots (from the SQLite run), else the test's temp dir."""
    update = os.environ.get("MODELSHIELD_UPDATE_SCREENSHOTS") == "1"
    return SCREENSHOTS if update and request.node.callspec.params.get("idle_server") == "sqlite" else tmp_path


def log_in(page: Any, server: LiveServer, token: str, role: str) -> None:
    page.goto(f"{server.base_url}/ui/login")
    page.fill("#token", token)
    page.click("#login-submit")
    page.wait_for_url(f"{server.base_url}/ui/models**")
    assert page.get_attribute("#whoami", "data-role") == role


def log_out(page: Any) -> None:
    page.click("#logout-submit")
    page.wait_for_url("**/ui/login**")


def upload(page: Any, server: LiveServer, name: str, files: list[Path]) -> int:
    """Upload through the form; returns the new model's id (the form redirects to its page)."""
    page.goto(f"{server.base_url}/ui/upload")
    page.fill("#upload-name", name)
    page.set_input_files("#upload-files", [str(f) for f in files])
    page.click("#upload-submit")
    page.wait_for_selector("h1#model-name")
    assert page.inner_text("h1#model-name").strip() == name
    return int(page.url.rstrip("/").rsplit("/", 1)[-1])


def row(page: Any, name: str) -> Any:
    return page.locator(f'tr[data-testid=model-row][data-model-name="{name}"]')


def badge_text(page: Any, server: LiveServer, name: str) -> str:
    answer = page.request.get(f"{server.base_url}/badge/{name}.svg")
    assert answer.status == 200 and "svg" in answer.headers.get("content-type", "")
    return str(answer.text())


@pytest.fixture(params=["sqlite", "postgresql"])
def idle_server(
    request: pytest.FixtureRequest,
    new_database: Databases,
    live_server_factory: Callable[..., LiveServer],
) -> LiveServer:
    """A server with no worker yet: registrations stay pending until the test starts one."""
    return live_server_factory(new_database(request.param), workers=0)


def test_catalog_walkthrough(
    page: Any, idle_server: LiveServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = idle_server
    shots = screenshot_dir(request, tmp_path)
    canary = tmp_path / "canary-touched-if-the-pickle-ever-ran"
    files = tmp_path / "models"
    files.mkdir()
    benign = [models.benign_safetensors(files, 7), models.benign_pickle(files, 7, "tokenizer_state.pkl")]
    evil = [
        models.malicious_pickle(files, canary, "pytorch_model.pkl"),
        models.benign_safetensors(files, 8, "x.safetensors"),
    ]
    publisher = server.token("publisher", "alice-publisher")

    # A wrong token stays on the login page with an error; the publisher's token logs in.
    page.goto(f"{server.base_url}/ui/login")
    page.fill("#token", "not-a-token-" + "x" * 20)
    page.click("#login-submit")
    page.wait_for_selector("#login-error")
    log_in(page, server, publisher, "publisher")

    # Upload both; with no worker running, both are pending in the catalog and on their badges.
    benign_id = upload(page, server, BENIGN, benign)
    assert page.get_attribute("#model-status", "data-status") == "pending"
    evil_id = upload(page, server, EVIL, evil)
    page.goto(f"{server.base_url}/ui/models")
    for name, model_id in ((BENIGN, benign_id), (EVIL, evil_id)):
        assert row(page, name).get_attribute("data-status") == "pending"
        assert row(page, name).get_attribute("data-model-id") == str(model_id)
        assert "pending" in badge_text(page, server, name)

    # A worker starts; the list refreshes itself until both reach their final status.
    server.start_worker()
    page.wait_for_selector(f'tr[data-model-name="{BENIGN}"][data-status=passed]', timeout=SCAN_TIMEOUT_MS)
    page.wait_for_selector(f'tr[data-model-name="{EVIL}"][data-status=failed]', timeout=SCAN_TIMEOUT_MS)
    assert "passed" in badge_text(page, server, BENIGN)
    assert "failed" in badge_text(page, server, EVIL)
    table = page.locator("table#model-list").bounding_box()
    page.screenshot(
        path=str(shots / "catalog.png"),
        clip={"x": 0, "y": 0, "width": 1280, "height": table["y"] + table["height"] + 24},
    )

    # The benign model's page: every file Safe, the badge image rendered, the policy allows it.
    row(page, BENIGN).locator("a[data-testid=model-link]").click()
    page.wait_for_selector("h1#model-name")
    assert page.get_attribute("#model-status", "data-status") == "passed"
    indicators = page.locator("tr[data-testid=file-row]")
    assert indicators.count() == 2
    assert {indicators.nth(i).get_attribute("data-indicator") for i in range(2)} == {"safe"}
    assert page.locator("[data-testid=file-indicator]").first.inner_text().strip() == "Safe"
    assert page.get_attribute("#policy-decision", "data-decision") == "allow"
    badge = page.locator("img#model-badge")
    assert badge.get_attribute("src").endswith(f"/badge/{BENIGN}.svg")
    assert badge.evaluate("img => img.complete && img.naturalWidth > 0")

    # The malicious model's page: the pickle is Unsafe with a critical finding, the other file Safe, policy denies.
    page.goto(f"{server.base_url}/ui/models/{evil_id}")
    assert page.get_attribute("#model-status", "data-status") == "failed"
    pickle_row = page.locator('tr[data-testid=file-row][data-path="pytorch_model.pkl"]')
    assert pickle_row.get_attribute("data-indicator") == "unsafe"
    assert pickle_row.locator("[data-testid=file-indicator]").inner_text().strip() == "Unsafe"
    other_row = page.locator('tr[data-testid=file-row][data-path="x.safetensors"]')
    assert other_row.get_attribute("data-indicator") == "safe"
    assert page.locator("li[data-testid=finding][data-severity=critical]").count() >= 1
    assert page.get_attribute("#policy-decision", "data-decision") == "deny"
    assert page.locator("img#model-badge").evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(shots / "catalog-model.png"))

    # The publisher requests a waiver and cannot approve it.
    rule = page.locator("#waiver-rule").evaluate(
        "input => input.list && input.list.options.length ? input.list.options[0].value : ''"
    )
    assert rule, "the waiver form offers the failed policy rules"
    page.fill("#waiver-rule", rule)
    page.fill("#waiver-reason", "red-team sample kept for detector regression tests; never deployed")
    page.fill("#waiver-expires", (dt.date.today() + dt.timedelta(days=30)).isoformat())
    page.click("#waiver-request-submit")
    waiver = page.locator("tr[data-testid=waiver-row]")
    waiver.first.wait_for()
    assert waiver.count() == 1 and waiver.get_attribute("data-state") == "requested"
    assert waiver.locator("button[data-testid=waiver-approve]").count() == 0
    log_out(page)

    # The admin (another identity) approves it.
    log_in(page, server, server.admin_token, "admin")
    page.goto(f"{server.base_url}/ui/waivers")
    pending = page.locator("tr[data-testid=waiver-row][data-state=requested]")
    assert pending.count() == 1
    pending.locator("button[data-testid=waiver-approve]").click()
    page.wait_for_selector("tr[data-testid=waiver-row][data-state=approved]")
    page.goto(f"{server.base_url}/ui/models/{evil_id}")
    assert page.locator("tr[data-testid=waiver-row][data-state=approved]").count() == 1

    # The approval re-evaluates the model: a second history row, and the decision names the waiver.
    rows = page.locator("tr[data-testid=history-row]")
    for _ in range(SCAN_TIMEOUT_MS // 500):
        if rows.count() >= 2 and page.get_attribute("#model-status", "data-status") not in ("pending", "scanning"):
            break
        page.wait_for_timeout(500)
        page.reload()
    assert rows.count() == 2 and rows.first.get_attribute("data-kind") == "scan"
    # A waived critical finding is allowed, but the model is never shown as simply passed.
    assert page.get_attribute("#model-status", "data-status") == "warn"
    assert page.get_attribute("#policy-decision", "data-decision") == "allow"
    assert f"waiver applied: {rule}" in page.inner_text("#policy-decision")
    assert page.locator('tr[data-testid=file-row][data-path="pytorch_model.pkl"]').get_attribute("data-indicator") == (
        "unsafe"
    )

    # Every step is in the audit log.
    page.goto(f"{server.base_url}/ui/audit")
    actions = page.locator("tr[data-testid=audit-row]").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert any("waiver" in a and "approv" in a for a in actions), actions
    assert any("waiver" in a and "request" in a for a in actions), actions

    assert not canary.exists(), "the service executed the malicious pickle"
