"""Bad input stays loud: empty, tiny, random and truncated files with a model extension never pass.

Each file is scanned by the installed ``modelshield`` command in its own fresh process, as a CI job
would. The scan must exit non-zero with a non-passing verdict, and every such file must carry a
coverage or malformed-file finding (never a silent pass, never a traceback).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

EXTENSIONS = [
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".joblib",
    ".dill",
    ".npy",
    ".npz",
    ".onnx",
    ".h5",
    ".keras",
    ".gguf",
    ".safetensors",
    ".tflite",
    ".pb",
    ".mlmodel",
    ".zip",
    ".tar",
    ".7z",
    ".gz",
]
#: Rules that say "this could not be (fully) analysed" or "this is not the format it claims to be".
LOUD = {
    "UNKNOWN-CONTENT",
    "EMPTY-FILE",
    "PARSE-ERROR",
    "PICKLE-MALFORMED",
    "SAFETENSORS-HEADER-ABUSE",
    "LIMIT-EXCEEDED",
    "UNREADABLE",
}


def _cli() -> str:
    script = Path(sys.executable).with_name("modelshield")
    return str(script) if script.exists() else "modelshield"


def _truncated(tmp: Path) -> list[Path]:
    import numpy as np
    import torch

    out = []
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1000)}, buf)
    out.append(("cut.pt", buf.getvalue()[: len(buf.getvalue()) // 2]))
    buf = io.BytesIO()
    np.save(buf, np.zeros(1000))
    out.append(("cut.npy", buf.getvalue()[:100]))
    out.append(("cut.pkl", pickle.dumps({"a": list(range(1000))}, protocol=4)[:200]))
    header = b'{"a":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}'
    out.append(("cut.safetensors", len(header).to_bytes(8, "little") + header[:30]))
    paths = []
    for name, data in out:
        (tmp / name).write_bytes(data)
        paths.append(tmp / name)
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("bad-input")
    rng = random.Random(13)
    paths = []
    for ext in EXTENSIONS:
        for kind, data in (("empty", b""), ("tiny", b"\x00\x01"), ("random", rng.randbytes(4096))):
            path = tmp / f"{kind}{ext}"
            path.write_bytes(data)
            paths.append(path)
    return paths + _truncated(tmp)


def _scan(path: Path) -> tuple[Path, int, str, dict[str, object] | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSHIELD_")}
    proc = subprocess.run(
        [_cli(), "scan", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=path.parent,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = None
    return path, proc.returncode, proc.stderr, report


@pytest.fixture(scope="module")
def results(bad_files: list[Path]) -> dict[str, tuple[int, str, dict[str, object] | None]]:
    with ThreadPoolExecutor(max_workers=3) as pool:
        return {path.name: (rc, err, rep) for path, rc, err, rep in pool.map(_scan, bad_files)}


def test_no_bad_file_passes(results: dict[str, tuple[int, str, dict[str, object] | None]]) -> None:
    problems = []
    for name, (rc, err, report) in sorted(results.items()):
        if "Traceback" in err:
            problems.append(f"{name}: traceback on stderr: {err[-500:]}")
        elif report is None:
            problems.append(f"{name}: no JSON report (exit {rc}): {err[-300:]}")
        elif rc == 0 or report["verdict"] == "pass":
            problems.append(f"{name}: exit {rc}, verdict {report['verdict']}")
        else:
            rules = {f["rule_id"] for a in report["artifacts"] for f in a["findings"]}  # type: ignore[attr-defined]
            if not rules & LOUD:
                problems.append(f"{name}: no coverage or malformed-file finding, only {sorted(rules)}")
    assert not problems, "\n".join(problems)


def test_the_matrix_was_scanned(results: dict[str, tuple[int, str, dict[str, object] | None]]) -> None:
    assert len(results) == 3 * len(EXTENSIONS) + 4
