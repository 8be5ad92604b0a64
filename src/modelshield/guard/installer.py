"""``guard.install()``: make the usual loaders verify first.

Wraps ``torch.load``, ``joblib.load``, ``pickle.load`` and ``transformers``'
``PreTrainedModel.from_pretrained`` (those that are installed) so that a model without a valid
attestation is refused with the reason, and pickles resolve only allowlisted globals.
``uninstall()`` puts the originals back.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshield.guard.loaders as loaders
import modelshield.guard.restricted_pickle as restricted_pickle
from modelshield.attest.verify import Policy
from modelshield.guard.loaders import Trust
from modelshield.guard.restricted_pickle import GuardRefused

_LOCK = threading.Lock()
_SAVED: list[tuple[object, str, Any]] = []


def _path_of(target: Any) -> str | None:
    if isinstance(target, str | os.PathLike):
        return os.fspath(target)
    name = getattr(target, "name", None)
    return name if isinstance(name, str) and os.path.isfile(name) else None


def _refuse_anonymous(what: str) -> GuardRefused:
    return GuardRefused(
        "UNSIGNED",
        (f"{what} was given a stream with no file behind it, so no attestation can cover it",),
        hint="load models from attested files",
    )


def _patch(owner: object, attribute: str, replacement: Any) -> None:
    _SAVED.append((owner, attribute, getattr(owner, attribute)))
    setattr(owner, attribute, replacement)


def _torch_load(trust: Trust, policy: Policy | None, online: str | None) -> Callable[..., Any]:
    def guarded_torch_load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        path = _path_of(f)
        if path is None:
            raise _refuse_anonymous("torch.load")
        return loaders.load_torch(path, trust=trust, policy=policy, map_location=map_location, online=online)

    return guarded_torch_load


def _joblib_load(trust: Trust, policy: Policy | None, online: str | None) -> Callable[..., Any]:
    def guarded_joblib_load(filename: Any, *args: Any, **kwargs: Any) -> Any:
        path = _path_of(filename)
        if path is None:
            raise _refuse_anonymous("joblib.load")
        return loaders.load_joblib(path, trust=trust, policy=policy, online=online)

    return guarded_joblib_load


def _pickle_load(trust: Trust, policy: Policy | None, online: str | None) -> Callable[..., Any]:
    def guarded_pickle_load(file: Any, *args: Any, **kwargs: Any) -> Any:
        path = _path_of(file)
        if path is None:
            raise _refuse_anonymous("pickle.load")
        data = file.read()  # exactly the bytes that will be unpickled
        result = loaders.check_online(loaders.verify_bytes(path, data, trust, policy), online)
        if not result.ok:
            raise GuardRefused(result.outcome.value, result.reasons + tuple(result.diff.lines() if result.diff else ()))
        return restricted_pickle.loads(data, **kwargs)

    return guarded_pickle_load


def _from_pretrained(original: Any, trust: Trust, policy: Policy | None, online: str | None) -> Any:
    func = original.__func__

    @functools.wraps(func)
    def guarded_from_pretrained(cls: Any, name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        from modelshield.attest.verify import verify

        folder = Path(os.fspath(name_or_path))
        if not folder.is_dir():
            raise GuardRefused(
                "UNSIGNED",
                (f"{name_or_path} is not a local folder, so it cannot be verified before loading",),
                hint="download the model, scan it with --attest, and load it from that folder",
            )
        result = loaders.check_online(verify(folder, trust, policy=policy), online)
        if not result.ok:
            raise GuardRefused(result.outcome.value, result.reasons + tuple(result.diff.lines() if result.diff else ()))
        return func(cls, name_or_path, *args, **kwargs)

    return classmethod(guarded_from_pretrained)


def install(
    trust: Trust, policy: Policy | None = None, *, transformers: bool = True, online: str | None = None
) -> None:
    """Wrap the installed loaders so they verify before loading. Idempotent: re-install replaces.

    ``online`` (a modelshield catalog URL) also refuses attestations that catalog revoked.
    """
    with _LOCK:
        _restore()
        _patch(pickle, "load", _pickle_load(trust, policy, online))
        if importlib.util.find_spec("torch") is not None:
            torch = importlib.import_module("torch")
            _patch(torch, "load", _torch_load(trust, policy, online))
        if importlib.util.find_spec("joblib") is not None:
            joblib = importlib.import_module("joblib")
            _patch(joblib, "load", _joblib_load(trust, policy, online))
        if transformers and importlib.util.find_spec("transformers") is not None:
            module = importlib.import_module("transformers")
            base = module.PreTrainedModel
            original = base.__dict__["from_pretrained"]
            _patch(base, "from_pretrained", _from_pretrained(original, trust, policy, online))


def uninstall() -> None:
    """Put the original loaders back."""
    with _LOCK:
        _restore()


def _restore() -> None:
    while _SAVED:
        owner, attribute, original = _SAVED.pop()
        setattr(owner, attribute, original)
