"""The verdict cache: keys, invalidation by rules and advisory versions, concurrent writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from modelshield.advisories.requirements import ModelFacts
from modelshield.fleet.cache import AdvisoryVersions, CacheKey, SqlStore, connect, open_store
from modelshield.fleet.codec import dumps, loads, relocate
from modelshield.types import Artifact, Category, Finding, Location, Severity


def _artifact(path: str, package: str | None = None) -> Artifact:
    facts = None
    if package is not None:
        item = ModelFacts(path, "keras")
        item.need(package, "3.0.0", "made-with", "metadata.json")
        facts = (item,)
    finding = Finding("PICKLE-UNSAFE-GLOBAL", Severity.HIGH, Category.MALICIOUS_CODE, f"bad in {path}", Location(path))
    return Artifact(path, None, "pickle", 10, None, (finding,), facts)


class _FakeDB:
    """The part of AdvisoryDB the versions read: records per package, changeable by the test."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {"keras": ["A1"], "torch": ["T1"]}

    def for_package(self, name: str) -> tuple[object, ...]:
        class _Adv:
            def __init__(self, ident: str) -> None:
                self.ident = ident

            def to_compact(self) -> dict[str, str]:
                return {"id": self.ident}

        return tuple(_Adv(r) for r in self.records.get(name, []))


def test_codec_round_trip_keeps_findings_and_facts() -> None:
    original = [_artifact("/a/model.keras", "keras")]
    back = loads(dumps(original))
    assert back == original
    assert back[0].facts is not None and back[0].facts[0].needs == original[0].facts[0].needs  # type: ignore[index]
    moved = relocate(back, "/b/model.keras", "ab" * 32)
    assert moved[0].path == "/b/model.keras" and moved[0].sha256 == "ab" * 32
    assert moved[0].findings[0].location.path == "/b/model.keras"
    assert moved[0].findings[0].message == "bad in /b/model.keras"
    assert moved[0].facts[0].path == "/b/model.keras"  # type: ignore[index]


def test_a_rules_version_change_invalidates_the_entries(tmp_path: Path) -> None:
    path = str(tmp_path / "v.sqlite")
    key = CacheKey("11" * 32, "m.pkl|ctx")
    old = open_store(None, "2026.1", "eng", cache_path=path)
    old.put_many([(key, [_artifact("m.pkl")])])
    assert key in old.get_many([key])
    old.close()
    new = open_store(None, "2026.2", "eng", cache_path=path)
    assert new.get_many([key]) == {}, "a new rule set must not reuse verdicts of the old one"
    assert new.prune() == 1 and new.count() == 0
    other_engine = open_store(None, "2026.1", "eng2", cache_path=path)
    assert other_engine.get_many([key]) == {}


def test_an_advisory_change_invalidates_exactly_the_files_needing_that_package(tmp_path: Path) -> None:
    db = _FakeDB()
    store = open_store(None, "r", "e", cache_path=str(tmp_path / "v.sqlite"), advisories=AdvisoryVersions(db))
    keras_key, torch_key, plain_key = (CacheKey(c * 64, "ctx") for c in "abc")
    store.put_many(
        [
            (keras_key, [_artifact("k.keras", "keras")]),
            (torch_key, [_artifact("t.pt", "torch")]),
            (plain_key, [_artifact("w.safetensors")]),
        ]
    )
    assert set(store.get_many([keras_key, torch_key, plain_key])) == {keras_key, torch_key, plain_key}
    db.records["keras"].append("A2")  # a new keras advisory arrives
    store.advisories = AdvisoryVersions(db)
    assert set(store.get_many([keras_key, torch_key, plain_key])) == {torch_key, plain_key}


def test_the_cache_holds_one_result_per_key_and_context(tmp_path: Path) -> None:
    store = open_store(None, "r", "e", cache_path=str(tmp_path / "v.sqlite"))
    same_bytes_other_name = CacheKey("dd" * 32, "other.pkl|ctx")
    key = CacheKey("dd" * 32, "m.pkl|ctx")
    store.put_many([(key, [_artifact("m.pkl")])])
    store.put_many([(key, [_artifact("different.pkl")])])  # first writer wins, nothing raised
    assert loads(store.get_many([key])[key])[0].path == "m.pkl"
    assert store.get_many([same_bytes_other_name]) == {}
    assert store.count() == 1


def _writer(path: str, worker: int, n: int) -> None:
    store = open_store(None, "r", "e", cache_path=path)
    for start in range(0, n, 25):  # overlapping keys: every worker writes every key
        items = [(CacheKey(f"{i:064x}", "ctx"), [_artifact(f"f{i}.pkl")]) for i in range(start, start + 25)]
        store.put_many(items)
        store.get_many([k for k, _ in items])
    store.close()


def test_concurrent_writers_in_processes_are_safe(tmp_path: Path) -> None:
    path = str(tmp_path / "shared" / "v.sqlite")
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_writer, args=(path, w, 300)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = open_store(None, "r", "e", cache_path=path)
    assert store.count() == 300
    keys = [CacheKey(f"{i:064x}", "ctx") for i in range(300)]
    assert len(store.get_many(keys)) == 300


def test_the_catalog_database_url_holds_the_cache_through_sqlalchemy(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    import os

    url = os.environ.get("MODELSHIELD_TEST_DATABASE_URL")
    from modelshield.fleet import cache

    conn = cache._SQLAlchemy(url) if url else cache._SQLAlchemy(f"sqlite:///{tmp_path / 'catalog.db'}")
    store = SqlStore(conn, "r-sqla", f"e-{os.getpid()}", AdvisoryVersions(_FakeDB()))
    key = CacheKey("ee" * 32, "x|y")
    store.put_many([(key, [_artifact("m.pkl", "keras")])])
    store.put_many([(key, [_artifact("m.pkl", "keras")])])
    assert key in store.get_many([key])
    store.prune()
    store.close()


def test_a_sqlite_database_url_is_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    conn = connect(f"sqlite:///{db}")
    SqlStore(conn, "r", "e").close()
    assert db.is_file()
