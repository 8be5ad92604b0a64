"""The model card block: written and refreshed while every other byte stays the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelshield.attest.card import CardClaims, read_claims, remove_from_text, update_text, write_card

CARD_WITH_FRONT_MATTER = (
    "---\nlicense: apache-2.0\ntags:\n- vision\n- test\n---\n\n# Tiny model\n\nIt classifies nothing.  \n"
)

CLAIMS = CardClaims(
    verdict="pass",
    scanned="2026-01-01T00:00:00Z",
    expires="2026-04-01T00:00:00Z",
    policy="default",
    profile="default",
    attestation="modelshield.attestation.dsse.json",
    subject_digest="sha256:" + "ab" * 32,
    signer="cd" * 32,
)
NO_FRONT_MATTER = "# A model\n\nSome text --- with dashes.\n\n---\n\nA rule above.\n"
CARDS = [
    CARD_WITH_FRONT_MATTER,
    NO_FRONT_MATTER,
    "",
    CARD_WITH_FRONT_MATTER.replace("\n", "\r\n"),
    "\ufeff" + CARD_WITH_FRONT_MATTER,
]


@pytest.mark.parametrize("original", CARDS)
def test_write_then_remove_gives_back_the_exact_card(original: str) -> None:
    updated = update_text(original, CLAIMS)
    assert updated != original
    assert remove_from_text(updated) == original
    assert read_claims(updated) == CardClaims(**{**CLAIMS.fields(), "badge_verdict": "pass"})


def test_front_matter_keeps_its_keys_and_gains_the_block() -> None:
    updated = update_text(CARD_WITH_FRONT_MATTER, CLAIMS)
    front = yaml.safe_load(updated.split("---\n")[1])
    assert front["license"] == "apache-2.0" and front["tags"] == ["vision", "test"]
    assert front["modelshield"]["verdict"] == "pass"
    body = updated.split("---\n", 2)[2]
    badge, rest = body.split("\n", 1)
    assert "modelshield-pass-brightgreen" in badge and rest == "\n# Tiny model\n\nIt classifies nothing.  \n"


def test_refresh_replaces_block_and_badge_in_place() -> None:
    first = update_text(CARD_WITH_FRONT_MATTER + "\nMore text.\n", CLAIMS)
    failed = CardClaims(**{**CLAIMS.fields(), "verdict": "fail"})
    second = update_text(first, failed)
    assert second.count("modelshield:\n") == 1 and second.count("modelshield:badge") == 1
    assert read_claims(second) is not None and read_claims(second).verdict == "fail"  # type: ignore[union-attr]
    assert remove_from_text(second) == CARD_WITH_FRONT_MATTER + "\nMore text.\n"
    assert update_text(second, failed) == second


def test_hand_edited_pass_claim_is_read() -> None:
    text = "---\nmodelshield:\n  verdict: passed\n---\n# Model\n"
    claims = read_claims(text)
    assert claims is not None and claims.claims_pass
    assert read_claims("# Model without claims\n") is None


def test_write_card_on_disk_keeps_bytes(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_bytes(CARD_WITH_FRONT_MATTER.encode())
    write_card(tmp_path, CLAIMS)
    assert remove_from_text(card.read_text(encoding="utf-8")) == CARD_WITH_FRONT_MATTER


def test_card_ending_at_the_front_matter_gets_its_badge_on_a_new_line() -> None:
    updated = update_text("---\nlicense: mit\n---", CLAIMS)
    assert updated.splitlines()[-1].startswith("[![modelshield: pass]")
    assert remove_from_text(updated) == "---\nlicense: mit\n---\n"
