"""PROVE it: manifests, signed scan attestations (in-toto + DSSE), the model card block, verify.

Quick start::

    from modelshield.attest import scan_and_attest, verify

    report, att = scan_and_attest("models/bert", "release.key")
    result = verify("models/bert", trust="trusted-keys/")
    print(result.outcome.value, result.reasons)
"""

from __future__ import annotations

from modelshield.attest.manifest import Manifest, build_manifest
from modelshield.attest.truststore import TrustStore
from modelshield.attest.verify import Outcome, PolicyResult, VerifyResult, allow_any, require_pass, verify
from modelshield.attest.workflow import Attestation, scan_and_attest

__all__ = [
    "Attestation",
    "Manifest",
    "Outcome",
    "PolicyResult",
    "TrustStore",
    "VerifyResult",
    "allow_any",
    "build_manifest",
    "require_pass",
    "scan_and_attest",
    "verify",
]
