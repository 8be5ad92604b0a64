"""Turn OSV records (JSON files, an OSV export zip) and curation YAML into advisories.

Every malformed input raises :class:`~modelshield.advisories.db.AdvisoryDataError` naming the
file, line and field; nothing is half-imported.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from modelshield.advisories.db import Advisory, AdvisoryDataError, AdvisoryDB, Interval, normalise

#: Packages tracked by the shipped data (loaders, converters, scanners and servers of models).
TRACKED_PACKAGES = frozenset(
    normalise(p)
    for p in (
        "torch",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "tf-keras",
        "transformers",
        "huggingface-hub",
        "safetensors",
        "onnx",
        "onnxruntime",
        "llama-cpp-python",
        "gguf",
        "joblib",
        "numpy",
        "scikit-learn",
        "skops",
        "mlflow",
        "bentoml",
        "pytorch-lightning",
        "lightning",
        "diffusers",
        "vllm",
        "sentence-transformers",
        "accelerate",
        "paddlepaddle",
        "nemo-toolkit",
        "h5py",
        "dill",
        "jinja2",
        "pillow",
        "gradio",
        "ray",
        "picklescan",
        "modelscan",
        "fickling",
        "modelaudit",
        "timm",
        "peft",
        "optimum",
        "tensorrt",
        "triton",
        "llama-stack",
        "torchserve",
        "executorch",
        "modelscope",
    )
)

_RELEVANT_WORDS = re.compile(
    r"pickle|unpickl|deserializ|load_model|torch\.load|checkpoint|model file|crafted model|safe_mode|"
    r"chat.template|gguf|external.data|savedmodel|saved model|tflite|\.keras|\.h5|hdf5|trust_remote_code|"
    r"malicious model",
    re.IGNORECASE,
)
MAX_EXPORT_MEMBER = 4 * 1024 * 1024


def line_of(text: str, key: str) -> int | None:
    """1-based line of the first ``"key"`` in a JSON text (for error messages), or None."""
    pos = text.find(f'"{key}"')
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def intervals_from_events(events: object, file: str, field_path: str, text: str = "") -> tuple[Interval, ...]:
    """OSV ``events`` (introduced / fixed / last_affected, in order) to closed intervals."""
    if not isinstance(events, list):
        raise AdvisoryDataError(file, field_path, "expected a list of events", line_of(text, "events"))
    out: list[Interval] = []
    start: str | None = None
    for i, event in enumerate(events):
        if not isinstance(event, Mapping) or len(event) != 1:
            raise AdvisoryDataError(file, f"{field_path}[{i}]", "expected one of introduced/fixed/last_affected")
        ((kind, value),) = event.items()
        if kind == "introduced":
            if start is not None:
                out.append(Interval(start))
            start = str(value)
        elif kind in ("fixed", "last_affected", "limit"):
            lo = "0" if start is None else start
            out.append(Interval(lo, str(value), None) if kind != "last_affected" else Interval(lo, None, str(value)))
            start = None
        else:
            raise AdvisoryDataError(file, f"{field_path}[{i}]", f"unknown event {kind!r}", line_of(text, kind))
    if start is not None:
        out.append(Interval(start))
    return tuple(out)


def _record_url(record: Mapping[str, Any]) -> str:
    refs = record.get("references") or []
    for ref in refs:
        if (
            isinstance(ref, Mapping)
            and ref.get("type") == "ADVISORY"
            and "github.com/advisories" in str(ref.get("url"))
        ):
            return str(ref["url"])
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("url"):
            return str(ref["url"])
    return ""


def advisories_from_record(
    record: object, file: str, text: str = "", packages: frozenset[str] | None = None
) -> list[Advisory]:
    """The advisories (one per PyPI package) of one OSV record; [] for other ecosystems."""
    if not isinstance(record, Mapping):
        raise AdvisoryDataError(file, "", "expected a JSON object (one OSV record)", 1)
    rid = record.get("id")
    if not isinstance(rid, str) or not rid:
        raise AdvisoryDataError(file, "id", "missing or not a string", line_of(text, "id"))
    affected = record.get("affected", [])
    if not isinstance(affected, list):
        raise AdvisoryDataError(file, "affected", "expected a list", line_of(text, "affected"))
    extra = record.get("database_specific") or {}
    if not isinstance(extra, Mapping):
        raise AdvisoryDataError(file, "database_specific", "expected an object", line_of(text, "database_specific"))
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise AdvisoryDataError(file, "aliases", "expected a list of strings", line_of(text, "aliases"))
    out = []
    for n, entry in enumerate(affected):
        pkg = entry.get("package") if isinstance(entry, Mapping) else None
        if not isinstance(pkg, Mapping) or not isinstance(pkg.get("name"), str):
            raise AdvisoryDataError(file, f"affected[{n}].package.name", "missing", line_of(text, "package"))
        if pkg.get("ecosystem") != "PyPI":
            continue
        name = normalise(pkg["name"])
        if packages is not None and name not in packages:
            continue
        intervals: list[Interval] = []
        for r, rng in enumerate(entry.get("ranges") or []):
            if isinstance(rng, Mapping) and rng.get("type") == "ECOSYSTEM":
                intervals.extend(
                    intervals_from_events(rng.get("events"), file, f"affected[{n}].ranges[{r}].events", text)
                )
        summary = str(record.get("summary") or record.get("details") or "")[:300]
        out.append(
            Advisory(
                id=rid,
                package=name,
                aliases=tuple(aliases),
                summary=summary,
                intervals=tuple(intervals),
                relevant=bool(extra.get("model_loading_relevant", _keyword_relevant(record))),
                vector=str(extra.get("attack_vector", "other")),
                cwe=tuple(str(c) for c in extra.get("cwe", ()) or ()),
                verified=bool(extra.get("verified", bool(intervals))),
                withdrawn=bool(record.get("withdrawn")),
                url=_record_url(record),
            )
        )
    return out


def _keyword_relevant(record: Mapping[str, Any]) -> bool:
    text = f"{record.get('summary', '')} {record.get('details', '')}"
    return bool(_RELEVANT_WORDS.search(text))


def load_osv_dir(folder: Path, packages: frozenset[str] | None = None) -> list[Advisory]:
    """Every advisory of every ``*.json`` OSV record in ``folder``."""
    out: list[Advisory] = []
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AdvisoryDataError(str(path), "", f"not valid JSON: {exc.msg}", exc.lineno) from None
        out.extend(advisories_from_record(record, str(path), text, packages))
    return out


def record_modified(record: Mapping[str, Any]) -> str:
    """The ``modified`` date (YYYY-MM-DD) of a record, or "" when absent."""
    return str(record.get("modified") or "")[:10]


# ---------------------------------------------------------------------------------------------
# Curation YAML


@dataclass(frozen=True, slots=True)
class Curation:
    """Hand-set corrections for one advisory (keyed by CVE or record id)."""

    relevant: bool | None = None
    vector: str | None = None
    cwe: tuple[str, ...] | None = None
    summary: str | None = None
    intervals: tuple[Interval, ...] | None = None
    range_verified: bool | None = None


_CURATION_FIELDS = {"relevant", "vector", "cwe", "summary", "details", "ranges", "range_verified", "note", "extra_refs"}


def _compose_yaml(path: Path) -> yaml.Node | None:
    """The YAML node tree of ``path`` (keeps line marks); AdvisoryDataError naming the line if invalid."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise AdvisoryDataError(str(path), "", f"not valid YAML: {exc}", mark.line + 1 if mark else None) from None


