"""Tests of the allowlist-first pickle globals analyzer and its data files."""

from __future__ import annotations

import io
import json
from importlib import resources

import pytest
from tests.formats._pickle_payloads import g0, s0, u4

from modelshield.analyzers.pickle_globals import (
    ALLOWLIST_VERSION,
    DANGEROUS_VERSION,
    GlobalUse,
    GlobalVerdict,
    PickleGlobalsAnalyzer,
    judge_global,
)
from modelshield.formats.interface import Blob, ScanContext
from modelshield.formats.pickle import parse_one_stream
from modelshield.limits import Limits
from modelshield.types import Severity


def findings(data: bytes) -> list[tuple[str, Severity]]:
    """(rule, severity) of every finding the analyzer gives for one stream."""
    streams, _ = parse_one_stream(io.BytesIO(data), None)
    ctx = ScanContext(Blob("m.pkl", (), len(data), lambda: io.BytesIO(data)), Limits())
    return [(f.rule_id, f.severity) for s in streams for f in PickleGlobalsAnalyzer().analyze(s, ctx)]


def test_versions_are_published() -> None:
    assert ALLOWLIST_VERSION and DANGEROUS_VERSION


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
        ("collections", "OrderedDict"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("__builtin__", "set"),
        ("copy_reg", "_reconstructor"),
        ("sklearn.ensemble._forest", "RandomForestClassifier"),
        ("torch.nn.modules.linear", "Linear"),
        ("pandas.core.frame", "DataFrame"),
        ("scipy.sparse._csr", "csr_matrix"),
    ],
)
def test_framework_globals_are_allowed(module: str, name: str) -> None:
    assert judge_global(module, name).allowed


@pytest.mark.parametrize(
    ("module", "name", "rule"),
    [
        ("os", "system", "PICKLE-UNSAFE-GLOBAL"),
        ("posix", "system", "PICKLE-UNSAFE-GLOBAL"),
        ("nt", "system", "PICKLE-UNSAFE-GLOBAL"),
        ("subprocess", "Popen", "PICKLE-UNSAFE-GLOBAL"),
        ("commands", "getoutput", "PICKLE-UNSAFE-GLOBAL"),
        ("builtins", "eval", "PICKLE-UNSAFE-GLOBAL"),
        ("__builtin__", "exec", "PICKLE-UNSAFE-GLOBAL"),
        ("builtins", "getattr", "PICKLE-UNSAFE-GLOBAL"),
        ("operator", "methodcaller", "PICKLE-UNSAFE-GLOBAL"),
        ("pty", "spawn", "PICKLE-UNSAFE-GLOBAL"),
        ("runpy", "run_path", "PICKLE-UNSAFE-GLOBAL"),
        ("torch", "load", "PICKLE-UNSAFE-GLOBAL"),
        ("numpy", "load", "PICKLE-UNSAFE-GLOBAL"),
        ("pandas", "read_pickle", "PICKLE-UNSAFE-GLOBAL"),
        ("cProfile", "run", "PICKLE-UNSAFE-GLOBAL"),
        ("asyncio.subprocess", "create_subprocess_shell", "PICKLE-UNSAFE-GLOBAL"),
        ("types", "CodeType", "PICKLE-CODE-OBJECT"),
        ("dill._dill", "_create_function", "PICKLE-CODE-OBJECT"),
        ("cloudpickle.cloudpickle", "_make_function", "PICKLE-CODE-OBJECT"),
        ("torch.fx.graph_module", "reduce_graph_module", "PICKLE-CODE-OBJECT"),
    ],
)
def test_known_dangerous_globals_are_critical_whatever_the_use(module: str, name: str, rule: str) -> None:
    for use in GlobalUse:
        verdict = judge_global(module, name, use)
        assert verdict == GlobalVerdict(False, Severity.CRITICAL, verdict.reason, rule) and verdict.reason


