"""The offline advisory database: OSV records reduced to what version matching needs.

The package ships ``modelshield/data/advisories/advisories.json`` (built by
``scripts/build_advisories.py`` from OSV JSON records plus curation files). A refreshed copy
imported with ``modelshield advisories update`` lives in the user data folder and wins when its
snapshot is newer. Records are indexed by normalised package name, so a lookup only ever looks
at the advisories of one package.

The file is a JSON header line (format, snapshot, source, count) followed by one line per
package: its name, a tab, and its compact records as a JSON array. Reading it decodes only the
header; a package's line is decoded when the package is first looked up (a scan needs one to
three of the ~30 packages, and decoding the whole file was ~3 ms of every scan). Files in the
single-JSON-document format of earlier versions (format 1) are still read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from modelshield._record import field, record
from modelshield.errors import ModelShieldError

if TYPE_CHECKING:
    from pathlib import Path

#: The format written: a header line, then one ``package<TAB>records`` line per package.
FORMAT_VERSION = 2
#: The format of earlier versions, still read: one JSON document with every package's records.
DOCUMENT_FORMAT_VERSION = 1
SHIPPED_NAME = "advisories.json"


class AdvisoryDataError(ModelShieldError):
    """An advisory file (OSV record, curation YAML, shipped DB) is malformed.

    The message names the file, the line (when known) and the field.
    """

    def __init__(self, file: str, field_path: str, problem: str, line: int | None = None, hint: str = "") -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(
            f"{where}: field {field_path or '(top level)'}: {problem}",
            hint=hint or "fix or remove this record, then run the import again",
        )
        self.file = file
        self.line = line
        self.field = field_path


def normalise(name: str) -> str:
    """PEP 503 normalised package name (``Llama_CPP.python`` -> ``llama-cpp-python``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@record
class Interval:
    """One affected version interval: ``introduced <= v < fixed`` or ``<= last_affected``.

    ``introduced`` "0" means every version before the upper bound; both bounds None means open.
    """

    introduced: str
    fixed: str | None = None
    last_affected: str | None = None


@record
class Advisory:
    """One advisory for one package, with the flags the relevance logic needs."""

    id: str
    package: str
    aliases: tuple[str, ...]
    summary: str
    intervals: tuple[Interval, ...]
    relevant: bool = False
    vector: str = "other"
    cwe: tuple[str, ...] = ()
    verified: bool = True
    withdrawn: bool = False
    url: str = ""

    @property
    def cves(self) -> tuple[str, ...]:
        """CVE ids among the id and aliases."""
        return tuple(a for a in (self.id, *self.aliases) if a.startswith("CVE-"))

    @property
    def display_id(self) -> str:
        """The CVE id when there is one (what people search for), else the record id."""
        cves = self.cves
        return cves[0] if cves else self.id

    @property
    def references(self) -> tuple[str, ...]:
        """Every id of this advisory (record id, CVE, GHSA), for finding references."""
        return tuple(dict.fromkeys((self.id, *self.aliases, *self.cwe)))

    @property
    def fixed_versions(self) -> tuple[str, ...]:
        """Versions that fix the advisory (the upper bounds of the intervals)."""
        return tuple(i.fixed for i in self.intervals if i.fixed)

    def to_compact(self) -> dict[str, Any]:
        """Compact JSON form used in the shipped file (empty fields left out)."""
        out: dict[str, Any] = {"id": self.id, "summary": self.summary}
        out["ranges"] = [[i.introduced, i.fixed, i.last_affected] for i in self.intervals]
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.relevant:
            out["relevant"] = True
        if self.vector != "other":
            out["vector"] = self.vector
        if self.cwe:
            out["cwe"] = list(self.cwe)
        if not self.verified:
            out["verified"] = False
        if self.withdrawn:
            out["withdrawn"] = True
        if self.url:
            out["url"] = self.url
        return out

    @classmethod
    def from_compact(cls, package: str, data: Mapping[str, Any], file: str) -> Advisory:
        """Inverse of :meth:`to_compact`; raise AdvisoryDataError naming the field when malformed."""
        try:
            get = data.get
            return cls(  # positional: a scan decodes a package's records on first use, ~30 for torch
                str(data["id"]),
                package,
                tuple(get("aliases", ())),
                str(get("summary", "")),
                tuple([Interval(str(r[0]), r[1], r[2]) for r in data["ranges"]]),
                bool(get("relevant", False)),
                str(get("vector", "other")),
                tuple(get("cwe", ())),
                bool(get("verified", True)),
                bool(get("withdrawn", False)),
                str(get("url", "")),
            )
        except (KeyError, IndexError, TypeError) as exc:
            rid = data.get("id", "?") if isinstance(data, Mapping) else "?"
            raise AdvisoryDataError(file, f"packages.{package}[{rid}]", f"malformed record ({exc!r})") from None


class _LazyPackages(Mapping[str, tuple[Advisory, ...]]):
    """Package -> advisories, decoding a package's compact records on first access.

    A scan looks at one or two packages; decoding all ~1,300 records up front cost ~6 ms of
    every start. ``raw`` maps each normalised name to (name as written, records, line): the
    records as decoded JSON (format 1) or as the JSON text of the package's line (format 2).
    A malformed line or record raises AdvisoryDataError (naming file, line, package and record)
    when its package is first used.
    """

    def __init__(self, raw: dict[str, tuple[str, list[Any] | str, int | None]], file: str) -> None:
        self._raw = raw
        self._file = file
        self._decoded: dict[str, tuple[Advisory, ...]] = {}

    def __getitem__(self, key: str) -> tuple[Advisory, ...]:
        found = self._decoded.get(key)
        if found is None:
            package, records, line = self._raw[key]
            if isinstance(records, str):
                records = self._decode(package, records, line)
            found = tuple(Advisory.from_compact(key, rec, self._file) for rec in records)
            self._decoded[key] = found
        return found

    def _decode(self, package: str, text: str, line: int | None) -> list[Any]:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AdvisoryDataError(self._file, f"packages.{package}", f"not valid JSON: {exc.msg}", line) from None
        if not isinstance(records, list):
            raise AdvisoryDataError(self._file, f"packages.{package}", "expected a list of advisories", line)
        return records

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@record(frozen=False)
class AdvisoryDB:
    """Advisories indexed by normalised package name, with the snapshot date of the data."""

    snapshot: str
    source: str
    packages: Mapping[str, tuple[Advisory, ...]]
    _by_id: dict[str, Advisory] = field(default_factory=dict, repr=False)

    def for_package(self, name: str) -> tuple[Advisory, ...]:
        """Advisories of one package (empty when none)."""
        return self.packages.get(normalise(name), ())

    def get(self, ident: str) -> Advisory | None:
        """Look an advisory up by record id, CVE or GHSA alias."""
        if not self._by_id:
            for advisories in self.packages.values():
                for adv in advisories:
                    for key in (adv.id, *adv.aliases):
                        self._by_id.setdefault(key, adv)
        return self._by_id.get(ident)

    def __len__(self) -> int:
        return sum(len(v) for v in self.packages.values())

    def to_json(self) -> str:
        """Serialize to the shipped format (see the module docstring): stable order, one line per package."""
        header = {"format": FORMAT_VERSION, "snapshot": self.snapshot, "source": self.source, "count": len(self)}
        lines = [_compact_json(header)]
        for pkg, advs in sorted(self.packages.items()):
            if not pkg or any(c in pkg for c in "\t\n\r"):
                raise AdvisoryDataError(
                    "(database)", f"packages.{pkg!r}", "a package name cannot hold a tab or newline"
                )
            lines.append(pkg + "\t" + _compact_json([a.to_compact() for a in sorted(advs, key=lambda a: a.id)]))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, text: str, file: str) -> AdvisoryDB:
        """Parse the shipped format (or format 1); raise AdvisoryDataError with file/line/field when malformed.

        Only the header line is decoded here; each package's line is decoded on first use.
        """
        first, _, rest = text.partition("\n")
        try:
            head = json.loads(first)
        except json.JSONDecodeError:
            head = None  # not a header line: a format 1 document written over several lines
        if isinstance(head, dict) and head.get("format") == FORMAT_VERSION:
            return cls._from_lines(head, rest, file)
        if not isinstance(head, dict) or rest.strip():
            try:
                head = json.loads(text)
            except json.JSONDecodeError as exc:
                raise AdvisoryDataError(file, "", f"not valid JSON: {exc.msg}", exc.lineno) from None
        return cls._from_document(head, file)

    @classmethod
    def _from_lines(cls, head: dict[str, Any], body: str, file: str) -> AdvisoryDB:
        raw: dict[str, tuple[str, list[Any] | str, int | None]] = {}
        for number, line in enumerate(body.split("\n"), start=2):
            if not line:
                continue
            pkg, tab, records = line.partition("\t")
            if not tab or not pkg:
                raise AdvisoryDataError(file, "packages", "expected a line 'package<TAB>records'", number)
            raw[normalise(pkg)] = (pkg, records, number)
        return cls(str(head.get("snapshot", "unknown")), str(head.get("source", "")), _LazyPackages(raw, file))

    @classmethod
    def _from_document(cls, data: object, file: str) -> AdvisoryDB:
        if not isinstance(data, dict) or data.get("format") != DOCUMENT_FORMAT_VERSION:
            raise AdvisoryDataError(
                file, "format", f"expected advisory database format {FORMAT_VERSION} (or {DOCUMENT_FORMAT_VERSION})"
            )
        packages = data.get("packages")
        if not isinstance(packages, dict):
            raise AdvisoryDataError(file, "packages", "expected an object of package -> advisories")
        raw: dict[str, tuple[str, list[Any] | str, int | None]] = {}
        for pkg, recs in packages.items():
            if not isinstance(recs, list):
                raise AdvisoryDataError(file, f"packages.{pkg}", "expected a list of advisories")
            raw[normalise(pkg)] = (pkg, recs, None)
        return cls(str(data.get("snapshot", "unknown")), str(data.get("source", "")), _LazyPackages(raw, file))

    @classmethod
    def from_advisories(cls, advisories: Iterable[Advisory], snapshot: str, source: str) -> AdvisoryDB:
        """Index a flat list of advisories by package."""
        grouped: dict[str, list[Advisory]] = {}
        for adv in advisories:
            grouped.setdefault(normalise(adv.package), []).append(adv)
        return cls(snapshot, source, {k: tuple(v) for k, v in grouped.items()})


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _shipped_file() -> str:
    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    return os.path.join(package, "data", "advisories", SHIPPED_NAME)