def load_curation(path: Path) -> dict[str, Curation]:
    """Parse ``curated.yaml`` (a mapping id -> fields); errors name file, line and field."""
    root = _compose_yaml(path)
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise AdvisoryDataError(str(path), "", "expected a mapping of advisory id -> fields", root.start_mark.line + 1)
    out: dict[str, Curation] = {}
    for key_node, value_node in root.value:
        key = str(key_node.value)
        if not isinstance(value_node, yaml.MappingNode):
            raise AdvisoryDataError(str(path), key, "expected a mapping of fields", value_node.start_mark.line + 1)
        out[key] = _curation_entry(path, key, value_node)
    return out


def _curation_entry(path: Path, key: str, node: yaml.MappingNode) -> Curation:
    data = yaml.safe_load(yaml.serialize(node))
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    for name in data:
        if name not in _CURATION_FIELDS:
            raise AdvisoryDataError(str(path), f"{key}.{name}", "unknown field", lines.get(str(name)))
    if "relevant" in data and not isinstance(data["relevant"], bool):
        raise AdvisoryDataError(str(path), f"{key}.relevant", "expected true or false", lines.get("relevant"))
    if "cwe" in data and not (isinstance(data["cwe"], list) and all(isinstance(c, str) for c in data["cwe"])):
        raise AdvisoryDataError(str(path), f"{key}.cwe", "expected a list of CWE ids", lines.get("cwe"))
    intervals = None
    if "ranges" in data:
        intervals = intervals_from_events(data["ranges"], str(path), f"{key}.ranges")
        if lines.get("ranges") is None:  # pragma: no cover - the key exists when the field does
            raise AdvisoryDataError(str(path), f"{key}.ranges", "missing")
    return Curation(
        relevant=data.get("relevant"),
        vector=data.get("vector"),
        cwe=tuple(data["cwe"]) if "cwe" in data else None,
        summary=data.get("summary"),
        intervals=intervals,
        range_verified=data.get("range_verified"),
    )


