"""``modelshield serve`` as a user starts it: a taken port is a clear error, and no worker is left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _cli() -> str:
    script = Path(sys.executable).with_name("modelshield")
    return str(script) if script.exists() else "modelshield"


def test_a_taken_port_is_a_clear_error_and_starts_no_worker(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MODELSHIELD_DATA_DIR": str(tmp_path / "data")}
        env.pop("MODELSHIELD_DATABASE_URL", None)
        proc = subprocess.run(
            [_cli(), "serve", "--port", str(port), "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(tmp_path / "data") not in ps, "a worker of the failed serve is still running"
