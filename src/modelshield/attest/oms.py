"""Interoperability with the OpenSSF Model Signing (OMS) format of sigstore/model-transparency.

* :func:`sign` writes an OMS signature (a Sigstore bundle holding a DSSE envelope) with an EC
  P-256 private key, through the ``model-signing`` package (extra ``signing``), so that
  ``model_signing verify key`` accepts it. The card and modelshield's own files are excluded.
* :func:`verify_oms` checks an OMS signature natively (no extra needed) against the trust store
  and the files on disk, reusing the manifest's digests: one hash pass.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import modelshield.attest.dsse as dsse
from modelshield.attest.manifest import (
    CARD_NAME,
    FILE_SIDECAR_SUFFIX,
    FOLDER_SIDECAR_NAME,
    OMS_SIGNATURE_NAME,
    Manifest,
    build_manifest,
    hash_file,
)
from modelshield.attest.results import Outcome, VerifyResult, diff_files
from modelshield.attest.truststore import TrustStore
from modelshield.errors import ModelShieldError

OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"


class OmsError(ModelShieldError):
    """An OMS signature could not be made or read."""


def oms_signature_path(model: str | os.PathLike[str]) -> Path:
    """Default OMS signature of a model: ``model.sig`` in a folder, ``<file>.sig`` beside a file."""
    path = Path(model)
    return path / OMS_SIGNATURE_NAME if path.is_dir() else path.with_name(path.name + ".sig")


def _payload(signature: Path) -> dict[str, Any]:
    try:
        envelope = dsse.parse(signature.read_bytes(), str(signature))
        payload = json.loads(envelope.payload)
    except OSError as exc:
        raise OmsError(f"cannot read {signature}: {exc.strerror}", hint="check the path") from None
    except ValueError as exc:
        raise OmsError(
            f"{signature}: the signed payload is not JSON ({exc})", hint="the signature is damaged"
        ) from None
    if not isinstance(payload, dict):
        raise OmsError(f"{signature}: the signed payload is not an in-toto statement", hint="the signature is damaged")
    return payload


def oms_root_digest(signature: str | os.PathLike[str]) -> str | None:
    """The manifest digest (the statement's subject) of an OMS signature, or None if it has none."""
    try:
        payload = _payload(Path(signature))
        return str(payload["subject"][0]["digest"]["sha256"])
    except (dsse.EnvelopeError, OmsError, KeyError, IndexError, TypeError):
        return None


def sign(
    model: str | os.PathLike[str],
    private_key: str | os.PathLike[str],
    signature: str | os.PathLike[str] | None = None,
    password: str | None = None,
) -> Path:
    """Sign ``model`` in the OMS format with an EC private key (needs the ``signing`` extra)."""
    try:
        from model_signing import hashing as oms_hashing
        from model_signing import signing as oms_signing
    except ImportError:
        raise OmsError(
            "OpenSSF model signing needs the model-signing package",
            hint="pip install 'modelshield[signing]' (model-signing and pyopenssl)",
        ) from None
    target = Path(signature) if signature is not None else oms_signature_path(model)
    model_path = Path(model)
    ignored = [model_path / CARD_NAME, model_path / FOLDER_SIDECAR_NAME] if model_path.is_dir() else []
    ignored += list(model_path.glob(f"*{FILE_SIDECAR_SUFFIX}")) if model_path.is_dir() else []
    hashing_config = oms_hashing.Config()  # type: ignore[no-untyped-call]
    hashing_config.set_ignored_paths(paths=[*ignored, target], ignore_git_paths=True)
    try:
        config = oms_signing.Config().use_elliptic_key_signer(  # type: ignore[no-untyped-call]
            private_key=private_key, password=password
        )
        config.set_hashing_config(hashing_config).sign(model_path, target)
    except (ValueError, TypeError, OSError) as exc:
        raise OmsError(f"model-signing could not sign {model}: {exc}", hint="use an EC P-256 PEM private key") from None
    return target


def _actual_files(model: Path, signature: Path, ignore: list[str], manifest: Manifest) -> dict[str, str]:
    """Files OMS covers (its ignore list applied), digests reused from ``manifest`` when present."""
    known = manifest.digests_by_path()
    if not model.is_dir():
        return {".": known.get(os.path.abspath(model)) or hash_file(str(model))[1]}
    skip = {os.path.normpath(p) for p in ignore} | {os.path.relpath(signature, model)}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(model):
        rel_dir = os.path.relpath(dirpath, model)
        dirnames[:] = sorted(d for d in dirnames if os.path.normpath(os.path.join(rel_dir, d)) not in skip)
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in skip:
                continue
            full = os.path.abspath(os.path.join(dirpath, name))
            out[Path(rel).as_posix()] = known.get(full) or hash_file(full)[1]
    return out


def verify_oms(
    model: str | os.PathLike[str],
    trust: TrustStore | str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    manifest: Manifest | None = None,
) -> VerifyResult:
    """Verify an OMS signature (key-based, offline) against the trust store and the files."""
    store = trust if isinstance(trust, TrustStore) else TrustStore.load(trust)
    sig_path = Path(signature) if signature is not None else oms_signature_path(model)
    name = str(model)
    if not sig_path.is_file():
        return VerifyResult(
            Outcome.UNSIGNED, name, (f"no model-signing signature (expected {sig_path})",), str(sig_path)
        )
    try:
        envelope = dsse.parse(sig_path.read_bytes(), str(sig_path))
    except (dsse.EnvelopeError, OSError) as exc:
        return VerifyResult(Outcome.TAMPERED, name, (f"the signature is damaged: {exc}",), str(sig_path))
    verifier = dsse.verify(envelope, store)
    if verifier is None:
        return VerifyResult(
            Outcome.UNTRUSTED_SIGNER, name, ("the signature was not made by any key in the trust store",), str(sig_path)
        )
    signer = store.name_of(verifier.keyid)
    try:
        expected, ignore = _resources(json.loads(envelope.payload))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        reason = f"the signed payload is not a usable OMS manifest: {exc}"
        return VerifyResult(Outcome.TAMPERED, name, (reason,), str(sig_path), signer, verifier.keyid)
    files = manifest if manifest is not None else build_manifest(model)
    actual = _actual_files(Path(model), sig_path, ignore, files)
    diff = diff_files(expected, actual)
    if not diff.empty:
        reason = f"{len(diff.lines())} file difference(s) from the signed OMS manifest"
        return VerifyResult(Outcome.TAMPERED, name, (reason,), str(sig_path), signer, verifier.keyid, diff=diff)
    return VerifyResult(Outcome.VERIFIED, name, (), str(sig_path), signer, verifier.keyid)


def _resources(payload: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    if payload.get("predicateType") != OMS_PREDICATE_TYPE:
        raise ValueError(f"predicate type {payload.get('predicateType')!r} is not {OMS_PREDICATE_TYPE}")
    predicate = payload["predicate"]
    serialization = predicate["serialization"]
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise ValueError(f"only the 'files' method with sha256 is supported, not {serialization}")
    root = hashlib.sha256()
    resources: dict[str, str] = {}
    for item in predicate["resources"]:
        if item["algorithm"] != "sha256":
            raise ValueError(f"resource {item['name']!r} uses {item['algorithm']!r}")
        root.update(bytes.fromhex(item["digest"]))
        resources[str(item["name"])] = str(item["digest"]).lower()
    if root.hexdigest() != payload["subject"][0]["digest"]["sha256"]:
        raise ValueError("the manifest digest does not match its resources")
    ignore = [str(p) for p in serialization.get("ignore_paths", [])]
    return resources, ignore
