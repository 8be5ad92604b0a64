"""dill's type lookups: plain data types are benign, code types stay critical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.scan import scan
from modelshield.types import Severity


def _worst(path: Path) -> Severity:
    report = scan(str(path))
    return max((f.severity for f in report.findings), default=Severity.INFO)


def test_joblib_dump_made_while_dill_is_imported_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("dill")
    pytest.importorskip("pandas")
    target = tmp_path / "frame.joblib"
    # dill patches the pure-Python pickler joblib uses: the file then references dill._dill._load_type('slice').
    code = (
        "import dill, joblib, pandas as pd\n"
        f"joblib.dump(pd.DataFrame({{'a': [1, 2], 'b': ['x', 'y']}}), {str(target)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert b"_load_type" in target.read_bytes()
    assert _worst(target) < Severity.MEDIUM


@pytest.mark.parametrize("type_name", ["CodeType", "FunctionType", "type", "map"])
def test_lookup_of_code_and_callable_types_stays_critical(tmp_path: Path, type_name: str) -> None:
    enc = type_name.encode()
    data = b"\x80\x02cdill._dill\n_load_type\nX" + len(enc).to_bytes(4, "little") + enc + b"\x85R."
    path = tmp_path / "lookup.pkl"
    path.write_bytes(data)
    assert _worst(path) is Severity.CRITICAL


def test_dill_singleton_repr_is_benign_but_other_expressions_are_code(tmp_path: Path) -> None:
    def pickled(text: str) -> bytes:
        enc = text.encode()
        return b"\x80\x02cdill._dill\n_eval_repr\nX" + len(enc).to_bytes(4, "little") + enc + b"\x85R."

    benign, evil = tmp_path / "singleton.pkl", tmp_path / "expr.pkl"
    benign.write_bytes(pickled("Ellipsis"))
    evil.write_bytes(pickled("__import__('os').system('true')"))
    assert _worst(benign) < Severity.MEDIUM
    assert _worst(evil) is Severity.CRITICAL


@pytest.mark.parametrize(
    ("text", "benign"), [("range(0, 3)", True), ("range(-5, 10, 2)", True), ("range(len('x'))", False)]
)
def test_dill_range_repr(tmp_path: Path, text: str, benign: bool) -> None:
    enc = text.encode()
    path = tmp_path / "range.pkl"
    path.write_bytes(b"\x80\x02cdill._dill\n_eval_repr\nX" + len(enc).to_bytes(4, "little") + enc + b"\x85R.")
    assert (_worst(path) < Severity.MEDIUM) is benign
