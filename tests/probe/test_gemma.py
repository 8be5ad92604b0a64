"""The prober against a real llama-server serving Gemma 3 270M (kept short: a few families, one repeat)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.probe.servers import run_cli

FAMILIES = ("--family", "system-prompt-leak", "--family", "package-hallucination", "--limit", "2")


def test_gemma_probe_completes_and_reprobe_has_no_drift(gemma_url: str, tmp_path: Path) -> None:
    baseline = tmp_path / "gemma.baseline.json"
    first = run_cli(
        "probe", gemma_url, *FAMILIES, "--save-baseline", str(baseline), "-f", "json", "--no-progress", timeout=400
    )
    assert first.returncode in (0, 1), first.stderr
    report = json.loads(first.stdout)
    assert report["coverage"]["complete"], report["coverage"]
    assert report["model"] == "gemma-3-270m"
    assert all(t["ran"] and t["answer"] for t in report["trials"])
    assert report["fingerprint"]["prompt_tokens"] and None not in report["fingerprint"]["prompt_tokens"]
    assert {f["family"] for f in report["families"]} == {"system-prompt-leak", "package-hallucination"}
    again = run_cli("probe", gemma_url, "--family", "data-boundary", "--limit", "1", "--baseline", str(baseline),
                    "-f", "json", timeout=400)  # fmt: skip
    drift = json.loads(again.stdout)["drift"]
    assert drift["drift"] is False, drift  # temperature 0 + fixed seed: the same model answers the same
