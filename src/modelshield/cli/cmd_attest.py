"""Commands ``keygen``, ``verify``, ``sign`` (OpenSSF model signing) and ``card``.

Imports of the implementation stay inside the commands so ``modelshield --help`` stays fast.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class KeyAlgorithm(StrEnum):
    """Key types ``keygen`` can make."""

    ed25519 = "ed25519"
    p256 = "p256"


class PolicyChoice(StrEnum):
    """Built-in verification policies."""

    require_pass = "require-pass"
    any = "any"


class VerifyFormat(StrEnum):
    """Output formats of ``verify``."""

    text = "text"
    json = "json"


def keygen(
    out: Annotated[str, typer.Option("--out", help="Path prefix: writes PREFIX.key (0600) and PREFIX.pub.")],
    algorithm: Annotated[KeyAlgorithm, typer.Option("--algorithm", "-a", help="Key type.")] = KeyAlgorithm.ed25519,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Make a signing key pair for scan attestations (and OMS signatures with p256)."""
    from modelshield.attest.signers import generate, write_keypair

    signer = generate(algorithm.value)
    private_path, public_path = write_keypair(out, signer, overwrite=force)
    typer.echo(f"private key: {private_path} (keep it secret)", err=True)
    typer.echo(f"public key:  {public_path} (put it in the trust store of whoever verifies)", err=True)
    typer.echo(signer.keyid)
    raise typer.Exit(0)


def verify(
    model: Annotated[Path, typer.Argument(help="The model file or folder to verify.")],
    trust: Annotated[Path, typer.Option("--trust", help="Trust store: a folder of *.pub keys or a key file.")],
    policy: Annotated[
        PolicyChoice, typer.Option("--policy", help="require-pass: the attested verdict must be pass.")
    ] = PolicyChoice.require_pass,
    attestation: Annotated[Path | None, typer.Option(help="Attestation file (default: the sidecar).")] = None,
    oms: Annotated[bool, typer.Option("--oms", help="Verify an OpenSSF model-signing signature instead.")] = False,
    signature: Annotated[Path | None, typer.Option(help="OMS signature file (default: model.sig).")] = None,
    fmt: Annotated[VerifyFormat, typer.Option("--format", "-f", help="Output format.")] = VerifyFormat.text,
) -> None:
    """Check a model against its signed attestation: digests, signer, expiry, policy and the card.

    Exit codes: 0 VERIFIED, 1 POLICY-DENIED, 2 error, 10 TAMPERED, 11 EXPIRED, 12 UNSIGNED,
    13 UNTRUSTED-SIGNER, 14 FORGED-CARD.
    """
    from modelshield.attest.truststore import TrustStore
    from modelshield.attest.verify import allow_any, require_pass
    from modelshield.attest.verify import verify as run_verify
    from modelshield.errors import SourceError

    if not model.exists():
        raise SourceError(f"{model}: no such file or folder", hint="check the path")
    store = TrustStore.load(trust)
    if oms:
        from modelshield.attest.oms import verify_oms

        result = verify_oms(model, store, signature=signature)
    else:
        chosen = allow_any if policy is PolicyChoice.any else require_pass
        result = run_verify(model, store, policy=chosen, attestation=attestation)
    if fmt is VerifyFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        typer.echo(result.message(), err=True)
    else:
        typer.echo(result.message())
    raise typer.Exit(result.exit_code)


def sign(
    model: Annotated[Path, typer.Argument(help="The model file or folder to sign.")],
    key: Annotated[Path, typer.Option("--key", help="EC P-256 PEM private key (modelshield keygen -a p256).")],
    signature: Annotated[Path | None, typer.Option(help="Where to write the signature (default: model.sig).")] = None,
) -> None:
    """Sign a model in the OpenSSF Model Signing format (needs the 'signing' extra)."""
    from modelshield.attest.oms import sign as oms_sign

    written = oms_sign(model, key, signature)
    typer.echo(f"model-signing signature written: {written}", err=True)
    typer.echo(str(written))
    raise typer.Exit(0)


def card(
    model: Annotated[Path, typer.Argument(help="The model file or folder whose card to show or refresh.")],
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Rewrite the card block and badge from the attestation.")
    ] = False,
) -> None:
    """Show the modelshield block of a model card, or refresh it from the attestation sidecar."""
    from modelshield.attest.card import card_path, load_card
    from modelshield.attest.workflow import refresh_card

    if refresh:
        path = refresh_card(model)
        typer.echo(f"model card refreshed: {path}", err=True)
    claims = load_card(model)
    if claims is None:
        typer.echo(f"{card_path(model)}: no modelshield block", err=True)
        raise typer.Exit(1)
    for key, value in claims.fields().items():
        typer.echo(f"{key}: {value}")
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    """Add the attestation commands to the CLI."""
    app.command()(keygen)
    app.command()(verify)
    app.command()(sign)
    app.command()(card)
