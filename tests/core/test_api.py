"""The public Python API as the README shows it, in a fresh interpreter."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path


def test_modelshield_scan_can_be_called_again_and_again(tmp_path: Path) -> None:
    # importing modelshield.scan (the module) used to rebind the package attribute, so the second
    # modelshield.scan(...) raised "'module' object is not callable"
    model = tmp_path / "w.pkl"
    model.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    code = textwrap.dedent(
        f"""
        import modelshield
        verdicts = [modelshield.scan([{str(model)!r}]).verdict.value for _ in range(3)]
        import modelshield.scan
        verdicts.append(modelshield.scan({str(model)!r}).verdict.value)
        print(",".join(verdicts))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pass,pass,pass,pass"


def test_a_rule_declared_in_an_unloaded_module_keeps_its_severity() -> None:
    # get_rule loads every rule-declaring module before it falls back to the generic (medium) rule
    code = textwrap.dedent(
        """
        import sys
        from modelshield.rules import get_rule
        assert "modelshield.formats.onnx_shapes" not in sys.modules
        print(get_rule("ONNX-SHAPE-BOMB").severity.label, get_rule("NO-SUCH-RULE").severity.label)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["high", "medium"]
