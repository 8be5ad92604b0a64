"""Errors of modelshield: one base with ``diagnostics()`` and one base per pipeline stage."""

from __future__ import annotations


class ModelShieldError(Exception):
    """Base of every error modelshield raises on purpose.

    ``diagnostics()`` returns a message that says what was wrong and what to do.
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """Message for a human: what went wrong, then what to do about it."""
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(ModelShieldError):
    """Bad arguments or options given by the user."""


class SourceError(ModelShieldError):
    """A target could not be read (missing, unreadable, not a supported source)."""


class FormatError(ModelShieldError):
    """A reader met bytes it cannot parse. Readers turn this into findings."""


class LimitExceeded(FormatError):
    """A configured limit (size, opcodes, depth, time ...) was hit while parsing."""

    def __init__(self, limit: str, value: object, message: str = "") -> None:
        super().__init__(
            message or f"limit {limit} ({value}) exceeded", hint=f"raise --limit {limit}=... if you trust this input"
        )
        self.limit = limit
        self.value = value


class AnalyzerError(ModelShieldError):
    """An analyzer could not complete."""


class RenderError(ModelShieldError):
    """A report could not be written."""


class WorkerError(ModelShieldError):
    """Scanner worker processes cannot run (they fail before scanning anything)."""