def test_unknown_globals_depend_on_use() -> None:
    assert judge_global("mypkg.models", "Net", GlobalUse.CALL).severity is Severity.HIGH
    assert judge_global("mypkg.models", "Net", GlobalUse.CALL).rule_id == "PICKLE-UNAPPROVED-GLOBAL"
    construct = judge_global("mypkg.models", "Net", GlobalUse.CONSTRUCT)
    assert (construct.allowed, construct.severity, construct.rule_id) == (
        False,
        Severity.LOW,
        "PICKLE-UNREVIEWED-CLASS",
    )
    assert judge_global("mypkg.models", "helper", GlobalUse.REFERENCE).severity is Severity.LOW


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("numpy.testing._private.utils", "os.system"),
        ("torch.serialization", "pickle.loads"),
        ("builtins", "object.__subclasses__"),
        ("collections", "OrderedDict.__init__.__globals__"),
        ("sklearn.utils", "__builtins__"),
    ],
)
def test_dotted_and_dunder_names_are_critical(module: str, name: str) -> None:
    assert judge_global(module, name, GlobalUse.REFERENCE).severity is Severity.CRITICAL


def test_allowlist_and_dangerous_list_do_not_overlap() -> None:
    data = json.loads(resources.files("modelshield.data").joinpath("pickle_allowlist.json").read_text())
    clashes = [
        f"{module}.{name}"
        for module, names in data["exact"].items()
        for name in names
        if not judge_global(module, name).allowed
    ]
    assert clashes == []


def test_sklearn_pattern_excludes_io_modules_and_functions() -> None:
    assert not judge_global("sklearn.datasets._openml", "fetch_openml").allowed
    assert not judge_global("sklearn.datasets", "Bunch").allowed
    assert not judge_global("sklearn.utils", "resample").allowed


def test_analyzer_rules_for_calls_constructs_and_gadgets() -> None:
    assert findings(g0("mypkg", "run") + b"(tR.") == [("PICKLE-UNAPPROVED-GLOBAL", Severity.HIGH)]
    assert findings(b"\x80\x02" + g0("mypkg", "Net") + b")\x81.") == [("PICKLE-UNREVIEWED-CLASS", Severity.LOW)]
    assert findings(g0("torch._utils", "_rebuild_tensor_v2") + b"0N.") == []
    gadget = (
        b"\x80\x02"
        + g0("argparse", "Namespace")
        + b")\x81N}"
        + u4("__setstate__")
        + g0("builtins", "print")
        + b"s\x86b."
    )
    assert ("PICKLE-SUSPICIOUS-CALL", Severity.HIGH) in findings(gadget)
    computed = g0("torch._utils", "_rebuild_tensor_v2") + b"(tR(tR."
    assert ("PICKLE-UNAPPROVED-GLOBAL", Severity.HIGH) in findings(computed)


def test_imported_but_never_called_dangerous_global_is_still_critical() -> None:
    assert findings(g0("os", "system") + b"0N.") == [("PICKLE-UNSAFE-GLOBAL", Severity.CRITICAL)]


def test_higher_order_torch_rebuild_judges_the_function_it_calls() -> None:
    data = g0("torch._utils", "_rebuild_from_type_v2") + b"(" + g0("mypkg", "evil") + g0("torch", "Tensor") + b"(t}tR."
    assert findings(data) == [("PICKLE-UNAPPROVED-GLOBAL", Severity.HIGH)]


def test_argument_checks_of_allowed_callables() -> None:
    assert findings(g0("_codecs", "encode") + b"(" + s0("x") + s0("latin1") + b"tR.") == []
    assert findings(g0("_codecs", "encode") + b"(" + s0("x") + s0("rot13") + b"tR.") == [
        ("PICKLE-SUSPICIOUS-CALL", Severity.MEDIUM)
    ]
    ufunc = g0("numpy.core", "_ufunc_reconstruct") + b"(" + s0("os") + s0("system") + b"tR."
    assert findings(ufunc) == [("PICKLE-SUSPICIOUS-CALL", Severity.CRITICAL)]


def test_persistent_ids_other_than_torch_storages_are_low() -> None:
    assert findings(b"(" + s0("storage") + g0("torch", "FloatStorage") + s0("0") + s0("cpu") + b"I4\ntQ.") == []
    assert findings(b"Pfile:///etc/passwd\n.") == [("PICKLE-PERSID", Severity.LOW)]


def test_malformed_stream_finding() -> None:
    assert findings(b"\x80\x02K\x01") == [("PICKLE-MALFORMED", Severity.MEDIUM)]


def test_unknown_ext_code_is_high() -> None:
    assert findings(b"\x80\x02\x82\x7c)R.") == [("PICKLE-EXT-UNKNOWN", Severity.HIGH)]
