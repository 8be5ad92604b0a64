"""The reader catalog: lazy detection imports only the reader it needs and picks what the full registry picks.

:data:`modelshield.formats._sniff.CATALOG` must list exactly the readers the modules register; each
catalog test must answer like its reader's ``sniff``; and ``detect`` (catalog walk, modules imported
on demand) must choose the reader the old brute-force loop over every imported reader chose. The
inputs are every file the corpus and TensorFlow fixture builders write (and what their containers
hold), a minimal valid file per format, and hypothesis-generated heads.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelshield.formats
from modelshield import _discovery
from modelshield.formats import _sniff, interface
from modelshield.formats._sniff import CATALOG, EICAR, LEVELDB_MAGIC, LFS_MAGIC, Entry
from modelshield.formats.interface import SNIFF_BYTES, Blob, Reader, ScanContext, detect, readers, register_reader
from modelshield.limits import Limits

BUILTIN = "modelshield.formats."


def _key(reader: Reader) -> tuple[str, str]:
    return type(reader).__module__, type(reader).__qualname__


def _by_class() -> dict[tuple[str, str], Reader]:
    return {_key(r): r for r in readers()}


_OLD_ORDER: dict[int, list[Reader]] = {}


def _old_order() -> list[Reader]:
    """The order detection used before the catalog: priority, then import order (the alphabetical module walk),
    then class order in the module; readers registered outside the package (plug-ins, test readers) after."""
    everything = readers()
    if len(everything) not in _OLD_ORDER:
        walk = _discovery._submodules("modelshield.formats", list(modelshield.formats.__path__))
        rank = {name: index for index, name in enumerate(walk)}
        registered = {id(reader): index for index, reader in enumerate(interface._READERS)}
        _OLD_ORDER[len(everything)] = sorted(
            everything, key=lambda r: (-r.priority, rank.get(type(r).__module__, len(rank)), registered[id(r)])
        )
    return _OLD_ORDER[len(everything)]


def _brute_force(head: bytes, blob: Blob) -> Reader | None:
    return next((r for r in _old_order() if r.sniff(head, blob)), None)


def _memory(name: str, data: bytes, members: tuple[str, ...] = ()) -> Blob:
    return Blob(name, members, len(data), lambda: io.BytesIO(data))


def _file(path: Path) -> Blob:
    return Blob(str(path), (), path.stat().st_size, lambda: open(path, "rb"))


def _check(head: bytes, blob: Blob) -> None:
    """Every catalog test answers like its reader; detect() picks the brute-force reader."""
    by_class = _by_class()
    for entry in CATALOG:
        if entry.test is not None:
            reader = by_class[(entry.module, entry.reader)]
            assert entry.test(head, blob) == reader.sniff(head, blob), (entry.reader, blob.name, head[:32])
    expected = _brute_force(head, blob)
    assert detect(blob, head) is expected, (blob.name, blob.members, head[:32])


# ---------------------------------------------------------------- (1) catalog == registry


def test_catalog_lists_exactly_the_registered_readers() -> None:
    registered = {(*_key(r), r.priority) for r in readers() if type(r).__module__.startswith(BUILTIN)}
    catalogued = {(entry.module, entry.reader, entry.priority) for entry in CATALOG}
    assert catalogued == registered, "CATALOG in modelshield/formats/_sniff.py differs from the registered readers"
    assert len(catalogued) == len(CATALOG), "a reader is catalogued twice"


def test_catalog_is_ordered_and_tests_live_in_sniff() -> None:
    priorities = [entry.priority for entry in CATALOG]
    assert priorities == sorted(priorities, reverse=True), "list CATALOG by priority: its order breaks ties"
    for entry in CATALOG:
        assert entry.test is None or entry.test.__module__ == _sniff.__name__, entry


def test_detection_order_keeps_the_old_tie_order() -> None:
    builtin = [_key(r) for r in _old_order() if type(r).__module__.startswith(BUILTIN)]
    assert builtin == [(entry.module, entry.reader) for entry in CATALOG]


def test_zip_constants_match_the_parser() -> None:
    from modelshield.formats.zipfmt import parser

    assert (_sniff.ZIP_LOCAL_SIG, _sniff.ZIP_EOCD_SIG, _sniff.ZIP_DESCRIPTOR_SIG) == (
        parser.LOCAL_SIG,
        parser.EOCD_SIG,
        parser.DESCRIPTOR_SIG,
    )
    assert (parser.EOCD.size, parser.MAX_COMMENT) == (_sniff.ZIP_EOCD_SIZE, _sniff.ZIP_MAX_COMMENT)


def test_a_catalog_entry_without_its_class_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    ghost = Entry(BUILTIN + "text", "GhostReader", 2000, lambda head, blob: True)
    monkeypatch.setattr(_sniff, "CATALOG", (ghost, *CATALOG))
    monkeypatch.setattr(interface, "_plan", None)
    with pytest.raises(RuntimeError, match="GhostReader"):
        detect(_memory("x", b"anything"))


# ---------------------------------------------------------------- (2) + (4) real inputs


def _children(blob: Blob) -> list[Blob]:
    reader = detect(blob)
    if reader is None:
        return []
    found: list[Blob] = []
    try:
        for item in reader.read(blob, ScanContext(blob, Limits())):
            if isinstance(item, Blob):
                found.append(item)
                if len(found) >= 40:
                    break
    except Exception:  # noqa: BLE001 - malformed fixtures are expected; only their members matter here
        pass
    return found


def _walk(blob: Blob, depth: int = 0) -> Iterator[Blob]:
    yield blob
    if depth < 3:
        for child in _children(blob):
            yield from _walk(child, depth + 1)


def _check_files(files: list[Path]) -> set[str]:
    """Check every file and nested member under ``files``; the names of the readers that took them."""
    names: set[str] = set()
    for path in files:
        for blob in _walk(_file(path)):
            head = blob.head()
            if head:
                _check(head, blob)
                reader = detect(blob, head)
                names.add(reader.name if reader else "unknown")
    return names


def test_fixture_files_and_their_members(corpus_root: Path, corpus: object, benign_corpus: object) -> None:
    files = [p for p in sorted(corpus_root.rglob("*")) if p.is_file()]
    assert len(files) > 200  # malicious, benign and auxiliary files were generated
    names = _check_files(files)
    assert {"pickle", "zip", "tar", "7z", "compressed", "numpy", "pytorch-legacy", "python-source"} <= names, names


def test_tensorflow_fixture_files(tf_models: Path) -> None:
    names = _check_files([p for p in sorted(tf_models.rglob("*")) if p.is_file()])
    assert {"tf-saved-model", "tf-checkpoint-index", "tf-checkpoint-data", "tflite", "zip", "hdf5"} <= names


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("data.pkl")
        data = pickle.dumps([1, 2])
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def _npy() -> bytes:
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.arange(4))
    return buf.getvalue()


def _safetensors() -> bytes:
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    return struct.pack("<Q", len(header)) + header + b"\0" * 4


def _pe() -> bytes:
    head = bytearray(b"MZ" + b"\0" * 0x7E)
    head[0x3C:0x40] = struct.pack("<I", 0x40)
    head[0x40:0x44] = b"PE\0\0"
    return bytes(head)


def _coreml() -> bytes:
    network = _varint(500 << 3 | 2) + _varint(0)
    return b"\x08\x04" + b"\x12\x00" + network


def _graph_def() -> bytes:
    node = b"\x0a\x01a\x12\x05Const"
    return b"\x0a" + _varint(len(node)) + node


#: A minimal valid file per format (name, bytes): each must be detected as the format named.
MINIMAL: list[tuple[str, str, bytes]] = [
    ("eicar", "eicar.com", EICAR),
    ("executable", "tool", b"\x7fELF\x02\x01\x01" + b"\0" * 57),
    ("executable", "tool.exe", _pe()),
    ("executable", "tool.dylib", b"\xcf\xfa\xed\xfe" + b"\0" * 28),
    ("executable", "run.sh", b"#!/bin/sh\necho hi\n"),
    ("git-lfs-pointer", "model.bin", LFS_MAGIC + b"\noid sha256:00\nsize 12\n"),
    ("7z", "a.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 24),
    ("zip", "a.zip", _zip(("data.pkl", pickle.dumps(1)))),
    ("zip", "empty.zip", _zip()),
    ("zip", "polyglot.bin", b"junk before the archive " * 3 + _zip(("a.txt", b"hello"))),
    ("compressed", "a.gz", gzip.compress(b"data")),
    ("compressed", "a.bz2", bz2.compress(b"data")),
    ("compressed", "a.xz", lzma.compress(b"data")),
    ("compressed", "a.lzma", lzma.compress(b"data", format=lzma.FORMAT_ALONE)),
    ("compressed", "a.z", zlib.compress(pickle.dumps(1))),
    ("compressed", "old.joblib", b"ZF" + b"0x12".ljust(19) + zlib.compress(b"x" * 18)),
    ("compressed", "a.lz4", b"\x04\x22\x4d\x18" + b"\x64\x40\xa7" + b"\0" * 8),
    ("gguf", "m.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0)),
    ("hdf5", "m.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 40),
    ("hdf5", "userblock.h5", b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 40),
    ("safetensors", "m.safetensors", _safetensors()),
    ("tar", "a.tar", _tar()),
    ("tflite", "m.tflite", b"\x1c\x00\x00\x00TFL3" + b"\0" * 40),
    ("safetensors-index", "model.safetensors.index.json", b'{"metadata": {}, "weight_map": {"w": "a.safetensors"}}'),
    ("numpy", "a.npy", _npy()),
    ("python-source", "modeling.py", b"import os\n"),
    ("python-source", "run", b"#!/usr/bin/env python3\nprint(1)\n"),
    ("coreml", "m.mlmodel", _coreml()),
    ("onnx", "m.onnx", b"\x08\x07\x12\x01x\x3a\x00"),
    ("onnx", "model", b"\x08\x07\x12\x01x\x3a\x00"),
    ("keras-metadata-pb", "keras_metadata.pb", b"\x0a\x20\x22\x10_tf_keras_layer" + b"\0" * 16),
    ("tf-saved-model", "saved_model.pb", b"\x08\x01\x12\x04\x0a\x02\x0a\x00"),
    ("pytorch-legacy", "old.pt", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps({}, protocol=2)),
    ("tf-graph-def", "frozen.pb", _graph_def()),
    ("tf-fingerprint", "fingerprint.pb", b"\x08\x01\x10\x02\x18\x03\x20\x04\x28\x05\x32\x02\x08\x01\x3a\x00"),
    ("tf-checkpoint-index", "variables.index", b"\0" * 40 + LEVELDB_MAGIC),
    ("yaml", "config.yaml", b"a: 1\n"),
    ("yaml", "MLmodel", b"flavors: {}\n"),
    ("json", "config.json", b'{"model_type": "bert"}'),
    ("json", "modules.json", b"[1, 2]"),
    *[("pickle", f"p{proto}.pkl", pickle.dumps({"a": [1]}, protocol=proto)) for proto in range(6)],
    ("text", "README.md", b"# A model\n\nSome words.\n"),
]


@pytest.mark.parametrize(("fmt", "name", "data"), MINIMAL, ids=[f"{m[0]}-{m[1]}" for m in MINIMAL])
def test_minimal_file_of_each_format(fmt: str, name: str, data: bytes) -> None:
    blob = _memory(name, data)
    head = data[:SNIFF_BYTES]
    _check(head, blob)
    reader = detect(blob, head)
    assert reader is not None and reader.name == fmt


def test_every_catalogued_reader_has_a_minimal_file() -> None:
    formats = {fmt for fmt, _, _ in MINIMAL} | {"tf-checkpoint-data"}  # on disk: next test
    assert formats == {r.name for r in readers() if type(r).__module__.startswith(BUILTIN)}


def test_checkpoint_shard_beside_its_index(tmp_path: Path) -> None:
    (tmp_path / "variables.index").write_bytes(b"\0" * 40 + LEVELDB_MAGIC)
    shard = tmp_path / "variables.data-00000-of-00001"
    shard.write_bytes(b"\x01\x02\x03\x04" * 8)
    blob = _file(shard)
    _check(blob.head(), blob)
    reader = detect(blob)
    assert reader is not None and reader.name == "tf-checkpoint-data"


# ---------------------------------------------------------------- (2) + (4) generated heads

PREFIXES = [data[:24] for _, _, data in MINIMAL] + [
    b"PK\x07\x08PK\x03\x04",
    b"PK\x05\x06",
    b"\x78\x9c",
    b"\x5d\x00\x00\x10\x00\xff\xff\xff\xff\xff\xff\xff\xff",
    b"ZF0x",
    b"BZh9",
    b"\x80\x02\x8a\x0a",
    b"\x80\x04\x95",
    b"\x08\x01\x12",
    b"\x0a",
    b"\x08",
    b"{",
    b"[",
    b'{"weight_map"',
    b"\xef\xbb\xbf{",
    b"(dp0\n",
    b"#!",
    b"\x93NUMPY",
]
NAMES = [
    "model.bin",
    "model.onnx",
    "model.mlmodel",
    "fingerprint.pb",
    "config.yaml",
    "MLmodel",
    "a.safetensors.index.json",
    "script.py",
    "variables.index",
    "data.pkl",
    "",
]


@st.composite
def _blobs(draw: st.DrawFn) -> tuple[bytes, Blob]:
    prefix = draw(st.sampled_from([b"", *PREFIXES]))
    data = prefix + draw(st.binary(max_size=700))
    cut = draw(st.integers(min_value=1, max_value=max(1, len(data))))  # a head shorter than the blob, sometimes
    return data[:cut], _memory(draw(st.sampled_from(NAMES)), data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_blobs())
def test_generated_heads(case: tuple[bytes, Blob]) -> None:
    head, blob = case
    _check(head, blob)


# ---------------------------------------------------------------- readers outside the catalog (plug-ins)


@register_reader
class _PluginReader(Reader):
    """Test-only reader registered outside the catalog, above the text reader."""

    name = "test-plugin"
    priority = 50

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return head.startswith(b"MSTEST-PLUGIN")

    def read(self, blob: Blob, ctx: ScanContext) -> Iterator[object]:
        return iter(())


@register_reader
class _TiedPluginReader(_PluginReader):
    """Test-only reader outside the catalog at the text reader's priority: built-ins win ties."""

    name = "test-plugin-tied"
    priority = 10

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return b"MSTEST-TIE" in head


