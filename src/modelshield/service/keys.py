"""The service's signing key: an Ed25519 key made at first start in the data dir, never sent anywhere.

The private key is written once (mode 0600, create-if-absent, so concurrent first starts agree on
one key); the public half is what ``GET /api/v1/keys`` serves and what ``modelshield verify --trust``
checks the service's attestations against.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from modelshield.attest.signers import KeySigner, generate, load_signer, public_pem
from modelshield.service.settings import Settings

KEY_NAME = "modelshield-service"


def ensure_key(settings: Settings) -> KeySigner:
    """The service key, created on first use (an existing key is never replaced)."""
    path = settings.key_path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = generate("ed25519")
        fd, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(signer.private_pem())
            os.chmod(tmp, 0o600)
            with contextlib.suppress(FileExistsError):  # atomic create-if-absent: one first start wins
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    signer = load_signer(path)
    public = path.with_suffix(".pub")
    pem = public_pem(signer.public_key())
    if not public.is_file() or public.read_bytes() != pem:
        public.write_bytes(pem)
    return signer


def key_path(settings: Settings) -> Path:
    """Path of the private key (for the pipeline's ``attest_key``)."""
    return settings.key_path


def public_keys(settings: Settings) -> list[dict[str, str]]:
    """The keys the service signs with: key id, algorithm and SubjectPublicKeyInfo PEM."""
    signer = ensure_key(settings)
    return [
        {"keyid": signer.keyid, "algorithm": signer.algorithm.value, "pem": public_pem(signer.public_key()).decode()}
    ]


def trust_file_text(settings: Settings) -> str:
    """The public keys as one trust-store file (``# name:`` lines name each key)."""
    return "".join(f"# name: {KEY_NAME}\n{item['pem']}" for item in public_keys(settings))
