"""Zero-trust loading: verify a model's attestation, then load it through the scanner's allowlist.

Quick start::

    from modelshield import guard

    model = guard.load("model.pt", trust="trusted-keys/")   # GuardRefused says why, if refused
    guard.install(trust="trusted-keys/")                    # torch.load, joblib.load, pickle.load ... now verify

Even a valid attestation (say, one made under a lenient policy) cannot make the guard run code:
every pickle global is judged by the same allowlist ``modelshield scan`` uses.
"""

from __future__ import annotations

from modelshield.guard.installer import install, uninstall
from modelshield.guard.loaders import (
    load,
    load_joblib,
    load_numpy,
    load_pickle,
    load_torch,
    read_verified,
    verify_bytes,
)
from modelshield.guard.restricted_pickle import GuardRefused

__all__ = [
    "GuardRefused",
    "install",
    "load",
    "load_joblib",
    "load_numpy",
    "load_pickle",
    "load_torch",
    "read_verified",
    "uninstall",
    "verify_bytes",
]
