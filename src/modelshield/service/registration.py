"""Registering a model from an upload, a server-side path or a Hugging Face cache id (API and UI).

Order matters for "nothing half-stored": the name is checked before any byte is stored, the blobs
are moved into the store only after the whole upload was received, and a registration that still
fails removes the blobs it created (unless another model refers to them by then).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from modelshield.errors import SourceError
from modelshield.service import catalog, policy_store
from modelshield.service.auth import Principal
from modelshield.service.db import is_unavailable
from modelshield.service.deps import Services
from modelshield.service.errors import conflict, invalid
from modelshield.service.models import ModelFile
from modelshield.service.storage import StoredFile
from modelshield.service.uploads import Upload

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def flag(value: str | None, name: str) -> bool:
    """A form checkbox or boolean field."""
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise invalid(f"{name} is true or false", code="invalid_request")


def precheck(parts: Services, name: str, profile: str | None) -> str:
    """Name and profile checks that need no bytes (409/422 before anything is stored); the profile."""
    catalog.check_model_name(name)
    with parts.db.read() as session:
        chosen = policy_store.check_profile(session, profile)
        if catalog.name_taken(session, name):
            raise conflict(f"a model named {name!r} exists already", code="name_taken")
    return chosen


def _store_and_register(
    parts: Services,
    stored: list[StoredFile],
    *,
    name: str,
    profile: str,
    dynamic: bool,
    kind: str,
    ref: str,
    who: Principal,
) -> dict[str, Any]:
    try:
        with parts.db.write() as session:
            model = catalog.register(
                session,
                parts.settings,
                name=name,
                files=stored,
                profile=profile,
                dynamic=dynamic,
                source_kind=kind,
                source_ref=ref,
                principal=who,
            )
            return {"id": model.id, "name": model.name, "status": model.status}
    except BaseException as exc:
        _remove_unreferenced(parts, stored, database_down=is_unavailable(exc))
        raise


def _remove_unreferenced(parts: Services, stored: list[StoredFile], *, database_down: bool) -> None:
    created = [f for f in stored if f.created]
    if not created or database_down:
        return  # an orphan blob is harmless; a blob removed under another model is not
    try:
        with parts.db.read() as session:
            used = set(
                session.scalars(select(ModelFile.sha256).where(ModelFile.sha256.in_([f.sha256 for f in created])))
            )
    except Exception:  # noqa: BLE001 - keep the blobs when in doubt
        return
    parts.storage.remove_created(f for f in created if f.sha256 not in used)


def register_upload(parts: Services, upload: Upload, who: Principal) -> dict[str, Any]:
    """Register a received multipart upload (fields ``name``, ``profile``, ``dynamic``; files)."""
    name = upload.fields.get("name", "").strip()
    profile = upload.fields.get("profile") or None
    dynamic = flag(upload.fields.get("dynamic"), "dynamic")
    chosen = precheck(parts, name, profile)
    if not upload.files:
        raise invalid("upload at least one file part named 'file'", code="empty_model")
    paths = [p.relpath for p in upload.files]
    if len(set(paths)) != len(paths):
        raise invalid("two files of the upload have the same name", code="duplicate_file_name")
    for pending in upload.files:
        pending.finish()
    stored = [parts.storage.commit(p) for p in upload.files]
    upload.files.clear()
    return _store_and_register(
        parts, stored, name=name, profile=chosen, dynamic=dynamic, kind="upload", ref=", ".join(paths)[:2000], who=who
    )


def register_path(
    parts: Services, name: str, path: str, profile: str | None, dynamic: bool, who: Principal
) -> dict[str, Any]:
    """Register a model from a file or folder on the server (admin only: it reads the server's disk)."""
    who.require("admin", "registering a server-side path")
    if not os.path.isabs(path):
        raise invalid("the path must be absolute", code="invalid_path")
    chosen = precheck(parts, name, profile)
    stored = parts.storage.import_tree(Path(path), follow_symlinks=False, max_bytes=parts.settings.max_model_bytes)
    return _store_and_register(
        parts, stored, name=name, profile=chosen, dynamic=dynamic, kind="path", ref=path, who=who
    )


def register_hf(
    parts: Services, name: str, repo_id: str, profile: str | None, dynamic: bool, who: Principal
) -> dict[str, Any]:
    """Register a model from the service's local Hugging Face cache (offline: nothing is downloaded)."""
    from modelshield.sources.hf_cache import snapshot_folder

    chosen = precheck(parts, name, profile)
    try:
        folder = snapshot_folder(repo_id if repo_id.startswith("hf:") else f"hf:{repo_id}")
    except SourceError:
        raise invalid(
            f"{repo_id!r} is not in the service's Hugging Face cache (nothing is downloaded)", code="not_in_cache"
        ) from None
    stored = parts.storage.import_tree(folder, follow_symlinks=True, max_bytes=parts.settings.max_model_bytes)
    return _store_and_register(
        parts, stored, name=name, profile=chosen, dynamic=dynamic, kind="hf", ref=repo_id, who=who
    )
