"""The trust store: which public keys (by name) may vouch for a model.

A trust store is either a folder of ``*.pub`` / ``*.pem`` PEM public keys (each key's name is its
file stem) or a single file. A single file holds one or more PEM public keys; a line
``# name: NAME`` before a key names it (otherwise the file stem, numbered after the first).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelshield.attest.signers import KeyFileError, KeyVerifier, load_verifier

_PEM_BLOCK = re.compile(
    rb"(?:^#\s*name:\s*(?P<name>[^\r\n]+)\s*\n)?(?P<pem>-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----)",
    re.S | re.M,
)
KEY_SUFFIXES = (".pub", ".pem")


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One trusted public key and the name it is known by."""

    name: str
    verifier: KeyVerifier

    @property
    def keyid(self) -> str:
        """SHA-256 (hex) of the key's SPKI DER."""
        return self.verifier.keyid


class TrustStore:
    """Named public keys. Iterating yields the verifiers; :meth:`name_of` maps a key id to its name."""

    def __init__(self, keys: list[TrustedKey] | None = None) -> None:
        self._keys: dict[str, TrustedKey] = {}
        for key in keys or []:
            self.add(key)

    def add(self, key: TrustedKey) -> None:
        """Trust one more key (the first name given to a key wins)."""
        self._keys.setdefault(key.keyid, key)

    def __iter__(self) -> Iterator[KeyVerifier]:
        return iter(k.verifier for k in self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def name_of(self, keyid: str) -> str | None:
        """Name of the trusted key with this id, or None."""
        key = self._keys.get(keyid)
        return key.name if key else None

    @property
    def keys(self) -> tuple[TrustedKey, ...]:
        """Every trusted key."""
        return tuple(self._keys.values())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Load a trust store folder or file; KeyFileError if it is missing, empty or holds bad keys."""
        root = Path(path)
        if root.is_dir():
            files = sorted(p for p in root.iterdir() if p.suffix in KEY_SUFFIXES and p.is_file())
            store = cls([k for f in files for k in _keys_in_file(f)])
        elif root.is_file():
            store = cls(_keys_in_file(root))
        else:
            raise KeyFileError(f"trust store {path} does not exist", hint="give a folder of *.pub keys or a key file")
        if not len(store):
            raise KeyFileError(f"trust store {path} holds no public keys", hint="add PEM public keys (*.pub) to it")
        return store


def _keys_in_file(path: Path) -> list[TrustedKey]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read trusted key {path}: {exc.strerror}", hint="check permissions") from None
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        raise KeyFileError(f"{path}: no PEM public key in this file", hint="trust store entries are PEM public keys")
    keys: list[TrustedKey] = []
    for index, match in enumerate(blocks):
        given = match.group("name")
        name = (
            given.decode("utf-8", "replace").strip()
            if given
            else (path.stem if index == 0 else f"{path.stem}-{index + 1}")
        )
        keys.append(TrustedKey(name, load_verifier(match.group("pem") + b"\n", str(path))))
    return keys
