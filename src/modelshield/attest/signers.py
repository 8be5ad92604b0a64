"""Signers and verifiers: Ed25519 and ECDSA P-256 keys (``cryptography``), PEM on disk.

A :class:`Signer` and a :class:`Verifier` are a protocol pair, so other back ends (a KMS, an HSM,
Sigstore) can be plugged in. The key id is the SHA-256 of the public key's SubjectPublicKeyInfo
DER encoding, in hex.
"""

from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from modelshield.errors import ModelShieldError

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class KeyFileError(ModelShieldError):
    """A key file is missing, unreadable, encrypted without a password, or of an unsupported type."""


class Algorithm(StrEnum):
    """Supported signature algorithms."""

    ED25519 = "ed25519"
    P256 = "p256"


class Signer(Protocol):
    """Signs bytes. ``keyid`` names the public half (see :func:`key_id`)."""

    @property
    def keyid(self) -> str:
        """SHA-256 (hex) of the public key's SPKI DER."""

    def sign(self, data: bytes) -> bytes:
        """Signature over ``data``."""


class Verifier(Protocol):
    """Checks signatures made by the matching :class:`Signer`."""

    @property
    def keyid(self) -> str:
        """SHA-256 (hex) of the public key's SPKI DER."""

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` over ``data`` is valid for this key."""


def key_id(public_key: PublicKey) -> str:
    """The key id: SHA-256 (hex) of the SubjectPublicKeyInfo DER encoding."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


class KeySigner:
    """A :class:`Signer` over an in-memory Ed25519 or P-256 private key."""

    def __init__(self, private_key: PrivateKey) -> None:
        _check_supported(private_key.public_key())
        self._key = private_key
        self._keyid = key_id(private_key.public_key())

    @property
    def keyid(self) -> str:
        """SHA-256 (hex) of the public key's SPKI DER."""
        return self._keyid

    @property
    def algorithm(self) -> Algorithm:
        """Which algorithm this key signs with."""
        return Algorithm.ED25519 if isinstance(self._key, ed25519.Ed25519PrivateKey) else Algorithm.P256

    def public_key(self) -> PublicKey:
        """The public half."""
        return self._key.public_key()

    def private_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM of the private key (encrypted when ``password`` is given)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature, or DER-encoded ECDSA-SHA256 signature."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


class KeyVerifier:
    """A :class:`Verifier` over an Ed25519 or P-256 public key."""

    def __init__(self, public_key: PublicKey) -> None:
        _check_supported(public_key)
        self._key = public_key
        self._keyid = key_id(public_key)

    @property
    def keyid(self) -> str:
        """SHA-256 (hex) of the public key's SPKI DER."""
        return self._keyid

    @property
    def public_key(self) -> PublicKey:
        """The key itself."""
        return self._key

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when the signature is valid (never raises on a bad signature)."""
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                self._key.verify(signature, data)
            else:
                self._key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def _check_supported(public_key: object) -> None:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1":
        return
    raise KeyFileError(
        f"unsupported key type {type(public_key).__name__}",
        hint="use an Ed25519 or ECDSA P-256 key (modelshield keygen)",
    )


def generate(algorithm: Algorithm | str = Algorithm.ED25519) -> KeySigner:
    """A fresh key pair."""
    algo = Algorithm(algorithm)
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algo is Algorithm.ED25519 else ec.generate_private_key(ec.SECP256R1())
    )
    return KeySigner(key)


def public_pem(public_key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_keypair(prefix: str | os.PathLike[str], signer: KeySigner, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``; refuse to overwrite unless asked."""
    private_path, public_path = Path(f"{os.fspath(prefix)}.key"), Path(f"{os.fspath(prefix)}.pub")
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} already exists", hint="choose another --out prefix or pass --force")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(private_path, flags, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(signer.private_pem())
        os.chmod(private_path, 0o600)
        public_path.write_bytes(public_pem(signer.public_key()))
    except OSError as exc:
        raise KeyFileError(
            f"cannot write key files at {prefix}: {exc.strerror}", hint="check the folder exists"
        ) from None
    return private_path, public_path


def load_signer(path: str | os.PathLike[str], password: bytes | None = None) -> KeySigner:
    """Load a PEM private key (Ed25519 or P-256) as a signer."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise KeyFileError(f"{path}: the private key is encrypted", hint="give its password") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{path}: not a PEM private key ({exc})", hint="pass the .key file from modelshield keygen"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: unsupported key type {type(key).__name__}", hint="use an Ed25519 or P-256 key")
    return KeySigner(key)


def load_verifier(data: bytes, origin: str = "<memory>") -> KeyVerifier:
    """Load a PEM public key (or the public half of a PEM private key) as a verifier."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{origin}: not a PEM public key ({exc})", hint="trust store entries are PEM public keys"
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise KeyFileError(f"{origin}: unsupported key type {type(key).__name__}", hint="use an Ed25519 or P-256 key")
    return KeyVerifier(key)


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}", hint="check the path") from None
