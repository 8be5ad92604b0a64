"""Verify: every refusal with its reason, the diff, the exit codes; the card cannot be forged."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from pathlib import Path

from modelshield.attest import allow_any, scan_and_attest, verify
from modelshield.attest.card import load_card
from modelshield.attest.manifest import sidecar_path
from modelshield.attest.verify import Outcome, PolicyResult, diff_files

from .conftest import Keys, write_safetensors


def attest(model: Path, keys: Keys, **kwargs: object) -> None:
    scan_and_attest(model, kwargs.pop("key", keys.alice_key), **kwargs)  # type: ignore[arg-type]


def test_verified_folder_with_card(benign_model: Path, keys: Keys) -> None:
    report, att = scan_and_attest(benign_model, keys.alice_key)
    assert report.verdict.value == "pass" and att.verdict == "pass"
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.VERIFIED and result.exit_code == 0
    assert result.signer == "alice" and result.predicate is not None
    raw = result.predicate.raw
    assert raw["scanner"]["name"] == "modelshield" and raw["counts"]["critical"] == 0
    card = load_card(benign_model)
    assert card is not None and card.verdict == "pass" and card.signer == keys.alice.keyid
    assert card.attestation == "modelshield.attestation.dsse.json"


def test_statement_shape(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys, key=keys.bob_key)
    envelope = json.loads(sidecar_path(benign_model).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == keys.bob.keyid
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://modelshield.dev/attestation/scan/v1"
    assert {s["name"] for s in statement["subject"]} == {
        "config.json",
        "weights/embed.safetensors",
        "weights/head.safetensors",
    }
    predicate = statement["predicate"]
    assert predicate["verdict"] == "pass" and len(predicate["report"]["sha256"]) == 64
    assert predicate["expiresAt"] > predicate["scannedAt"]
    assert verify(benign_model, keys.trust).signer == "bob"


def test_card_edit_does_not_break_the_signature(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    card = benign_model / "README.md"
    card.write_text(card.read_text() + "\nA new paragraph.\n")
    assert verify(benign_model, keys.trust).outcome is Outcome.VERIFIED


def test_flipped_byte_is_tampered_changed(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    target = benign_model / "weights" / "embed.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.TAMPERED and result.exit_code == 10
    assert result.diff is not None and result.diff.changed == ("weights/embed.safetensors",)
    assert "changed: weights/embed.safetensors" in result.message()


def test_extra_file_is_tampered_added(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    (benign_model / "weights" / "backdoor.pkl").write_bytes(b"\x80\x04N.")
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.TAMPERED and result.diff is not None
    assert result.diff.added == ("weights/backdoor.pkl",) and not result.diff.changed


def test_removed_file_is_tampered_removed(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    (benign_model / "weights" / "head.safetensors").unlink()
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.TAMPERED and result.diff is not None
    assert result.diff.removed == ("weights/head.safetensors",)


def test_renamed_file_is_tampered_renamed(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    (benign_model / "weights" / "head.safetensors").rename(benign_model / "weights" / "head2.safetensors")
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.TAMPERED and result.diff is not None
    assert result.diff.renamed == (("weights/head.safetensors", "weights/head2.safetensors"),)
    assert not result.diff.added and not result.diff.removed


def test_attestation_copied_from_another_model(benign_model: Path, malicious_model: Path, keys: Keys) -> None:
    attest(benign_model, keys)
    shutil.copy(sidecar_path(benign_model), sidecar_path(malicious_model))
    result = verify(malicious_model, keys.trust)
    assert result.outcome is Outcome.TAMPERED
    assert "belongs to another model" in result.reasons[0]


def test_expired_attestation(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys, valid_days=1)
    assert verify(benign_model, keys.trust).outcome is Outcome.VERIFIED
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    result = verify(benign_model, keys.trust, now=later)
    assert result.outcome is Outcome.EXPIRED and result.exit_code == 11
    assert "expired" in result.reasons[0]


def test_untrusted_key(benign_model: Path, keys: Keys) -> None:
    attest(benign_model, keys, key=keys.mallory_key)
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.UNTRUSTED_SIGNER and result.exit_code == 13
    assert keys.mallory.keyid in result.reasons[0] and "not in the trust store" in result.reasons[0]


def test_unsigned(benign_model: Path, keys: Keys) -> None:
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.UNSIGNED and result.exit_code == 12


def test_edited_attestation_payload_is_tampered(benign_model: Path, malicious_model: Path, keys: Keys) -> None:
    attest(malicious_model, keys)
    path = sidecar_path(malicious_model)
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["verdict"] = "pass"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))
    result = verify(malicious_model, keys.trust, policy=allow_any)
    assert result.outcome is Outcome.TAMPERED and "altered after signing" in result.reasons[0]


def test_verdict_below_policy_is_denied(malicious_model: Path, keys: Keys) -> None:
    report, _ = scan_and_attest(malicious_model, keys.alice_key, card=False)
    assert report.verdict.value == "fail"
    result = verify(malicious_model, keys.trust)
    assert result.outcome is Outcome.POLICY_DENIED and result.exit_code == 1
    assert "requires 'pass'" in result.reasons[0]
    assert verify(malicious_model, keys.trust, policy=allow_any).outcome is Outcome.VERIFIED
    custom = verify(malicious_model, keys.trust, policy=lambda p: PolicyResult(False, (f"no {p.verdict}",)))
    assert custom.reasons == ("no fail",)


def test_card_edited_to_claim_passed_is_forged(malicious_model: Path, keys: Keys) -> None:
    attest(malicious_model, keys)
    card = malicious_model / "README.md"
    assert load_card(malicious_model).verdict == "fail"  # type: ignore[union-attr]
    card.write_text(card.read_text().replace('verdict: "fail"', "verdict: passed"))
    result = verify(malicious_model, keys.trust, policy=allow_any)
    assert result.outcome is Outcome.FORGED_CARD and result.exit_code == 14
    assert "claims 'passed'" in result.reasons[0] and "'fail'" in result.reasons[0]


def test_card_claiming_pass_without_attestation_is_forged(benign_model: Path, keys: Keys) -> None:
    card = benign_model / "README.md"
    card.write_text("---\nmodelshield:\n  verdict: pass\n---\n# Trust me\n")
    result = verify(benign_model, keys.trust)
    assert result.outcome is Outcome.FORGED_CARD and "no attestation" in result.reasons[0]


def test_single_file_model(tmp_path: Path, keys: Keys) -> None:
    model = tmp_path / "w.safetensors"
    write_safetensors(model, [0.5] * 8)
    _, att = scan_and_attest(model, keys.bob_key, card=False)
    assert att.path == tmp_path / "w.safetensors.modelshield.dsse.json"
    assert verify(model, keys.trust).outcome is Outcome.VERIFIED
    model.write_bytes(model.read_bytes() + b"\0")
    assert verify(model, keys.trust).diff.changed == ("w.safetensors",)  # type: ignore[union-attr]


def test_diff_files_prefers_renames_only_on_equal_digests() -> None:
    diff = diff_files({"a": "1", "b": "2"}, {"c": "1", "b": "3", "d": "4"})
    assert diff.renamed == (("a", "c"),) and diff.changed == ("b",) and diff.added == ("d",)
