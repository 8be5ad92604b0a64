"""End-to-end tests of the pickle-family readers through ``modelshield.scan.scan``.

Benign files written by real frameworks must give no finding at or above medium; generated malicious
files must be flagged (critical for known-dangerous targets) and scanning must never run them.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import io
import os
import pickle
import uuid
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.formats._pickle_payloads import os_system, payloads, reduce_obj, subprocess_load

from modelshield.limits import Limits
from modelshield.scan import scan
from modelshield.types import ScanReport, Severity

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):  # type: ignore[misc]
    """A user-defined module, as in whole-model checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.BatchNorm2d(4)
        self.rnn = torch.nn.LSTM(4, 4)
        self.block = torch.nn.TransformerEncoderLayer(8, 2)
        self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.LayerNorm(4))


def _torch_bytes(obj: object, legacy: bool) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _data_pkl(zip_bytes: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        return next(zf.read(n) for n in zf.namelist() if n.endswith("data.pkl"))


def _benign_objects() -> dict[str, object]:
    sk = pytest.importorskip("sklearn")
    del sk
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((30, 4))
    y = (x[:, 0] > 0.5).astype(int)
    objs: dict[str, object] = {
        "logreg": LogisticRegression().fit(x, y),
        "forest": RandomForestClassifier(n_estimators=2, random_state=0).fit(x, y),
        "pipeline": Pipeline(
            [("s", StandardScaler()), ("f", FunctionTransformer(np.abs)), ("k", KNeighborsClassifier())]
        ).fit(x, y),
        "arrays": {
            "f": np.zeros((3, 2)),
            "i": np.arange(4, dtype=np.int8),
            "u": np.array(["a", "bc"]),
            "o": np.array([1, "x", None], dtype=object),
        },
        "numpy-misc": [
            np.float32(1),
            np.random.RandomState(0),
            np.random.default_rng(1),
            np.datetime64("2020-01-01"),
            np.ma.masked_array([1, 2], mask=[0, 1]),
        ],
        "plain": [
            None,
            True,
            1.5,
            2**100,
            -3,
            "s",
            b"b",
            bytearray(b"x"),
            (1,),
            {1, 2},
            frozenset([3]),
            slice(1, 2),
            complex(1, 2),
            range(3),
        ],
        "stdlib": [
            collections.OrderedDict(a=1),
            collections.defaultdict(list),
            collections.Counter("ab"),
            collections.deque([1]),
            datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
            datetime.timedelta(1),
            decimal.Decimal("1.1"),
            uuid.UUID(int=5),
            fractions.Fraction(1, 3),
        ],
    }
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "a": [1, 2],
            "b": ["x", "y"],
            "c": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "d": pd.Categorical(["u", "v"]),
        }
    )
    objs["pandas"] = [
        frame,
        frame.set_index("a"),
        pd.Series([1.0, None], name="s"),
        pd.period_range("2020", periods=2, freq="M"),
    ]
    return objs


@pytest.fixture(scope="session")
def benign_report(tmp_path_factory: pytest.TempPathFactory) -> ScanReport:
    """Scan a folder of benign files written by torch, numpy, sklearn, pandas, joblib and pickle."""
    joblib = pytest.importorskip("joblib")
    root = tmp_path_factory.mktemp("benign")
    net = TinyNet()
    for legacy in (False, True):
        for name, obj in {
            "state_dict": net.state_dict(),
            "whole": net,
            "extras": {
                "q": torch.quantize_per_tensor(torch.rand(3), 0.1, 0, torch.quint8),
                "h": torch.zeros(2, dtype=torch.float16),
                "sp": torch.zeros(3, 3).to_sparse(),
                "dev": torch.device("cpu"),
                "size": torch.Size([2]),
            },
        }.items():
            data = _torch_bytes(obj, legacy)
            (root / f"{name}.{'legacy.pt' if legacy else 'data.pkl'}").write_bytes(data if legacy else _data_pkl(data))
    for name, obj in _benign_objects().items():
        for proto in range(6):
            (root / f"{name}.p{proto}.pkl").write_bytes(pickle.dumps(obj, protocol=proto))
        joblib.dump(obj, root / f"{name}.joblib")
    np.save(root / "plain.npy", np.zeros((3, 4), dtype=np.float32))
    np.save(root / "objects.npy", np.array([1, "x", None], dtype=object), allow_pickle=True)
    np.save(root / "structured.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i2", (2,))]))
    return scan(str(root))


def test_benign_files_have_no_finding_at_or_above_medium(benign_report: ScanReport) -> None:
    bad = [
        (a.path, a.member, f.rule_id, f.message)
        for a in benign_report.artifacts
        for f in a.findings
        if f.severity >= Severity.MEDIUM
    ]
    assert bad == []
    formats = collections.Counter(a.format for a in benign_report.artifacts)
    assert (
        formats["pickle"] >= 40 and formats["joblib"] >= 5 and formats["numpy"] == 3 and formats["pytorch-legacy"] == 3
    )


