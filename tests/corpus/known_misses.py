"""Samples the scanner is known to miss today, with why. Each entry turns a test into a strict xfail, so fixing
the scanner makes the test pass loudly (XPASS fails): then delete the entry. Never add an entry to hide a miss:
every entry is reported to the lead as a finding to fix."""

from __future__ import annotations

#: name -> reason: the scanner does not block the sample (CLI would exit 0).
NOT_BLOCKED: dict[str, str] = {
    "prim-torch-storage-load-from-bytes": (
        "torch.storage._load_from_bytes is on the pickle allowlist, but it runs torch.load(io.BytesIO(b), "
        "weights_only=False) on its argument: the embedded malicious pickle is neither scanned nor flagged"
    ),
    "prim-torch-load-from-bytes-in-legacy-storage": (
        "same allow-listed torch.storage._load_from_bytes re-entry, nested in a state dict"
    ),
}

#: name -> reason: blocked, but only through a coverage/parse finding, not a finding that names the threat.
NOT_NAMED: dict[str, str] = {}

#: benign file name -> reason: a real, benign model gets a finding at or above medium.
FALSE_POSITIVES: dict[str, str] = {
    "torchscript-module.pt": (
        "a plain torch.jit.save of nn.Linear/ReLU/BatchNorm1d gets TORCHSCRIPT-DANGEROUS-CODE (high: generated "
        "code references builtins) and PICKLE-UNSAFE-GLOBAL (critical: torch.jit._pickle.build_intlist in "
        "constants/data pickles, which TorchScript's own restricted unpickler emits)"
    ),
}