def _user_file() -> str:
    base = os.environ.get("MODELSHIELD_DATA_DIR")
    if base:
        return os.path.join(base, SHIPPED_NAME)
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "modelshield", SHIPPED_NAME)


def shipped_path() -> Path:
    """Path of the advisory database shipped inside the package."""
    from pathlib import Path

    return Path(_shipped_file())


def user_path() -> Path:
    """Where ``advisories update`` stores a refreshed database (``$MODELSHIELD_DATA_DIR`` or XDG)."""
    from pathlib import Path

    return Path(_user_file())


_CACHE: dict[str, AdvisoryDB] = {}


def load_file(path: str | os.PathLike[str]) -> AdvisoryDB:
    """Load one database file (cached per path)."""
    key = os.fspath(path)
    if key not in _CACHE:
        try:
            with open(key, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as exc:
            raise AdvisoryDataError(key, "", f"cannot read: {exc.strerror}") from None
        _CACHE[key] = AdvisoryDB.from_json(text, key)
    return _CACHE[key]


def load_db(path: str | os.PathLike[str] | None = None) -> AdvisoryDB:
    """The advisory database: ``path`` if given, else the newer of the user copy and the shipped one.

    Plain strings inside: pathlib costs ~2 ms of start-up and a scan needs none of it.
    """
    if path is not None:
        return load_file(path)
    shipped = load_file(_shipped_file())
    user = _user_file()
    if os.path.isfile(user):
        refreshed = load_file(user)
        if refreshed.snapshot >= shipped.snapshot:
            return refreshed
    return shipped


def clear_cache() -> None:
    """Forget loaded databases (after an update, or in tests)."""
    _CACHE.clear()
