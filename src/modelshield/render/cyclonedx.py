"""CycloneDX 1.6 ML-BOM of a scan (JSON), built with cyclonedx-python-lib (the ``report`` extra).

What goes where:

* **components**: one per top-level file scanned. A file whose content is a model (pickle, PyTorch,
  safetensors, GGUF, ONNX, Keras, TensorFlow, Core ML, archives ...) is a ``machine-learning-model``
  component; a file of a data-only format (JSON, YAML, text, Python source, LFS pointer, unknown
  content) is a ``file`` component. Each carries its SHA-256 (``hashes``), and as ``properties``
  (namespace ``modelshield:``) its detected format, size, path, verdict and one
  ``modelshield:finding`` per finding (``RULE-ID severity: message``).
* **archive members** (the pickle inside a PyTorch zip, the files of a tar ...) are nested
  sub-components of type ``file`` under their top-level component, with the same properties.
* **vulnerabilities**: one per finding that is not a coverage gap. A finding that references a
  CVE (from the advisory data: ``VULN-*`` findings, or a static detection naming a CVE) has the CVE
  as its id (source NVD) and its other advisory ids (GHSA, PYSEC, OSV) as references; any other
  finding has its rule id as its id (source modelshield). Each has a rating with the finding's
  severity, the message as description, evidence as detail, the remediation as recommendation and
  ``affects`` pointing at its component. Coverage gaps stay properties
  (``modelshield:coverage-gap``), since they say what was not analysed rather than what is wrong.
* **metadata**: the tool (modelshield, with its rules version), the scan time, and the overall
  verdict, threshold, advisory snapshot and coverage as properties.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelshield.errors import ModelShieldError
from modelshield.types import Artifact, Category, Finding, ScanReport, decide

if TYPE_CHECKING:
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component
    from cyclonedx.model.vulnerability import Vulnerability

#: Formats whose files are data or code beside a model, not a model: ``file`` components.
DATA_FORMATS = frozenset(
    {
        "json",
        "yaml",
        "text",
        "python-source",
        "git-lfs-pointer",
        "safetensors-index",
        "tf-fingerprint",
        "eicar",
        "executable",
        "unknown",
        "empty",
        "unscanned",
    }
)
NAMESPACE = "modelshield"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_CWE = re.compile(r"^CWE-(\d+)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NVD = "https://nvd.nist.gov/vuln/detail/"
_SOURCES = {
    "GHSA": ("GitHub Advisory Database", "https://github.com/advisories/"),
    "PYSEC": ("PyPA Advisory Database", "https://osv.dev/vulnerability/"),
}


class ReportExtraMissing(ModelShieldError):
    """The ``report`` extra (cyclonedx-python-lib or jinja2) is not installed."""


def render_cyclonedx(report: ScanReport) -> str:
    """The report as a CycloneDX 1.6 JSON ML-BOM."""
    try:
        from cyclonedx.output import make_outputter
        from cyclonedx.schema import OutputFormat, SchemaVersion
    except ImportError:
        raise ReportExtraMissing(
            "--format cyclonedx needs cyclonedx-python-lib", hint="pip install 'modelshield[report]'"
        ) from None
    bom = build_bom(report)
    _skip_quadratic_validation(bom)
    text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    return text + "\n"


def _skip_quadratic_validation(bom: Bom) -> None:
    """Register every component's (empty) dependency entry in one pass and skip ``Bom.validate``.

    The outputter calls the library's (deprecated) ``Bom.validate``, which registers each component's
    dependency entry with a linear search over the entries so far: quadratic, 25 s of a 5,000-file
    BOM. It adds exactly these entries and then checks that every dependency names a component of
    the BOM, which holds by construction here (no component depends on another). The schema
    validation in the tests checks the result.
    """
    from cyclonedx.model.dependency import Dependency

    bom.dependencies = [Dependency(ref=component.bom_ref) for component in bom.components]
    bom.validate = _already_valid  # type: ignore[method-assign]


def _already_valid() -> bool:
    return True


def build_bom(report: ScanReport) -> Bom:
    """The :class:`cyclonedx.model.bom.Bom` of ``report`` (see the module docstring for the mapping)."""
    from cyclonedx.model.bom import Bom, BomMetaData

    by_file: dict[str, list[Artifact]] = {}
    for artifact in report.artifacts:
        by_file.setdefault(artifact.path, []).append(artifact)
    components: list[Component] = []
    vulnerabilities: list[Vulnerability] = []
    for index, artifacts in enumerate(by_file.values()):
        top = next((a for a in artifacts if a.member is None), artifacts[0])
        component = _component(top, report, f"component-{index}", kind=_kind(top))
        if top.member is None:
            # the file's verdict covers its members: a clean zip holding a malicious pickle fails
            verdict = decide([f for a in artifacts for f in a.findings], report.fail_on).value
            component.properties.add(_prop("verdict", verdict))
        vulnerabilities.extend(_vulnerabilities(top, component))
        for sub_index, member in enumerate(a for a in artifacts if a is not top):
            child = _component(member, report, f"component-{index}-member-{sub_index}", kind="file")
            child.properties.add(_prop("verdict", member.verdict(report.fail_on).value))
            component.components.add(child)
            vulnerabilities.extend(_vulnerabilities(member, child))
        components.append(component)
    metadata = BomMetaData(
        tools=_tools(report),
        timestamp=_timestamp(report.started_at),
        properties=_report_properties(report),
    )
    return Bom(components=components, metadata=metadata, vulnerabilities=vulnerabilities)


def bom_subjects(bom_json: str | bytes) -> list[tuple[str, str]]:
    """(path, sha256) of every top-level component of a BOM that has a SHA-256.

    The path is the component's ``modelshield:path`` property (the file as scanned), else its name.
    BomError when the components are not what CycloneDX says they are.
    """
    data = json.loads(bom_json)
    out: list[tuple[str, str]] = []
    try:
        for component in data.get("components") or []:
            hashes = [h["content"] for h in component.get("hashes") or [] if h.get("alg") == "SHA-256"]
            paths = [p["value"] for p in component.get("properties") or [] if p.get("name") == f"{NAMESPACE}:path"]
            path = paths[0] if paths else component.get("name")
            if not hashes or not path:
                continue
            if not isinstance(hashes[0], str) or not _HEX64.match(hashes[0]) or not isinstance(path, str):
                raise BomError(f"component {path!r} has a malformed SHA-256 or path", hint="write the BOM again")
            out.append((path, hashes[0]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise BomError(f"malformed components ({type(exc).__name__}: {exc})", hint="write the BOM again") from None
    return out


def display_name(path: str, targets: tuple[str, ...]) -> str:
    """``path`` relative to the folder target holding it, else its file name."""
    for target in targets:
        folder = target.rstrip("/") + "/"
        if path.startswith(folder) and len(path) > len(folder):
            return path[len(folder) :]
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def _kind(artifact: Artifact) -> str:
    return "file" if artifact.format in DATA_FORMATS else "machine-learning-model"


def _component(artifact: Artifact, report: ScanReport, ref: str, kind: str) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType

    name = artifact.member if artifact.member is not None else display_name(artifact.path, report.targets)
    properties = [
        _prop("format", artifact.format),
        _prop("size", str(artifact.size)),
        _prop("path", artifact.path),
    ]
    if artifact.member is not None:
        properties.append(_prop("member", artifact.member))
    for finding in sorted(artifact.findings, key=lambda f: (-f.severity, f.rule_id)):
        if finding.category is Category.COVERAGE:
            properties.append(_prop("coverage-gap", f"{finding.rule_id}: {finding.message}"))
        else:
            properties.append(_prop("finding", f"{finding.rule_id} {finding.severity.label}: {finding.message}"))
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=artifact.sha256)] if artifact.sha256 else []
    component_type = ComponentType.MACHINE_LEARNING_MODEL if kind != "file" else ComponentType.FILE
    return Component(
        type=component_type,
        name=name or artifact.path,
        bom_ref=ref,
        hashes=hashes,
        properties=properties,
        mime_type=None,
    )


def _vulnerabilities(artifact: Artifact, component: Component) -> list[Vulnerability]:
    return [
        _vulnerability(finding, component, index)
        for index, finding in enumerate(artifact.findings)
        if finding.category is not Category.COVERAGE
    ]


def _vulnerability(finding: Finding, component: Component, index: int) -> Vulnerability:
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    cves = [r for r in finding.references if _CVE.match(r)]
    modelshield = VulnerabilitySource(name="modelshield")
    if cves:
        vuln_id, source = cves[0], VulnerabilitySource(name="NVD", url=_url(_NVD + cves[0]))
    else:
        vuln_id, source = finding.rule_id, modelshield
    cwes = [int(m.group(1)) for m in map(_CWE.match, finding.references) if m]
    references = [
        VulnerabilityReference(id=ref, source=_reference_source(ref))
        for ref in finding.references
        if ref != vuln_id and not _CWE.match(ref)
    ]
    properties = [_prop("rule-id", finding.rule_id), _prop("category", finding.category.value)]
    properties.append(_prop("location", finding.location.display()))
    if finding.source != "static":
        properties.append(_prop("source", finding.source))
    rating = VulnerabilityRating(
        source=modelshield,
        severity=VulnerabilitySeverity(finding.severity.label),
        method=VulnerabilityScoreSource.OTHER,
        justification=f"modelshield rule {finding.rule_id}",
    )
    ref = component.bom_ref.value or ""
    return Vulnerability(
        bom_ref=f"{ref}-finding-{index}",
        id=vuln_id,
        source=source,
        references=references,
        ratings=[rating],
        cwes=cwes,
        description=finding.message,
        detail=finding.evidence or None,
        recommendation=finding.remediation or None,
        affects=[BomTarget(ref=ref)],
        properties=properties,
    )


def _reference_source(ref: str) -> Any:
    from cyclonedx.model.vulnerability import VulnerabilitySource

    if _CVE.match(ref):
        return VulnerabilitySource(name="NVD", url=_url(_NVD + ref))
    prefix = ref.split("-", 1)[0]
    if prefix in _SOURCES:
        name, base = _SOURCES[prefix]
        return VulnerabilitySource(name=name, url=_url(base + ref))
    return VulnerabilitySource(name="OSV", url=_url("https://osv.dev/vulnerability/" + ref))


def _url(text: str) -> Any:
    from cyclonedx.model import XsUri

    return XsUri(text)


def _prop(name: str, value: str) -> Any:
    from cyclonedx.model import Property

    return Property(name=f"{NAMESPACE}:{name}", value=value)


def _tools(report: ScanReport) -> Any:
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository

    tool = Component(
        type=ComponentType.APPLICATION,
        name="modelshield",
        version=report.tool_version,
        properties=[_prop("rules-version", report.rules_version)],
    )
    return ToolRepository(components=[tool])


def _report_properties(report: ScanReport) -> list[Any]:
    gaps = report.coverage_gaps
    properties = [
        _prop("verdict", report.verdict.value),
        _prop("fail-on", report.fail_on.label),
        _prop("coverage-complete", "true" if not gaps else "false"),
        _prop("files-scanned", str(report.files_scanned)),
    ]
    properties.extend(_prop("target", target) for target in report.targets)
    if report.advisory_snapshot:
        properties.append(_prop("advisory-snapshot", report.advisory_snapshot))
    if report.policy is not None:
        properties.append(_prop("policy-decision", str(report.policy.get("decision"))))
        properties.append(_prop("policy-profile", str(report.policy.get("profile"))))
    return properties


def _timestamp(text: str) -> _dt.datetime | None:
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_dt.UTC)


# ----------------------------------------------------------------------------- signing the BOM

#: The in-toto predicate type for a CycloneDX BOM (what ``cosign attest --type cyclonedx`` writes).
BOM_PREDICATE_TYPE = "https://cyclonedx.org/bom"
#: Where ``sign-bom`` writes the envelope of ``BOM``: ``BOM`` + this suffix.
ENVELOPE_SUFFIX = ".dsse.json"


class BomError(ModelShieldError):
    """A BOM or a BOM envelope is missing, malformed or not what it claims."""


def _load_bom(data: bytes, origin: str) -> dict[str, Any]:
    try:
        bom = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BomError(f"{origin}: not JSON ({exc})", hint="pass the file written by scan -f cyclonedx") from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise BomError(f"{origin}: not a CycloneDX JSON BOM (no bomFormat CycloneDX)", hint="scan with -f cyclonedx")
    return bom


def bom_statement(bom_json: bytes, origin: str = "BOM") -> dict[str, Any]:
    """An in-toto Statement v1 over a BOM: subjects = its components' SHA-256, predicate = the BOM."""
    from modelshield.attest.intoto import STATEMENT_TYPE

    bom = _load_bom(bom_json, origin)
    try:
        subjects = bom_subjects(bom_json)
    except BomError as exc:
        raise BomError(f"{origin}: {exc.message}", hint=exc.hint) from None
    if not subjects:
        raise BomError(
            f"{origin}: no component has a SHA-256, so the signature could not bind the model's bytes",
            hint="write the BOM with modelshield scan MODEL -f cyclonedx (it hashes every file)",
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": BOM_PREDICATE_TYPE,
        "predicate": bom,
    }


