"""A drop-in ``pickle`` module whose Unpickler only resolves globals the scanner's allowlist allows.

It is handed to ``torch.load(pickle_module=...)`` and used for plain pickles and joblib files, so
the loader enforces exactly what ``modelshield scan`` enforces: each global is judged by
:func:`modelshield.analyzers.pickle_globals.judge_global`, and anything not allowed is refused
before it is imported, let alone called.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import IO, Any, Protocol

from modelshield.errors import ModelShieldError

UnpicklingError = pickle.UnpicklingError
HIGHEST_PROTOCOL = pickle.HIGHEST_PROTOCOL
DEFAULT_PROTOCOL = pickle.DEFAULT_PROTOCOL

#: Globals refused whatever the allowlist says: they read unverified companion files.
ALWAYS_REFUSED = frozenset(
    {("joblib.numpy_pickle", "NDArrayWrapper"), ("joblib.numpy_pickle_compat", "NDArrayWrapper")}
)


class GuardRefused(ModelShieldError):
    """The guard refused to load a model; ``reasons`` say why (``outcome`` names the check)."""

    def __init__(self, outcome: str, reasons: tuple[str, ...], *, hint: str = "") -> None:
        super().__init__(f"refused to load ({outcome}): " + "; ".join(reasons), hint=hint)
        self.outcome = outcome
        self.reasons = reasons


class GlobalVerdict(Protocol):
    """What the scanner's allowlist says about one global."""

    @property
    def allowed(self) -> bool:
        """True when the global may be resolved."""

    @property
    def reason(self) -> str:
        """Why it is allowed or not."""


def judge(module: str, name: str) -> GlobalVerdict | None:
    """The scanner's verdict on ``module.name``; None when the allowlist is unavailable (fail closed)."""
    try:
        globals_module = importlib.import_module("modelshield.analyzers.pickle_globals")
    except ImportError:
        return None
    verdict: GlobalVerdict = globals_module.judge_global(module, name)
    return verdict


def check_global(module: str, name: str) -> None:
    """Raise GuardRefused unless the scanner's allowlist allows ``module.name``."""
    if (module, name) in ALWAYS_REFUSED:
        raise GuardRefused("UNSAFE-GLOBAL", (f"global {module}.{name} reads unverified companion files",))
    verdict = judge(module, name)
    if verdict is None:
        raise GuardRefused(
            "UNSAFE-GLOBAL",
            (f"global {module}.{name} cannot be judged: the pickle allowlist is unavailable",),
            hint="reinstall modelshield",
        )
    if not verdict.allowed:
        raise GuardRefused(
            "UNSAFE-GLOBAL",
            (f"global {module}.{name} is not allowed: {verdict.reason}",),
            hint="this pickle would run code a model does not need; do not load it",
        )


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allowlisted globals."""

    def find_class(self, module: str, name: str, /) -> Any:
        """Judge the global first; refuse it unless the scanner allows it."""
        check_global(module, name)
        return super().find_class(module, name)


def load(file: IO[bytes], **kwargs: Any) -> Any:
    """``pickle.load`` through the restricted Unpickler."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, /, **kwargs: Any) -> Any:
    """``pickle.loads`` through the restricted Unpickler."""
    return Unpickler(io.BytesIO(data), **kwargs).load()