def apply_curation(adv: Advisory, curation: Mapping[str, Curation]) -> Advisory:
    """Advisory with the curated fields of its id or any alias applied."""
    entry = next((curation[k] for k in (adv.id, *adv.aliases) if k in curation), None)
    if entry is None:
        return adv
    changes: dict[str, Any] = {}
    if entry.relevant is not None:
        changes["relevant"] = entry.relevant
    if entry.vector:
        changes["vector"] = entry.vector
    if entry.cwe is not None:
        changes["cwe"] = entry.cwe
    if entry.summary:
        changes["summary"] = entry.summary
    if entry.intervals is not None:
        changes["intervals"] = entry.intervals
        changes["verified"] = bool(entry.range_verified)
    return replace(adv, **changes)


def load_extra_records(path: Path, packages: frozenset[str] | None = None) -> list[Advisory]:
    """Compact OSV copies from ``extra.yaml`` / ``ghsa_extra.yaml`` (a YAML list of records)."""
    root = _compose_yaml(path)
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise AdvisoryDataError(str(path), "", "expected a list of OSV records", root.start_mark.line + 1)
    out: list[Advisory] = []
    for i, node in enumerate(root.value):
        record = yaml.safe_load(yaml.serialize(node))
        try:
            out.extend(advisories_from_record(record, str(path), "", packages))
        except AdvisoryDataError as exc:
            raise AdvisoryDataError(
                str(path), f"[{i}].{exc.field}", exc.message.rsplit(": ", 1)[-1], node.start_mark.line + 1
            ) from None
    return out


# ---------------------------------------------------------------------------------------------
# OSV export archive (PyPI/all.zip)


