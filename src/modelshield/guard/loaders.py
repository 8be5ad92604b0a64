"""Verify-before-load: read the file once, verify exactly those bytes, then load them restrictedly.

There is no check-then-swap window: the bytes that are hashed and compared with the attestation
are the bytes handed to the unpickler (the file is never opened twice).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import modelshield.guard.restricted_pickle as restricted_pickle
from modelshield.attest.manifest import (
    FILE_SIDECAR_SUFFIX,
    FOLDER_SIDECAR_NAME,
    FileDigest,
    hash_bytes,
    manifest_from_digests,
)
from modelshield.attest.truststore import TrustStore
from modelshield.attest.verify import Outcome, Policy, VerifyResult, verify
from modelshield.guard.restricted_pickle import GuardRefused

Trust = TrustStore | str | os.PathLike[str]
#: How many folders up the guard looks for a folder attestation covering a file.
MAX_PARENT_LEVELS = 8


def find_attestation(path: Path) -> tuple[Path, Path, str] | None:
    """(model root, attestation file, name of ``path`` inside the model) or None when unattested."""
    own = path.with_name(path.name + FILE_SIDECAR_SUFFIX)
    if own.is_file():
        return path, own, path.name
    folder = path.parent
    for _ in range(MAX_PARENT_LEVELS):
        candidate = folder / FOLDER_SIDECAR_NAME
        if candidate.is_file():
            return folder, candidate, path.relative_to(folder).as_posix()
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def verify_bytes(path: str | os.PathLike[str], data: bytes, trust: Trust, policy: Policy | None = None) -> VerifyResult:
    """Verify ``data`` (the content read from ``path``) against the attestation covering ``path``."""
    file_path = Path(os.path.abspath(path))
    found = find_attestation(file_path)
    if found is None:
        return VerifyResult(Outcome.UNSIGNED, str(path), (f"no attestation covers {path}",))
    root, attestation, name = found
    manifest = manifest_from_digests(str(root), root.is_dir(), [FileDigest(name, len(data), hash_bytes(data))])
    return verify(root, trust, policy=policy, attestation=attestation, manifest=manifest, only={name})


def check_online(result: VerifyResult, online: str | None) -> VerifyResult:
    """With a catalog URL: REVOKED when the catalog revoked the attestation; GuardRefused when it cannot tell."""
    if online is None or not result.ok:
        return result
    from modelshield.attest.online import RevocationCheckError
    from modelshield.attest.online import check_online as online_check

    try:
        return online_check(result, online)
    except RevocationCheckError as exc:
        raise GuardRefused("REVOCATION-UNKNOWN", (exc.message,), hint=exc.hint) from None


def read_verified(
    path: str | os.PathLike[str], trust: Trust, policy: Policy | None = None, online: str | None = None
) -> bytes:
    """The file's bytes, read once and verified; GuardRefused with the reasons otherwise.

    ``online`` (a modelshield catalog URL) adds the revocation check: a revoked attestation is refused,
    and so is any load while the catalog cannot be asked (fail closed).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GuardRefused("UNREADABLE", (f"cannot read {path}: {exc.strerror}",)) from None
    result = check_online(verify_bytes(path, data, trust, policy), online)
    if not result.ok:
        reasons = result.reasons + tuple(result.diff.lines() if result.diff else ())
        raise GuardRefused(result.outcome.value, reasons, hint="scan the model with --attest, or do not load it")
    return data


def load_pickle(
    path: str | os.PathLike[str], *, trust: Trust, policy: Policy | None = None, online: str | None = None
) -> Any:
    """Verify, then unpickle through the allowlist."""
    return restricted_pickle.loads(read_verified(path, trust, policy, online))


def load_torch(
    path: str | os.PathLike[str],
    *,
    trust: Trust,
    policy: Policy | None = None,
    map_location: Any = None,
    online: str | None = None,
) -> Any:
    """Verify, then ``torch.load`` the verified bytes with the restricted pickle module."""
    return torch_from_bytes(read_verified(path, trust, policy, online), map_location=map_location)


def torch_from_bytes(data: bytes, *, map_location: Any = None) -> Any:
    """``torch.load`` over verified bytes, resolving pickle globals through the allowlist."""
    from torch import serialization

    stream = io.BytesIO(data)
    return serialization.load(stream, map_location=map_location, pickle_module=restricted_pickle, weights_only=False)


def load_joblib(
    path: str | os.PathLike[str], *, trust: Trust, policy: Policy | None = None, online: str | None = None
) -> Any:
    """Verify, then load a joblib file (compressed or not) with allowlisted globals only."""
    return joblib_from_bytes(read_verified(path, trust, policy, online), str(path))


def joblib_from_bytes(data: bytes, name: str = "") -> Any:
    """Load joblib content from verified bytes; every global (nested object arrays too) is judged."""
    from joblib import numpy_pickle

    class GuardedNumpyUnpickler(numpy_pickle.NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> Any:
            restricted_pickle.check_global(module, name)
            return super().find_class(module, name)

    with numpy_pickle._validate_fileobject_and_memmap(io.BytesIO(data), name, None) as (stream, _):
        return GuardedNumpyUnpickler(name, stream, ensure_native_byte_order=True).load()


def load_numpy(
    path: str | os.PathLike[str], *, trust: Trust, policy: Policy | None = None, online: str | None = None
) -> Any:
    """Verify, then load a .npy/.npz; object arrays are unpickled through the allowlist."""
    return numpy_from_bytes(read_verified(path, trust, policy, online), str(path))


def numpy_from_bytes(data: bytes, name: str = "") -> Any:
    """Load .npy (object arrays through the allowlist) or .npz (no pickles) from verified bytes."""
    import numpy as np

    stream = io.BytesIO(data)
    if data.startswith(b"PK"):
        with np.load(stream, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    version = np.lib.format.read_magic(stream)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = header(stream)
    if not dtype.hasobject:
        return np.load(io.BytesIO(data), allow_pickle=False)
    array = restricted_pickle.Unpickler(stream, encoding="latin1").load()
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise GuardRefused("MALFORMED", (f"{name}: the object array does not match its header",))
    return array


def _kind(data: bytes, suffix: str) -> str:
    if data.startswith(b"\x93NUMPY"):
        return "numpy"
    if data.startswith(b"PK\x03\x04"):
        return "numpy" if suffix == ".npz" else "torch"
    if suffix in {".joblib", ".z", ".gz", ".xz", ".lzma", ".bz2", ".lz4"}:
        return "joblib"
    if suffix in {".pt", ".pth", ".bin", ".ckpt"}:
        return "torch"
    return "pickle"


def load(
    path: str | os.PathLike[str],
    *,
    trust: Trust,
    policy: Policy | None = None,
    map_location: Any = None,
    online: str | None = None,
) -> Any:
    """Verify ``path`` against its attestation, then load it with the matching restricted loader.

    The file is read once; the kind is decided from those bytes (numpy magic, zip -> torch or
    npz) and the extension (joblib, legacy torch); anything else is a plain pickle. Every pickle
    global is judged by the scanner's allowlist. ``online`` (a modelshield catalog URL) also refuses
    attestations the catalog revoked.
    """
    data = read_verified(path, trust, policy, online)
    kind = _kind(data, Path(path).suffix.lower())
    if kind == "numpy":
        return numpy_from_bytes(data, str(path))
    if kind == "torch":
        return torch_from_bytes(data, map_location=map_location)
    if kind == "joblib":
        return joblib_from_bytes(data, str(path))
    return restricted_pickle.loads(data)