def test_whole_module_checkpoint_reports_the_user_class_as_low(benign_report: ScanReport) -> None:
    for artifact in benign_report.artifacts:
        if os.path.basename(artifact.path).startswith("whole."):
            # CVE notes of the advisory stage (info: "torch pickle present") are not the engine's business here
            own = [f for f in artifact.findings if not f.rule_id.startswith("VULN-")]
            assert [f.rule_id for f in own] == ["PICKLE-UNREVIEWED-CLASS"]
            assert "TinyNet" in own[0].message
            assert own[0].severity is Severity.LOW


def _scan_bytes(tmp_path: Path, name: str, data: bytes) -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    return scan(str(path))


def _worst(report: ScanReport) -> Severity:
    return max((f.severity for f in report.findings), default=Severity.INFO)


PAYLOAD_NAMES = sorted(payloads("/nonexistent/canary", "/tmp"))


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_malicious_pickles_are_critical_and_never_run(tmp_path: Path, name: str) -> None:
    canary = tmp_path / "canary"
    data = payloads(str(canary), str(tmp_path))[name]
    report = _scan_bytes(tmp_path, "model.bin", data)
    assert _worst(report) is Severity.CRITICAL, [f.rule_id for f in report.findings]
    assert report.verdict.value == "fail"
    assert not canary.exists()


@pytest.mark.parametrize(
    "name", ["build-gadget", "stack-global-memo", "inst", "obj", "marshal-functiontype", "protocol0-text"]
)
def test_hand_assembled_payloads_really_fire_under_pickle(tmp_path: Path, name: str) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "sample.pkl"
    path.write_bytes(payloads(str(canary), str(tmp_path))[name])
    subprocess_load(str(path))
    assert canary.exists(), "the fixture is not a working exploit"


def test_finding_carries_call_evidence_location_and_cwe(tmp_path: Path) -> None:
    report = _scan_bytes(tmp_path, "m.pkl", os_system("/tmp/x", 2))
    (finding,) = report.findings
    assert finding.rule_id == "PICKLE-UNSAFE-GLOBAL"
    assert "system('touch /tmp/x')" in finding.evidence
    assert finding.location.offset is not None and finding.location.opcode_index is not None
    assert "CWE-502" in finding.references and finding.remediation


def test_payload_before_broken_stream_is_reported_with_the_break(tmp_path: Path) -> None:
    report = _scan_bytes(tmp_path, "m.pkl", payloads("/tmp/c", str(tmp_path))["payload-before-broken-stream"])
    rules = {f.rule_id for f in report.findings}
    assert rules == {"PICKLE-UNSAFE-GLOBAL", "PICKLE-MALFORMED"}


def test_broken_benign_stream_alone_is_a_medium_coverage_finding(tmp_path: Path) -> None:
    report = _scan_bytes(tmp_path, "m.pkl", pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-2])
    assert [(f.rule_id, f.severity, f.category.value) for f in report.findings] == [
        ("PICKLE-MALFORMED", Severity.MEDIUM, "coverage")
    ]


def test_trailing_bytes_are_reported_and_scanned_as_a_member(tmp_path: Path) -> None:
    tail = b"#!/bin/sh\necho this is not a pickle at all\n" * 3
    report = _scan_bytes(tmp_path, "m.pkl", pickle.dumps([1, 2], protocol=4) + tail)
    assert [f.rule_id for f in report.artifacts[0].findings] == ["PICKLE-TRAILING-DATA"]
    assert any(a.member and a.member.startswith("trailing@") for a in report.artifacts)


def test_ext_code_resolves_through_copyreg_and_unknown_codes_are_flagged(tmp_path: Path) -> None:
    import copyreg

    code = 0x7A31
    data = b"\x80\x02\x83" + code.to_bytes(2, "little") + b"X\x05\x00\x00\x00touch\x85R."
    assert _worst(_scan_bytes(tmp_path, "unknown.pkl", data)) is Severity.HIGH
    copyreg.add_extension("os", "system", code)
    try:
        report = _scan_bytes(tmp_path, "known.pkl", data)
    finally:
        copyreg.remove_extension("os", "system", code)
    assert _worst(report) is Severity.CRITICAL
    assert "EXT code" in report.findings[0].message


def test_dill_and_cloudpickle_functions_are_code_object_findings(tmp_path: Path) -> None:
    dill = pytest.importorskip("dill")
    cloudpickle = pytest.importorskip("cloudpickle")
    canary = tmp_path / "canary"

    def payload() -> None:
        open(str(canary), "w").close()  # noqa: SIM115

    for name, data in {"dill": dill.dumps(payload, recurse=True), "cloudpickle": cloudpickle.dumps(payload)}.items():
        report = _scan_bytes(tmp_path, f"{name}.pkl", data)
        code = [f for f in report.findings if f.rule_id == "PICKLE-CODE-OBJECT"]
        assert code and all(f.severity is Severity.CRITICAL for f in code), name
        assert any("payload" in f.evidence for f in code), name
    assert not canary.exists()


