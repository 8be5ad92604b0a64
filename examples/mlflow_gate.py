"""An MLflow model registry gate: no version reaches production without a passing signed modelshield attestation.

Two steps, usually run by different people or jobs::

    # 1. whoever vouches for a version (CI, the ML platform) scans and signs its artifacts
    python examples/mlflow_gate.py attest NAME VERSION --key release.key

    # 2. the promotion step verifies that attestation against a trust store before it moves the version
    python examples/mlflow_gate.py promote NAME VERSION --trust trusted-keys/ [--alias production] [--stage Production]

``attest`` downloads the version's artifacts, scans them statically (nothing is loaded),
signs the result (an in-toto statement over every file's SHA-256, in a DSSE envelope) and stores
the envelope with the artifacts, as ``modelshield.attestation.dsse.json`` beside the model files.
It records the attested verdict on the version as the tag ``modelshield.verdict``; a version
that does not pass is still attested (the signed evidence of why it fails).

``promote`` downloads the artifacts again (the attestation with them) and calls
``modelshield.attest.verify``: the signer must be in the trust store, every file must hash to its
attested digest (nothing added, removed or changed since), the attestation must not have expired,
and the attested verdict must be ``pass``. Only then does it set the alias (default
``production``) and, with ``--stage``, transition the stage; otherwise it refuses with the reason
and leaves the registry untouched. The outcome is recorded as the tag ``modelshield.gate``.

The tracking store is MLflow's own setting, ``MLFLOW_TRACKING_URI``. Exit codes: 0 done,
1 refused (or, for ``attest``, the attested verdict is not pass), 2 bad input (no such model or
version, no key, unreachable store).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from modelshield.attest import scan_and_attest, verify
from modelshield.attest.manifest import FOLDER_SIDECAR_NAME
from modelshield.errors import ModelShieldError, UsageError
from modelshield.sources.mlflow import download

VERDICT_TAG = "modelshield.verdict"
GATE_TAG = "modelshield.gate"


def _client():  # type: ignore[no-untyped-def]  # mlflow is untyped here; imported lazily like the source does
    from mlflow import MlflowClient

    return MlflowClient()


def _artifacts(name: str, version: str, into: Path) -> Path:
    """Download the version's artifacts into ``into`` (a clear error when it does not exist)."""
    return Path(download(f"mlflow://models/{name}/{version}", dst=str(into)))


def attest(name: str, version: str, key: str, valid_days: float) -> int:
    """Scan and sign version ``VERSION`` of ``NAME``; store the attestation with its artifacts."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    with tempfile.TemporaryDirectory(prefix="modelshield-gate-") as tmp:
        folder = _artifacts(name, version, Path(tmp))
        if not folder.is_dir():
            raise UsageError(f"{name}/{version}: the version's artifacts are a single file", hint="log a model folder")
        report, attestation = scan_and_attest(folder, key, valid_days=valid_days, card=False)
        client = _client()
        location = client.get_model_version_download_uri(name, version)
        get_artifact_repository(location).log_artifact(str(folder / FOLDER_SIDECAR_NAME))
        client.set_model_version_tag(name, version, VERDICT_TAG, attestation.verdict)
    print(f"{name}/{version}: attested verdict {attestation.verdict} ({len(report.findings)} finding(s)); "
          f"attestation stored at {location}/{FOLDER_SIDECAR_NAME}")  # fmt: skip
    return 0 if attestation.verdict == "pass" else 1


def promote(name: str, version: str, trust: str, alias: str, stage: str | None) -> int:
    """Move the version to production only if its attestation verifies and passes."""
    client = _client()
    with tempfile.TemporaryDirectory(prefix="modelshield-gate-") as tmp:
        folder = _artifacts(name, version, Path(tmp))
        result = verify(folder, trust, check_card=False)
    client.set_model_version_tag(name, version, GATE_TAG, result.outcome.value)
    if not result.ok:
        print(f"REFUSED: {name} version {version} stays where it is: {result.outcome.value}", file=sys.stderr)
        for reason in result.reasons:
            print(f"  - {reason}", file=sys.stderr)
        return 1
    client.set_registered_model_alias(name, alias, version)
    if stage:
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=False)
    moved = f"alias {alias!r}" + (f" and stage {stage!r}" if stage else "")
    print(f"PROMOTED: {name} version {version} -> {moved} (attestation verified, signed by {result.signer})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run ``attest`` or ``promote``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sign = commands.add_parser("attest", help="Scan and sign a model version's artifacts.")
    sign.add_argument("name")
    sign.add_argument("version")
    sign.add_argument("--key", required=True, help="Private key (modelshield keygen --out NAME).")
    sign.add_argument("--valid-days", type=float, default=90.0, help="Days until the attestation expires.")
    gate = commands.add_parser("promote", help="Verify the attestation, then move the version to production.")
    gate.add_argument("name")
    gate.add_argument("version")
    gate.add_argument("--trust", required=True, help="Trust store: a folder of *.pub keys or one key file.")
    gate.add_argument("--alias", default="production", help="Alias to point at the version (default: production).")
    gate.add_argument("--stage", help="Also transition to this stage (e.g. Production; stages are deprecated).")
    args = parser.parse_args(argv)
    try:
        if args.command == "attest":
            return attest(args.name, args.version, args.key, args.valid_days)
        return promote(args.name, args.version, args.trust, args.alias, args.stage)
    except ModelShieldError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
