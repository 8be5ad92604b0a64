"""``modelshield demo``: build harmless sample models, scan them, show the report.

Benign samples are written by the real libraries when they are installed (NumPy, PyTorch,
scikit-learn); malicious samples are hand-assembled pickles whose payload would only create a
canary file inside the demo folder. The scan never executes them, and the demo proves it by
checking that the canary does not exist afterwards.
"""

from __future__ import annotations

import gzip
import io
import pickle
import shlex
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from modelshield.types import ScanReport

CANARY_NAME = "CANARY-if-this-exists-a-payload-ran"


def _proto2_call(module: str, name: str, arg: str) -> bytes:
    """PROTO 2, GLOBAL module.name, (arg,), REDUCE, STOP: what ``module.name(arg)`` pickles to."""
    enc = arg.encode()
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + len(enc).to_bytes(4, "little") + enc + b"\x85R."


def _malicious_samples(folder: Path, canary: Path) -> dict[str, bytes]:
    touch = f"touch {shlex.quote(str(canary))}"
    write_py = f"open({str(canary)!r}, 'w').write('pwned')"
    system = _proto2_call("os", "system", touch)
    torch_zip = io.BytesIO()
    with zipfile.ZipFile(torch_zip, "w") as zf:
        zf.writestr("evil_model/data.pkl", _proto2_call("subprocess", "getoutput", touch))
        zf.writestr("evil_model/version", "3\n")
        zf.writestr("evil_model/byteorder", "little")
    return {
        "evil-os-system.pkl": system,
        "evil-exec-renamed.safetensors": _proto2_call("builtins", "exec", write_py),
        "evil-torch-checkpoint.pt": torch_zip.getvalue(),
        # nullifAI-style: the payload runs, then the stream breaks so naive scanners give up.
        "evil-broken-stream.pkl": system[:-1] + b"\xff\xfe garbage",
        "evil-compressed.joblib.gz": gzip.compress(_proto2_call("runpy", "run_path", str(canary))),
    }


def _benign_samples(folder: Path) -> list[tuple[str, Callable[[Path], None]]]:
    def plain(obj: object, protocol: int) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            path.write_bytes(pickle.dumps(obj, protocol))

        return write

    samples: list[tuple[str, Callable[[Path], None]]] = [
        ("plain-data-protocol4.pkl", plain({"lr": 0.01, "layers": [64, 32]}, 4)),
        ("plain-data-protocol0.pkl", plain(["a", 1, 2.5, None], 0)),
    ]
    try:
        import numpy as np

        samples.append(("weights.npy", lambda p: np.save(p, np.arange(12, dtype=np.float32).reshape(3, 4))))
    except ImportError:
        pass
    try:
        import torch

        def torch_model(path: Path) -> None:
            torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()).state_dict(), path)

        samples.append(("state-dict.pt", torch_model))
    except ImportError:
        pass
    try:
        import joblib
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        def sklearn_model(path: Path) -> None:
            model = make_pipeline(StandardScaler(), LogisticRegression())
            model.fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]], [0, 1, 0, 1])
            joblib.dump(model, path)

        samples.append(("sklearn-pipeline.joblib", sklearn_model))
    except ImportError:
        pass
    return samples


def build_samples(folder: Path) -> tuple[list[Path], list[Path], Path]:
    """Write the samples into ``folder``; return (benign paths, malicious paths, canary path)."""
    folder.mkdir(parents=True, exist_ok=True)
    canary = folder / CANARY_NAME
    benign: list[Path] = []
    for name, write in _benign_samples(folder):
        path = folder / "benign" / name
        path.parent.mkdir(exist_ok=True)
        write(path)
        benign.append(path)
    malicious: list[Path] = []
    for name, data in _malicious_samples(folder, canary).items():
        path = folder / "malicious" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        malicious.append(path)
    return benign, malicious, canary


def _blocking_paths(report: ScanReport) -> set[str]:
    return {a.path for a in report.artifacts if any(f.severity >= report.fail_on for f in a.findings)}


def run_demo(keep: Path | None, fmt: str) -> int:
    """Build, scan, print; exit 0 when every malicious sample is flagged, benign ones pass, no canary."""
    from modelshield.render import render
    from modelshield.render.text import summary_line
    from modelshield.scan import Scanner

    with tempfile.TemporaryDirectory(prefix="modelshield-demo-") as tmp:
        folder = keep or Path(tmp)
        benign, malicious, canary = build_samples(folder)
        report = Scanner().scan([str(folder)])
        sys.stdout.write(render(report, fmt))
        flagged = _blocking_paths(report)
        missed = [p for p in malicious if str(p) not in flagged]
        false_alarms = [p for p in benign if str(p) in flagged]
        err = sys.stderr
        print(f"\nsamples in {folder}{'' if keep else ' (temporary)'}", file=err)
        print(f"  malicious flagged: {len(malicious) - len(missed)}/{len(malicious)}", file=err)
        print(f"  benign passed:     {len(benign) - len(false_alarms)}/{len(benign)}", file=err)
        print(f"  canary file exists: {canary.exists()} (a payload would have created it)", file=err)
        print(summary_line(report), file=err)
        for path in missed:
            print(f"  MISSED {path}", file=err)
        for path in false_alarms:
            print(f"  FALSE ALARM {path}", file=err)
        return 0 if not missed and not false_alarms and not canary.exists() else 1
