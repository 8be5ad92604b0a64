"""The policy file: a pydantic model of the YAML, its JSON Schema, and a loader that names lines.

A malformed policy raises :class:`PolicyError` naming the file, the line and the field; a policy
is either read completely or not at all (the scan never runs with half a policy).
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelshield.errors import ModelShieldError

SeverityName = Literal["info", "low", "medium", "high", "critical"]
SCHEMA_ID = "https://modelshield.dev/schemas/policy-1.json"


class PolicyError(ModelShieldError):
    """A policy file is malformed or names something unknown."""

    def __init__(self, file: str, line: int | None, field: str, problem: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(
            f"{where}: {field or '(top level)'}: {problem}",
            hint="fix the policy file (schema: `modelshield policy show --schema`); the scan did not run",
        )
        self.file = file
        self.line = line
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteCode(_Strict):
    """How shipped Python code (``auto_map``, ``*.py``) is treated."""

    allow: bool = Field(False, description="Allow remote code at all.")
    pinned_sha256: list[str] = Field(
        default_factory=list, description="If set, remote code is allowed only when every code file has one of these."
    )


class CveRule(_Strict):
    """CVE handling: the highest vulnerability severity tolerated."""

    max_severity: SeverityName = "medium"


class SignatureRule(_Strict):
    """A valid signature by one of the trusted keys (fingerprints or identities) is required."""

    trusted_keys: list[str] = Field(default_factory=list)


class AttestationRule(_Strict):
    """A scan attestation is required, no older than ``max_age_days``."""

    max_age_days: int = Field(30, ge=0)


class RuleSpec(_Strict):
    """One policy rule: exactly one of the fields is set (``all_of``/``any_of`` compose rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"minProperties": 1, "maxProperties": 1})

    max_severity: SeverityName | None = Field(None, description="Highest finding severity allowed.")
    allowed_formats: list[str] | None = Field(None, description="Every file's format must match one (glob).")
    denied_formats: list[str] | None = Field(None, description="No file may have a matching format (glob).")
    cve: CveRule | None = None
    remote_code: RemoteCode | None = None
    signature_required: SignatureRule | None = None
    attestation_required: AttestationRule | None = None
    allowed_publishers: list[str] | None = Field(None, description="Publisher (org) must match one (glob).")
    allowed_licenses: list[str] | None = Field(None, description="Licence id must be one of these.")
    dynamic_scan_required: bool | None = None
    coverage_complete: bool | None = Field(None, description="No coverage gaps allowed.")
    all_of: list[RuleSpec] | None = None
    any_of: list[RuleSpec] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RuleSpec:
        set_fields = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_fields) != 1:
            raise ValueError(f"a rule has exactly one kind, got {set_fields or 'none'}")
        return self

    @property
    def kind(self) -> str:
        """The rule kind (the one field that is set)."""
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


class Condition(_Strict):
    """Facts a model must show for a profile-selection rule to apply (all given ones must hold)."""

    executes_code_at_load: bool | None = None
    remote_code: bool | None = None
    pickle: bool | None = None
    chat_template: bool | None = None
    size_over: str | None = Field(None, description="e.g. '2GB', '500MB'.")
    publisher_in: list[str] | None = None
    license_in: list[str] | None = None
    format_in: list[str] | None = None
    any_of: list[Condition] | None = None

    @field_validator("size_over")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_size(value)
        return value


class Selection(_Strict):
    """A profile-selection rule: the first whose ``when`` holds picks the profile."""

    profile: str
    when: Condition


class Profile(_Strict):
    """A risk profile: its rules all have to pass for the model to be allowed."""

    description: str = ""
    rules: list[RuleSpec] = Field(default_factory=list)


class Waiver(_Strict):
    """A finding (rule id or advisory id) or policy rule waived for matching models until ``expires``."""

    rule: str = Field(description="Finding rule id, advisory id (CVE-/GHSA-/PYSEC-), or policy rule id.")
    model: str = Field("*", description="Glob on the scanned paths, or sha256:<digest> of a file.")
    owner: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: _dt.date


class PolicyFile(_Strict):
    """The policy YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"$id": SCHEMA_ID})

    version: Literal[1] = 1
    default_profile: str = "internal"
    profile_selection: list[Selection] = Field(default_factory=list)
    profiles: dict[str, Profile] = Field(default_factory=dict)
    waivers: list[Waiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_profiles(self) -> PolicyFile:
        names = set(self.profiles)
        if self.default_profile not in names:
            raise ValueError(f"default_profile {self.default_profile!r} is not one of the profiles {sorted(names)}")
        for i, sel in enumerate(self.profile_selection):
            if sel.profile not in names:
                raise ValueError(f"profile_selection[{i}].profile {sel.profile!r} is not a defined profile")
        return self


def parse_size(text: str) -> int:
    """'2GB' / '500 MiB' / '1024' -> bytes; ValueError when unreadable."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", text.lower())
    if not match:
        raise ValueError(f"cannot read size {text!r} (use e.g. 500MB, 2GB)")
    unit = (match.group(2) or "").rstrip("b").rstrip("i")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    return int(float(match.group(1)) * factor)


def schema() -> dict[str, Any]:
    """The JSON Schema of the policy file."""
    data = PolicyFile.model_json_schema()
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["title"] = "modelshield policy"
    return data


# --------------------------------------------------------------------------------------------- loading


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_policy_text(text: str, file: str) -> PolicyFile:
    """Parse and validate policy YAML; PolicyError with file, line and field on any problem."""
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (libyaml's when built)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(file, mark.line + 1 if mark else None, "", f"not valid YAML: {problem}") from None
    if data is None:
        raise PolicyError(file, 1, "", "the policy file is empty")
    if not isinstance(data, dict):
        raise PolicyError(file, 1, "", "expected a mapping at the top level")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = _dotted(loc)
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # only now: the line of the field at fault
        raise PolicyError(file, _line(root, loc), field, err["msg"]) from None


def load_policy(path: Path) -> PolicyFile:
    """Read a policy file from disk (all or nothing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), None, "", f"cannot read the policy file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyError(str(path), None, "", "the policy file is not UTF-8 text") from None
    return load_policy_text(text, str(path))


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in {"function-after[_one_kind(), RuleSpec]"}:
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest YAML node on the error's path (1-based)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    best = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            best = child.start_mark.line + 1
        if child is None:
            continue
        node = child
    return best