def test_joblib_payloads_in_object_arrays_and_after_inline_arrays(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    canary = tmp_path / "canary"
    bomb = reduce_obj(os.system, f"touch {canary}")
    joblib.dump({"w": np.zeros(100), "o": np.array([bomb, 1], dtype=object)}, tmp_path / "a.joblib")
    joblib.dump([np.ones((50, 3)), bomb], tmp_path / "b.joblib")
    for name in ("a.joblib", "b.joblib"):
        report = scan(str(tmp_path / name))
        assert report.artifacts[0].format == "joblib"
        assert _worst(report) is Severity.CRITICAL, name
        assert not [f for f in report.findings if f.rule_id == "PICKLE-MALFORMED"], name
    assert not canary.exists()


def test_npy_object_array_with_payload_and_npy_size_checks(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    np.save(
        tmp_path / "evil.npy", np.array([reduce_obj(os.system, f"touch {canary}")], dtype=object), allow_pickle=True
    )
    assert _worst(scan(str(tmp_path / "evil.npy"))) is Severity.CRITICAL
    np.save(tmp_path / "short.npy", np.zeros(10))
    (tmp_path / "short.npy").write_bytes((tmp_path / "short.npy").read_bytes()[:-8])
    assert [f.rule_id for f in scan(str(tmp_path / "short.npy")).findings] == ["NPY-SIZE-MISMATCH"]
    np.save(tmp_path / "long.npy", np.zeros(10))
    with open(tmp_path / "long.npy", "ab") as fh:
        fh.write(os_system(str(canary), 2))
    report = scan(str(tmp_path / "long.npy"))
    assert {f.rule_id for f in report.findings} >= {"PICKLE-TRAILING-DATA", "PICKLE-UNSAFE-GLOBAL"}
    assert not canary.exists()


def test_npy_header_that_is_not_a_literal_is_a_parse_error(tmp_path: Path) -> None:
    header = b"{'descr': __import__('os').system('x'), 'fortran_order': False, 'shape': (1,)}"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    assert [f.rule_id for f in _scan_bytes(tmp_path, "h.npy", data).findings] == ["PARSE-ERROR"]


def test_legacy_torch_with_payload_and_torch_zip_data_pkl(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    evil = {"w": torch.zeros(3), "x": reduce_obj(os.system, f"touch {canary}")}
    report = _scan_bytes(tmp_path, "legacy.pt", _torch_bytes(evil, legacy=True))
    assert report.artifacts[0].format == "pytorch-legacy" and _worst(report) is Severity.CRITICAL
    report = _scan_bytes(tmp_path, "data.pkl", _data_pkl(_torch_bytes(evil, legacy=False)))
    assert _worst(report) is Severity.CRITICAL
    appended = _torch_bytes({"w": torch.zeros(3)}, legacy=True) + os_system(str(canary), 2)
    report = _scan_bytes(tmp_path, "appended.pt", appended)
    assert {f.rule_id for f in report.findings} >= {"PICKLE-TRAILING-DATA", "PICKLE-UNSAFE-GLOBAL"}
    assert not canary.exists()


def test_opcode_limit_stops_the_scan_but_keeps_earlier_findings(tmp_path: Path) -> None:
    data = os_system("/tmp/x", 2)[:-1] + b"N0" * 5000 + b"."
    (tmp_path / "m.pkl").write_bytes(data)
    report = scan(str(tmp_path / "m.pkl"), limits=Limits(max_opcodes=500))
    rules = {f.rule_id for f in report.findings}
    assert rules == {"PICKLE-UNSAFE-GLOBAL", "LIMIT-EXCEEDED"}


_REAL = [pickle.dumps({"a": [1, 2.5, "x", b"y", None, True], "b": (1, 2)}, protocol=p) for p in range(6)] + [
    os_system("/tmp/never", 2)
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.sampled_from(_REAL),
    edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 4096),
    noise=st.binary(max_size=64),
)
def test_mutated_and_random_bytes_never_escape_scan(
    tmp_path: Path, base: bytes, edits: list[tuple[int, int]], cut: int, noise: bytes
) -> None:
    data = bytearray(base)
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    sample = bytes(data[: max(1, cut)]) + noise
    path = tmp_path / "fuzz.bin"
    path.write_bytes(sample)
    report = scan(str(path), limits=Limits(time_per_file_s=30))
    assert not [f for f in report.findings if f.rule_id in ("INTERNAL-ERROR", "SCAN-CRASH")]
    assert report.artifacts
