"""Scan results as JSON: what a Ray task returns and what the verdict cache stores.

A result is the list of artifacts of one top-level file (the file, then its members), with their
findings and the facts the vulnerability stage reads. It is plain JSON, never a pickle: the
driver reads what workers (which parse hostile bytes) and the database hand it as data only.
Paths are stored as written at scan time; :func:`relocate` moves a result to another file with
the same bytes (a cache hit, or the same shard listed twice).
"""

from __future__ import annotations

import json
from typing import Any

from modelshield._record import replace
from modelshield.types import Artifact, Category, Finding, Location, Severity

#: Bumped when the JSON layout changes (part of the cache key through the engine version).
CODEC_VERSION = 1


def _location(data: dict[str, Any]) -> Location:
    return Location(data["path"], data.get("member"), data.get("offset"), data.get("opcode_index"), data.get("detail"))


def finding_from_dict(data: dict[str, Any]) -> Finding:
    """Inverse of :meth:`Finding.to_dict`."""
    return Finding(
        str(data["rule_id"]),
        Severity.parse(str(data["severity"])),
        Category(str(data["category"])),
        str(data["message"]),
        _location(data["location"]),
        str(data.get("evidence", "")),
        tuple(str(r) for r in data.get("references", ())),
        str(data.get("remediation", "")),
        str(data.get("source", "static")),
    )


def _facts_to_dict(facts: Any) -> dict[str, Any]:
    out: dict[str, Any] = facts.to_dict()
    out["error"] = facts.error
    return out


def _facts_from_dict(data: dict[str, Any]) -> Any:
    from modelshield.advisories.requirements import ModelFacts, Need  # cached after the first call

    needs = [
        Need(str(n["package"]), n.get("version"), str(n["how"]), str(n.get("evidence", "")), str(n.get("spec", "")))
        for n in data.get("needs") or ()
    ]
    raw = data.get("details")
    details = {str(k): str(v) for k, v in raw.items()} if raw else {}
    patterns = data.get("patterns")
    return ModelFacts(
        str(data["path"]),
        str(data["kind"]),
        needs,
        set(patterns) if patterns else set(),
        details,
        str(data.get("error") or ""),
    )


def artifacts_to_data(artifacts: list[Artifact]) -> list[dict[str, Any]]:
    """JSON-ready form of one file's artifacts (facts included, unlike the report's JSON)."""
    out = []
    for artifact in artifacts:
        out.append(
            {
                "path": artifact.path,
                "member": artifact.member,
                "format": artifact.format,
                "size": artifact.size,
                "sha256": artifact.sha256,
                "findings": [f.to_dict() for f in artifact.findings],
                "facts": None if artifact.facts is None else [_facts_to_dict(f) for f in artifact.facts],
            }
        )
    return out


def artifacts_from_data(data: list[dict[str, Any]]) -> list[Artifact]:
    """Inverse of :func:`artifacts_to_data`; ValueError/KeyError/TypeError when malformed."""
    out = []
    for item in data:
        facts = item.get("facts")
        out.append(
            Artifact(
                str(item["path"]),
                item.get("member"),
                str(item["format"]),
                int(item["size"]),
                item.get("sha256"),
                tuple(finding_from_dict(f) for f in item.get("findings", ())),
                None if facts is None else tuple(_facts_from_dict(f) for f in facts),
            )
        )
    return out


def dumps(artifacts: list[Artifact]) -> str:
    """One file's artifacts as compact JSON text."""
    return json.dumps(artifacts_to_data(artifacts), separators=(",", ":"), sort_keys=True)


def loads(text: str) -> list[Artifact]:
    """Inverse of :func:`dumps`."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("a stored result must be a JSON list of artifacts")
    return artifacts_from_data(data)


def _moved(text: str, old: str, new: str) -> str:
    return text.replace(old, new) if old and old in text else text


def relocate(artifacts: list[Artifact], new_path: str, sha256: str | None = None) -> list[Artifact]:
    """The same result for a file at ``new_path`` with the same bytes (paths in texts moved too)."""
    if not artifacts:
        return artifacts
    old = artifacts[0].path
    if old == new_path:
        return artifacts if sha256 is None else [replace(artifacts[0], sha256=sha256), *artifacts[1:]]
    out = []
    for index, artifact in enumerate(artifacts):
        findings = tuple(
            replace(
                f,
                message=_moved(f.message, old, new_path),
                evidence=_moved(f.evidence, old, new_path),
                location=replace(f.location, path=new_path) if f.location.path == old else f.location,
            )
            for f in artifact.findings
        )
        facts = artifact.facts
        if facts is not None:
            facts = tuple(
                _facts_from_dict({**_facts_to_dict(f), "path": new_path}) if f.path == old else f for f in facts
            )
        digest = sha256 if index == 0 and sha256 is not None else artifact.sha256
        out.append(replace(artifact, path=new_path, findings=findings, facts=facts, sha256=digest))
    return out
