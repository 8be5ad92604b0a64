"""Bad endpoints: a clear message, a bounded wait, a coverage finding, and never a pass."""

from __future__ import annotations

import json

import pytest
from tests.probe.servers import free_port, run_cli

QUICK = ("--pack", "smoke", "--timeout", "2", "--retries", "1", "-f", "json", "--no-progress")


@pytest.mark.parametrize(
    ("persona", "words"),
    [
        ("status401", "401"),
        ("status403", "403"),
        ("status429", "429"),
        ("status500", "failed"),
        ("garbage", "non-json"),
        ("truncated", "truncated"),
        ("huge", "too-large"),
        ("hang", "in time"),
    ],
)
def test_unusable_endpoint_is_an_error_with_a_coverage_finding(personas_url: str, persona: str, words: str) -> None:
    result = run_cli("probe", f"{personas_url}/{persona}", *QUICK, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert words in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] != "pass" and report["coverage"]["complete"] is False
    assert "PROBE-ENDPOINT-UNUSABLE" in {f["rule_id"] for f in report["findings"]}


def test_unreachable_url() -> None:
    result = run_cli("probe", f"http://127.0.0.1:{free_port()}", *QUICK)
    assert result.returncode == 2
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr


def test_plain_http_to_a_remote_host_is_a_finding() -> None:
    # 192.0.2.1 is TEST-NET-1: never routed, so this also shows the bounded wait on a silent host
    result = run_cli("probe", "http://192.0.2.1:9", "--timeout", "1", "--retries", "0", "-f", "json")
    assert result.returncode == 2
    assert "PROBE-PLAINTEXT-HTTP" in {f["rule_id"] for f in json.loads(result.stdout)["findings"]}


def test_partly_failing_endpoint_is_incomplete_never_pass(personas_url: str) -> None:
    result = run_cli("probe", f"{personas_url}/flaky", "--pack", "smoke", "--retries", "0", "-f", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "warn" and not report["coverage"]["complete"]
    assert "PROBE-INCOMPLETE" in {f["rule_id"] for f in report["findings"]}
    strict = run_cli("probe", f"{personas_url}/flaky", "--pack", "smoke", "--retries", "0", "--profile", "strict")
    assert strict.returncode == 1 and "FAIL" in strict.stderr


def test_tls_certificate_refused_unless_insecure(tls_personas_url: str) -> None:
    refused = run_cli("probe", f"{tls_personas_url}/hardened", *QUICK)
    assert refused.returncode == 2
    assert "TLS failure" in refused.stderr and "--insecure" in refused.stderr
    accepted = run_cli("probe", f"{tls_personas_url}/hardened", "--pack", "smoke", "--insecure", "-f", "json")
    assert (
        accepted.returncode == 1
    )  # the unverified certificate is a finding the strictest profiles... and internal warn
    assert "PROBE-TLS-UNVERIFIED" in {f["rule_id"] for f in json.loads(accepted.stdout)["findings"]}