def iter_export(path: Path) -> Iterator[tuple[str, str]]:
    """(member name, text) of every JSON record in an OSV export zip; errors name the file."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise AdvisoryDataError(
            str(path), "", f"not a readable zip archive ({exc})", hint="pass the PyPI/all.zip OSV export"
        ) from None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            if info.file_size > MAX_EXPORT_MEMBER:
                raise AdvisoryDataError(f"{path}!/{info.filename}", "", f"record too large ({info.file_size} bytes)")
            try:
                yield info.filename, archive.read(info).decode("utf-8")
            except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
                raise AdvisoryDataError(f"{path}!/{info.filename}", "", f"unreadable member ({exc})") from None


def import_export(path: Path, base: AdvisoryDB, packages: frozenset[str] = TRACKED_PACKAGES) -> AdvisoryDB:
    """Build a new database from an OSV export zip, keeping the base's curated flags.

    Records for the same vulnerability (PYSEC and GHSA copies linked by aliases) are merged:
    the first seen PYSEC record wins. Withdrawn records are kept but flagged.
    """
    found: list[Advisory] = []
    latest = ""
    seen = 0
    for name, text in iter_export(path):
        seen += 1
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AdvisoryDataError(f"{path}!/{name}", "", f"not valid JSON: {exc.msg}", exc.lineno) from None
        advisories = advisories_from_record(record, f"{path}!/{name}", text, packages)
        if advisories:
            latest = max(latest, record_modified(record))
            found.extend(_carry_flags(a, base) for a in advisories)
    if seen == 0:
        raise AdvisoryDataError(
            str(path), "", "the archive holds no JSON records", hint="pass the PyPI/all.zip OSV export"
        )
    merged = list(_dedupe(found))
    snapshot = latest or _dt.date.today().isoformat()
    return AdvisoryDB.from_advisories(merged, snapshot, f"OSV export {path.name}")


def _carry_flags(adv: Advisory, base: AdvisoryDB) -> Advisory:
    known = next((base.get(k) for k in (adv.id, *adv.aliases) if base.get(k) is not None), None)
    if known is None:
        return adv
    return replace(adv, relevant=known.relevant, vector=known.vector, cwe=known.cwe or adv.cwe, summary=known.summary)


def _dedupe(advisories: Iterable[Advisory]) -> Iterator[Advisory]:
    ordered = sorted(advisories, key=lambda a: (not a.id.startswith("PYSEC-"), a.id))
    claimed: set[tuple[str, str]] = set()
    for adv in ordered:
        keys = {(adv.package, k) for k in (adv.id, *adv.aliases)}
        if keys & claimed:
            continue
        claimed |= keys
        yield adv


# ---------------------------------------------------------------------------------------------
# The shipped data: an OSV folder plus curation files


def latest_modified(folder: Path, today: str | None = None) -> str:
    """Newest ``modified`` date among the OSV records of ``folder`` (the snapshot date).

    Dates after ``today`` (a record stamped in the future, as one upstream record is) are
    ignored, so a snapshot never claims to be newer than the day it was built.
    """
    cutoff = today or _dt.date.today().isoformat()
    latest = ""
    for path in folder.glob("*.json"):
        match = re.search(r'"modified"\s*:\s*"(\d{4}-\d{2}-\d{2})', path.read_text(encoding="utf-8"))
        if match and match.group(1) <= cutoff:
            latest = max(latest, match.group(1))
    return latest


def build_from_folder(root: Path) -> AdvisoryDB:
    """Build the database from ``root/osv/*.json`` and ``root/curation/*.yaml``.

    Records of ``extra.yaml`` / ``ghsa_extra.yaml`` are added when their id is not in ``osv/``;
    ``curated.yaml`` corrections are applied to every record by id or alias.
    """
    osv_dir = root / "osv"
    if not osv_dir.is_dir():
        raise AdvisoryDataError(str(osv_dir), "", "folder of OSV records not found")
    advisories = load_osv_dir(osv_dir)
    known = {(a.id, a.package) for a in advisories}
    curation_dir = root / "curation"
    for name in ("extra.yaml", "ghsa_extra.yaml"):
        path = curation_dir / name
        if path.is_file():
            advisories.extend(a for a in load_extra_records(path) if (a.id, a.package) not in known)
    curated_path = curation_dir / "curated.yaml"
    curation = load_curation(curated_path) if curated_path.is_file() else {}
    curated = [apply_curation(a, curation) for a in advisories]
    return AdvisoryDB.from_advisories(curated, latest_modified(osv_dir), f"modelshield curated OSV set ({root.name})")
