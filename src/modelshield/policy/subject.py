"""What the policy judges: the facts a scan learned about a model (its behaviour and provenance)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modelshield.advisories.requirements import ModelFacts
from modelshield.types import Category, ScanReport

PICKLE_KINDS = frozenset({"pickle", "torch-zip", "torchscript", "joblib"})
MAX_CARD = 256 * 1024
MAX_CODE_FILE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Attestation:
    """What the attestation stage verified: signer identities and the attestation's age."""

    signed_by: tuple[str, ...] = ()
    age_days: float | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """The model as the policy sees it."""

    report: ScanReport
    formats: frozenset[str]
    pickle: bool
    executes_code_at_load: bool
    remote_code: bool
    code_files: tuple[tuple[str, str], ...]
    chat_template: bool
    size_bytes: int
    publisher: str | None = None
    license: str | None = None
    attestation: Attestation | None = None
    dynamic_scanned: bool = False
    paths: tuple[str, ...] = field(default=())
    digests: frozenset[str] = field(default=frozenset())

    def to_dict(self) -> dict[str, object]:
        """JSON form (for the decision in the report)."""
        return {
            "formats": sorted(self.formats),
            "pickle": self.pickle,
            "executes_code_at_load": self.executes_code_at_load,
            "remote_code": self.remote_code,
            "chat_template": self.chat_template,
            "size_bytes": self.size_bytes,
            "publisher": self.publisher,
            "license": self.license,
        }


def build_subject(
    report: ScanReport,
    facts: tuple[ModelFacts, ...] | list[ModelFacts] = (),
    attestation: Attestation | None = None,
    dynamic_scanned: bool = False,
) -> Subject:
    """Derive the policy facts from a report and the extracted model facts."""
    patterns = {p for f in facts for p in f.patterns}
    kinds = {f.kind for f in facts}
    formats = {a.format for a in report.artifacts} | kinds
    pickle = bool(PICKLE_KINDS & formats) or "pickle" in patterns or any(f.startswith("pickle") for f in formats)
    top = [a for a in report.artifacts if a.member is None]
    code = tuple((a.path, _sha256(a.path)) for a in top if a.path.endswith(".py"))
    remote = "remote-code" in patterns or bool(code)
    malicious = any(f.category is Category.MALICIOUS_CODE for f in report.findings)
    return Subject(
        report=report,
        formats=frozenset(formats),
        pickle=pickle,
        executes_code_at_load=pickle or remote or malicious or "keras-lambda" in patterns,
        remote_code=remote,
        code_files=code,
        chat_template=bool({"chat-template", "gguf-chat-template"} & patterns),
        size_bytes=sum(max(a.size, 0) for a in top),
        publisher=_publisher(report),
        license=_license(top_paths := [a.path for a in top]),
        attestation=attestation,
        dynamic_scanned=dynamic_scanned,
        paths=(*report.targets, *top_paths),
        digests=frozenset(a.sha256 for a in report.artifacts if a.sha256),
    )


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            return hashlib.sha256(stream.read(MAX_CODE_FILE)).hexdigest()
    except OSError:
        return ""


_HF_CACHE = re.compile(r"models--([^/\\]+?)--")


def _publisher(report: ScanReport) -> str | None:
    """The publishing organisation, from a Hugging Face cache path (``models--org--name``)."""
    for path in (*report.targets, *(a.path for a in report.artifacts)):
        match = _HF_CACHE.search(path)
        if match:
            return match.group(1)
    return None


def _license(paths: list[str]) -> str | None:
    """The ``license:`` of a model card's YAML front matter (README.md), if any."""
    for path in paths:
        if Path(path).name.lower() != "readme.md":
            continue
        try:
            text = Path(path).read_bytes()[:MAX_CARD].decode("utf-8", "replace")
        except OSError:
            continue
        match = re.match(r"---\s*\n(.*?)\n---", text, re.DOTALL)
        if not match:
            continue
        try:
            front = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            continue
        if isinstance(front, dict) and isinstance(front.get("license"), str):
            return str(front["license"])
    return None
