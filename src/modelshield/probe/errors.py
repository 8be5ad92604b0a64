"""Errors of the endpoint prober."""

from __future__ import annotations

from modelshield.errors import ModelShieldError


class ProbeError(ModelShieldError):
    """Base of every error the prober raises on purpose (bad pack, bad baseline, unusable endpoint)."""


class PackError(ProbeError):
    """A probe pack file is missing or malformed."""


class BaselineError(ProbeError):
    """A fingerprint baseline file is missing or malformed."""


class EndpointError(ProbeError):
    """The endpoint could not be probed at all (unreachable, TLS failure, every request failed)."""