def sign_bom(bom_json: bytes, signer: Any, origin: str = "BOM") -> str:
    """The DSSE envelope (JSON) of :func:`bom_statement`, signed like the scan attestation."""
    import modelshield.attest.dsse as dsse
    from modelshield.attest.intoto import encode

    payload = encode(bom_statement(bom_json, origin))
    return dsse.sign(payload, dsse.INTOTO_PAYLOAD_TYPE, signer).to_json()


@dataclass(frozen=True, slots=True)
class BomVerification:
    """Outcome of :func:`verify_bom`: ``outcome`` is VERIFIED, TAMPERED or UNTRUSTED-SIGNER."""

    outcome: str
    reasons: tuple[str, ...]
    signer: str | None
    keyid: str | None
    subjects: tuple[tuple[str, str], ...]

    @property
    def exit_code(self) -> int:
        """0 VERIFIED, 10 TAMPERED, 13 UNTRUSTED-SIGNER (the codes of ``modelshield verify``)."""
        return {"VERIFIED": 0, "TAMPERED": 10, "UNTRUSTED-SIGNER": 13}[self.outcome]

    def message(self) -> str:
        """One line per reason under the outcome."""
        head = f"{self.outcome}: BOM envelope"
        if self.outcome == "VERIFIED":
            head += f" (signed by {self.signer or self.keyid}, {len(self.subjects)} subject(s))"
        return "\n".join([head, *(f"  - {r}" for r in self.reasons)])


