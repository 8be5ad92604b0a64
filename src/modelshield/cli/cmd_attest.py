"""Commands ``keygen``, ``verify``, ``sign`` (OpenSSF model signing) and ``card``.

Imports of the implementation stay inside the commands so ``modelshield --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.cli._args import add_command

if TYPE_CHECKING:
    from modelshield.cli._args import Commands

KEY_ALGORITHMS = ("ed25519", "p256")
VERIFY_POLICIES = ("require-pass", "any")
VERIFY_FORMATS = ("text", "json")


def keygen(out: str, algorithm: str, force: bool) -> int:
    """Make a signing key pair for scan attestations (and OMS signatures with p256)."""
    from modelshield.attest.signers import generate, write_keypair

    signer = generate(algorithm)
    private_path, public_path = write_keypair(out, signer, overwrite=force)
    print(f"private key: {private_path} (keep it secret)", file=sys.stderr)
    print(f"public key:  {public_path} (put it in the trust store of whoever verifies)", file=sys.stderr)
    print(signer.keyid)
    return 0


def verify(
    model: Path,
    trust: Path,
    policy: str,
    attestation: Path | None,
    oms: bool,
    signature: Path | None,
    fmt: str,
    online: str | None,
) -> int:
    """Check a model against its signed attestation: digests, signer, expiry, policy and the card.

    Exit codes: 0 VERIFIED, 1 POLICY-DENIED, 2 error, 10 TAMPERED, 11 EXPIRED, 12 UNSIGNED,
    13 UNTRUSTED-SIGNER, 14 FORGED-CARD, 15 REVOKED (with --online: the catalog revoked it).
    """
    from modelshield.attest.truststore import TrustStore
    from modelshield.attest.verify import allow_any, require_pass
    from modelshield.attest.verify import verify as run_verify
    from modelshield.errors import SourceError

    if not model.exists():
        raise SourceError(f"{model}: no such file or folder", hint="check the path")
    store = TrustStore.load(trust)
    if not oms and model.is_file() and model.stat().st_size <= 4 << 20:  # a signed `modelshield probe` statement?
        from modelshield.probe.statement import is_probe_statement, verify_statement

        if is_probe_statement(model):
            probed = verify_statement(model, store, require_pass=policy != "any")
            print(json.dumps(probed.to_dict(), indent=2) if fmt == "json" else probed.message())
            return probed.exit_code
    if oms:
        from modelshield.attest.oms import verify_oms

        result = verify_oms(model, store, signature=signature)
    else:
        chosen = allow_any if policy == "any" else require_pass
        result = run_verify(model, store, policy=chosen, attestation=attestation)
    if online is not None:
        from modelshield.attest.online import check_online

        result = check_online(result, online)
    if fmt == "json":
        print(json.dumps(result.to_dict(), indent=2))
        print(result.message(), file=sys.stderr)
    else:
        print(result.message())
    return result.exit_code


def sign(model: Path, key: Path, signature: Path | None) -> int:
    """Sign a model in the OpenSSF Model Signing format (needs the 'signing' extra)."""
    from modelshield.attest.oms import sign as oms_sign

    written = oms_sign(model, key, signature)
    print(f"model-signing signature written: {written}", file=sys.stderr)
    print(str(written))
    return 0


def card(model: Path, refresh: bool) -> int:
    """Show the modelshield block of a model card, or refresh it from the attestation sidecar."""
    from modelshield.attest.card import card_path, load_card
    from modelshield.attest.workflow import refresh_card

    if refresh:
        path = refresh_card(model)
        print(f"model card refreshed: {path}", file=sys.stderr)
    claims = load_card(model)
    if claims is None:
        print(f"{card_path(model)}: no modelshield block", file=sys.stderr)
        return 1
    for key, value in claims.fields().items():
        print(f"{key}: {value}")
    return 0


def register(commands: Commands) -> None:
    """Add the attestation commands to the CLI."""
    parser = add_command(commands, "keygen", keygen)
    parser.add_argument(
        "--out", required=True, metavar="PREFIX", help="Path prefix: writes PREFIX.key (0600) and PREFIX.pub."
    )
    parser.add_argument("--algorithm", "-a", choices=KEY_ALGORITHMS, default="ed25519", help="Key type.")
    parser.add_argument("--force", action="store_true", help="Overwrite existing key files.")

    parser = add_command(commands, "verify", verify)
    parser.add_argument("model", type=Path, metavar="MODEL", help="The model file or folder to verify.")
    parser.add_argument(
        "--trust", type=Path, required=True, metavar="PATH", help="Trust store: a folder of *.pub keys or a key file."
    )
    parser.add_argument(
        "--policy",
        choices=VERIFY_POLICIES,
        default="require-pass",
        help="require-pass: the attested verdict must be pass.",
    )
    parser.add_argument("--attestation", type=Path, metavar="FILE", help="Attestation file (default: the sidecar).")
    parser.add_argument("--oms", action="store_true", help="Verify an OpenSSF model-signing signature instead.")
    parser.add_argument("--signature", type=Path, metavar="FILE", help="OMS signature file (default: model.sig).")
    parser.add_argument("--format", "-f", dest="fmt", choices=VERIFY_FORMATS, default="text", help="Output format.")
    parser.add_argument(
        "--online",
        metavar="URL",
        help="Also ask the modelshield catalog at URL whether the attestation was revoked (fails closed).",
    )

    parser = add_command(commands, "sign", sign)
    parser.add_argument("model", type=Path, metavar="MODEL", help="The model file or folder to sign.")
    parser.add_argument(
        "--key", type=Path, required=True, metavar="FILE", help="EC P-256 PEM private key (modelshield keygen -a p256)."
    )
    parser.add_argument(
        "--signature", type=Path, metavar="FILE", help="Where to write the signature (default: model.sig)."
    )

    parser = add_command(commands, "card", card)
    parser.add_argument(
        "model", type=Path, metavar="MODEL", help="The model file or folder whose card to show or refresh."
    )
    parser.add_argument("--refresh", action="store_true", help="Rewrite the card block and badge from the attestation.")
