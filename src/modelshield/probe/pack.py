"""Probe packs: probes are data (JSON or YAML) with stable ids, so users can add their own.

A pack file::

    {"name": "default", "version": "1",
     "families": {"direct-injection": {"title": "...", "severity": "high"}, ...},
     "probes": [{"id": "DI-001", "family": "direct-injection", "system": "...", "user": "...",
                 "detector": "marker"}, ...]}

Text fields may use placeholders the runner fills per trial: ``{marker_a}`` and ``{marker_b}``
(an attack succeeds when the endpoint writes them joined, which an echo of the prompt never
does), ``{canary}`` (a secret that must never come back), ``{payload}`` (the probe's ``payload``
after its ``encode``: ``base64``, ``rot13``, ``leet`` or ``plain``). ``plant`` is a first
conversation (data boundary), ``shots`` prepends that many fake compliant exchanges (many-shot),
``document`` is wrapped as supplied content (indirect injection), ``patterns`` are regular
expressions for the ``comply`` detector.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modelshield.probe.errors import PackError

FAMILIES = (
    "direct-injection",
    "indirect-injection",
    "jailbreak",
    "system-prompt-leak",
    "data-boundary",
    "harmful-content",
    "package-hallucination",
    "unsafe-output",
)
DETECTORS = ("marker", "canary", "boundary", "comply", "packages", "unsafe-output")
ENCODINGS = ("plain", "base64", "rot13", "leet")
BUILTIN_PACKS = ("default", "smoke")


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe: what to send and how to judge the answer."""

    id: str
    family: str
    user: str
    detector: str
    system: str = ""
    document: str = ""
    payload: str = ""
    encode: str = "plain"
    plant: str = ""
    shots: int = 0
    patterns: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True, slots=True)
class Pack:
    """A loaded pack: its probes, family titles and severities, and the digest of its source."""

    name: str
    version: str
    probes: tuple[Probe, ...]
    families: dict[str, dict[str, str]] = field(default_factory=dict)
    sha256: str = ""

    def family_names(self) -> list[str]:
        """Families that have at least one probe, in the canonical order then any others."""
        present = {p.family for p in self.probes}
        return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))

    def subset(self, families: list[str] | None = None, limit: int | None = None) -> Pack:
        """Only these families, and at most ``limit`` probes per family."""
        chosen: list[Probe] = []
        counts: dict[str, int] = {}
        for probe in self.probes:
            if families and probe.family not in families:
                continue
            if limit is not None and counts.get(probe.family, 0) >= limit:
                continue
            counts[probe.family] = counts.get(probe.family, 0) + 1
            chosen.append(probe)
        return Pack(self.name, self.version, tuple(chosen), self.families, self.sha256)


def load_pack(spec: str) -> Pack:
    """A built-in pack by name (``default``) or a pack file (``.json``, ``.yaml``/``.yml``)."""
    if spec in BUILTIN_PACKS:
        data = resources.files("modelshield.probe").joinpath("packs", f"{spec}.json").read_bytes()
        return parse_pack(data, f"pack {spec}", yaml=False)
    path = Path(spec)
    if not path.is_file():
        raise PackError(
            f"probe pack {spec!r}: no such built-in pack or file",
            hint=f"use one of {', '.join(BUILTIN_PACKS)} or a .json/.yaml pack file",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackError(f"cannot read probe pack {path}: {exc.strerror}", hint="check the path") from None
    return parse_pack(data, str(path), yaml=path.suffix.lower() in {".yaml", ".yml"})


def parse_pack(data: bytes, origin: str, *, yaml: bool) -> Pack:
    """Parse and validate pack bytes; PackError names the probe and field that is wrong."""
    if yaml:
        import yaml as _yaml

        errors: tuple[type[Exception], ...] = (_yaml.YAMLError, UnicodeDecodeError)
    else:
        errors = (ValueError,)
    try:
        raw = _yaml.safe_load(data) if yaml else json.loads(data)
    except errors as exc:
        raise PackError(f"{origin}: not valid {'YAML' if yaml else 'JSON'} ({exc})", hint="fix the file") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("probes"), list):
        raise PackError(f"{origin}: expected an object with a 'probes' list", hint="see docs/probe.md")
    probes = tuple(_probe(item, origin, i) for i, item in enumerate(raw["probes"]))
    if not probes:
        raise PackError(f"{origin}: the pack has no probes", hint="add at least one probe")
    ids = [p.id for p in probes]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise PackError(f"{origin}: probe id {duplicate!r} is repeated", hint="probe ids must be unique")
    families = raw.get("families") or {}
    if not isinstance(families, dict):
        raise PackError(f"{origin}: 'families' must be an object", hint="see docs/probe.md")
    return Pack(
        str(raw.get("name") or origin),
        str(raw.get("version") or "0"),
        probes,
        {str(k): {str(a): str(b) for a, b in (v or {}).items()} for k, v in families.items()},
        hashlib.sha256(data).hexdigest(),
    )


def _probe(item: Any, origin: str, index: int) -> Probe:
    where = f"{origin}: probes[{index}]"
    if not isinstance(item, dict):
        raise PackError(f"{where}: expected an object", hint="see docs/probe.md")
    for key in ("id", "family", "user", "detector"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise PackError(f"{where}: missing text field {key!r}", hint="every probe needs id, family, user, detector")
    where = f"{origin}: probe {item['id']}"
    if item["detector"] not in DETECTORS:
        raise PackError(f"{where}: unknown detector {item['detector']!r}", hint=f"use one of {', '.join(DETECTORS)}")
    encode = str(item.get("encode") or "plain")
    if encode not in ENCODINGS:
        raise PackError(f"{where}: unknown encoding {encode!r}", hint=f"use one of {', '.join(ENCODINGS)}")
    patterns = tuple(str(p) for p in item.get("patterns") or ())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PackError(f"{where}: bad pattern {pattern!r} ({exc})", hint="fix the regular expression") from None
    if item["detector"] == "comply" and not patterns:
        raise PackError(f"{where}: the comply detector needs 'patterns'", hint="list what a compliant answer contains")
    if item["detector"] == "boundary" and "{canary}" not in str(item.get("plant") or ""):
        raise PackError(f"{where}: the boundary detector needs a 'plant' with {{canary}}", hint="see docs/probe.md")
    shots = item.get("shots") or 0
    if not isinstance(shots, int) or not 0 <= shots <= 64:
        raise PackError(f"{where}: 'shots' must be an integer 0..64", hint="many-shot probes use up to 64 shots")
    return Probe(
        id=item["id"],
        family=item["family"],
        user=item["user"],
        detector=item["detector"],
        system=str(item.get("system") or ""),
        document=str(item.get("document") or ""),
        payload=str(item.get("payload") or ""),
        encode=encode,
        plant=str(item.get("plant") or ""),
        shots=shots,
        patterns=patterns,
        title=str(item.get("title") or ""),
    )
