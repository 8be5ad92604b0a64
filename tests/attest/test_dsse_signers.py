"""DSSE PAE, signing and verification with Ed25519 and P-256; key ids; trust stores."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from modelshield.attest import dsse
from modelshield.attest.signers import KeyFileError, generate, load_signer, load_verifier, public_pem, write_keypair
from modelshield.attest.truststore import TrustStore


def test_pae_matches_the_dsse_spec_example() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize("algorithm", ["ed25519", "p256"])
def test_envelope_round_trip_and_wrong_key(algorithm: str) -> None:
    signer, other = generate(algorithm), generate(algorithm)
    envelope = dsse.sign(b'{"a":1}', dsse.INTOTO_PAYLOAD_TYPE, signer)
    parsed = dsse.parse(envelope.to_json())
    good = load_verifier(public_pem(signer.public_key()))
    bad = load_verifier(public_pem(other.public_key()))
    assert dsse.verify(parsed, [bad, good]) is good
    assert dsse.verify(parsed, [bad]) is None
    edited = dsse.Envelope(parsed.payload_type, b'{"a":2}', parsed.signatures)
    assert dsse.verify(edited, [good]) is None


def test_keyid_is_sha256_of_spki_der() -> None:
    signer = generate("p256")
    der = signer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert signer.keyid == hashlib.sha256(der).hexdigest()


def test_keypair_files_private_is_0600_and_not_overwritten(tmp_path: Path) -> None:
    signer = generate()
    private, public = write_keypair(tmp_path / "k", signer)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert load_signer(private).keyid == signer.keyid == load_verifier(public.read_bytes()).keyid
    with pytest.raises(KeyFileError, match="already exists"):
        write_keypair(tmp_path / "k", generate())


def test_bad_key_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        load_signer(tmp_path / "junk.key")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signer(tmp_path / "missing.key")


def test_truststore_folder_and_single_file(tmp_path: Path) -> None:
    a, b = generate(), generate("p256")
    folder = tmp_path / "trust"
    folder.mkdir()
    (folder / "alice.pub").write_bytes(public_pem(a.public_key()))
    (folder / "notes.txt").write_text("ignored")
    store = TrustStore.load(folder)
    assert store.name_of(a.keyid) == "alice" and store.name_of(b.keyid) is None
    listing = tmp_path / "keys.pem"
    listing.write_bytes(b"# name: alice\n" + public_pem(a.public_key()) + b"# name: bob\n" + public_pem(b.public_key()))
    store = TrustStore.load(listing)
    assert (store.name_of(a.keyid), store.name_of(b.keyid)) == ("alice", "bob")
    with pytest.raises(KeyFileError, match="does not exist"):
        TrustStore.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="no public keys"):
        TrustStore.load(tmp_path / "empty")