def test_uncatalogued_readers_are_asked_at_their_priority() -> None:
    plugin = detect(_memory("x", b"MSTEST-PLUGIN text that the text reader would take"))
    assert plugin is not None and plugin.name == "test-plugin"
    text = detect(_memory("x", b"MSTEST-TIE text"))
    assert text is not None and text.name == "text"  # both accept it: the built-in wins the tie
    tied = detect(_memory("x", b"\xfe\xfe MSTEST-TIE"))
    assert tied is not None and tied.name == "test-plugin-tied"


# ---------------------------------------------------------------- (3) what detection imports

PROBE = textwrap.dedent(
    """
    import os, sys
    from modelshield.formats.interface import Blob, detect
    path = sys.argv[1]
    reader = detect(Blob(path, (), os.path.getsize(path), lambda: open(path, "rb")))
    from modelshield.formats._sniff import CATALOG
    loaded = set(sys.modules)
    print(reader.name if reader else None)
    print(",".join(sorted({e.module for e in CATALOG} & loaded)))
    print(",".join(sorted(loaded)))
    """
)


def _probe(path: Path, plugins: Path | None = None) -> tuple[str, set[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if k != modelshield.formats.PLUGINS_ENV}
    if plugins is not None:
        env[modelshield.formats.PLUGINS_ENV] = "1"
        env["PYTHONPATH"] = os.pathsep.join([str(plugins), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.splitlines()
    return out[0], set(filter(None, out[1].split(","))), set(out[2].split(","))


HEAVY = {
    "tarfile",
    "tempfile",
    "lzma",
    "bz2",
    "zipfile",
    "modelshield.formats.pickle",
    "modelshield.formats.onnx_proto",
    "modelshield.formats._containers",
    "modelshield.formats.zipfmt.parser",
}


@pytest.mark.parametrize(
    ("name", "data", "fmt", "module"),
    [
        ("model.safetensors", _safetensors(), "safetensors", "safetensors"),
        ("model.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0), "gguf", "gguf"),
        ("model.pt", _zip(("archive/data.pkl", pickle.dumps({})), ("archive/version", b"3\n")), "zip", "zipfmt.reader"),
        ("model.pkl", pickle.dumps({"a": 1}, protocol=4), "pickle", "pickle.reader"),
    ],
)
def test_detection_imports_only_the_reader_it_needs(
    tmp_path: Path, name: str, data: bytes, fmt: str, module: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    found, catalogued, loaded = _probe(path)
    assert found == fmt
    assert catalogued == {BUILTIN + module}
    if fmt in ("safetensors", "gguf"):
        assert not HEAVY & loaded


def test_plugins_are_loaded_for_detection_when_enabled(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "msplugin_demo-1.0.dist-info").mkdir(parents=True)
    (site / "msplugin_demo-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: msplugin-demo\nVersion: 1.0\n"
    )
    (site / "msplugin_demo-1.0.dist-info" / "entry_points.txt").write_text(
        "[modelshield.readers]\ndemo = msplugin_demo\n"
    )
    (site / "msplugin_demo.py").write_text(
        textwrap.dedent(
            """
            from modelshield.formats.interface import Reader, register_reader

            @register_reader
            class DemoReader(Reader):
                name = "demo-plugin"
                priority = 85

                def sniff(self, head, blob):
                    return head.startswith(b"MSDEMO")

                def read(self, blob, ctx):
                    return iter(())
            """
        )
    )
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"MSDEMO plain text otherwise")
    found, catalogued, loaded = _probe(sample, plugins=site)
    assert (found, catalogued) == ("demo-plugin", set())
    assert "msplugin_demo" in loaded
    assert _probe(sample)[0] == "text"  # without MODELSHIELD_PLUGINS the entry point is never loaded


# ---------------------------------------------------------------- (5) a fresh process loads what the catalog says


def _expected_catalog_modules(fmt: str) -> set[str]:
    """The catalog modules a fresh detection of ``fmt`` imports: its reader's, and every trial-parse
    entry (no content test here) that detection reaches before it."""
    by_name = {r.name: _key(r) for r in readers()}
    module, reader = by_name[fmt]
    order = sorted(CATALOG, key=lambda e: -e.priority)  # stable: catalog order within a priority
    expected = {module}
    for entry in order:
        if (entry.module, entry.reader) == (module, reader):
            break
        if entry.test is None:
            expected.add(entry.module)
    return expected


def _module_level_imports(modules: set[str]) -> set[str]:
    """Every modelshield module that importing ``modules`` imports at module level (transitively)."""
    import ast
    import importlib.util

    def exists(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a name imported from a module, not a module
            return False

    seen: set[str] = set()
    todo = list(modules)
    while todo:
        spec = importlib.util.find_spec(todo.pop())
        if spec is None or spec.origin is None:
            continue
        tree = ast.parse(Path(spec.origin).read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                if name.startswith("modelshield.") and name not in seen and exists(name):
                    seen.add(name)
                    todo.append(name)
    return seen


@pytest.fixture(scope="module")
def minimal_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("minimal")
    out = []
    for index, (fmt, name, data) in enumerate(MINIMAL):
        (folder / str(index)).mkdir()
        path = folder / str(index) / name
        path.write_bytes(data)
        out.append((fmt, path))
    return out


def test_a_fresh_process_reads_each_format_as_the_catalog_declares(minimal_files: list[tuple[str, Path]]) -> None:
    from tests.fresh import as_outcome, eager_outcomes, fresh_outcomes

    paths = [str(p) for _, p in minimal_files]
    fresh = fresh_outcomes(paths)
    eager = eager_outcomes(paths)
    for fmt, path in minimal_files:
        got = as_outcome(fresh[str(path)])
        assert got == eager[str(path)], f"{path.name}: a fresh process found other things than a preloaded one"
        assert not fresh[str(path)]["undeclared_rule"], (
            f"{path.name}: a finding's rule was declared by no loaded module"
        )
        detected = fresh[str(path)]["detected"]
        assert detected == fmt, f"{path.name}: detected as {detected} in a fresh process, the catalog says {fmt}"
        loaded = {m for m in fresh[str(path)]["detection_loaded"] if m in {e.module for e in CATALOG}}  # type: ignore[union-attr]
        expected = _expected_catalog_modules(fmt)
        assert expected <= loaded, f"{path.name}: detection imported {sorted(loaded)}"
        extra = loaded - expected - _module_level_imports(expected)
        assert not extra, f"{path.name}: detection imported {sorted(extra)}, which {fmt} does not need"