def verify_bom(
    envelope_json: bytes,
    trust: Any,
    *,
    bom_json: bytes | None = None,
    check_files: bool = False,
    origin: str = "envelope",
) -> BomVerification:
    """Check a BOM envelope: a trusted signature, an in-toto CycloneDX statement, and optionally that
    ``bom_json`` is the signed BOM and that the subject files (paths as scanned) still have their digests.
    """
    import modelshield.attest.dsse as dsse
    from modelshield.attest.intoto import STATEMENT_TYPE

    envelope = dsse.parse(envelope_json, origin)
    verifier = dsse.verify(envelope, trust)
    keyids = sorted({s.keyid for s in envelope.signatures})
    if verifier is None:
        known = [trust.name_of(k) for k in keyids if trust.name_of(k)]
        if known:
            reason = f"names trusted key {known[0]!r} but its signature does not match: altered after signing"
            return BomVerification("TAMPERED", (reason,), None, keyids[0] if keyids else None, ())
        reason = f"signed by key {', '.join(keyids) or '(no key id)'}, which is not in the trust store"
        return BomVerification("UNTRUSTED-SIGNER", (reason,), None, keyids[0] if keyids else None, ())
    signer, keyid = trust.name_of(verifier.keyid), verifier.keyid

    def tampered(*reasons: str, subjects: tuple[tuple[str, str], ...] = ()) -> BomVerification:
        return BomVerification("TAMPERED", reasons, signer, keyid, subjects)

    try:
        statement = json.loads(envelope.payload)
        ok = (
            envelope.payload_type == dsse.INTOTO_PAYLOAD_TYPE
            and statement.get("_type") == STATEMENT_TYPE
            and statement.get("predicateType") == BOM_PREDICATE_TYPE
        )
        subjects = tuple((str(s["name"]), str(s["digest"]["sha256"])) for s in statement["subject"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        ok, subjects = False, ()
    if not ok:
        return tampered(f"the signed payload is not an in-toto statement over a CycloneDX BOM ({BOM_PREDICATE_TYPE})")
    if bom_json is not None and _load_bom(bom_json, "BOM") != statement.get("predicate"):
        return tampered("the BOM file differs from the BOM that was signed", subjects=subjects)
    if check_files:
        problems = _file_problems(subjects)
        if problems:
            return tampered(*problems, subjects=subjects)
    return BomVerification("VERIFIED", (), signer, keyid, subjects)


def _file_problems(subjects: tuple[tuple[str, str], ...]) -> list[str]:
    from modelshield.attest.manifest import hash_file

    problems = []
    for path, digest in subjects:
        try:
            _, actual = hash_file(path)
        except OSError as exc:
            problems.append(f"{path}: cannot read it ({exc.strerror})")
            continue
        if actual != digest:
            problems.append(
                f"{path}: changed since the BOM was signed (sha256 {actual[:16]}..., signed {digest[:16]}...)"
            )
    return problems
