"""Service configuration: the data dir, the database URL and the knobs of queue, scheduler and uploads.

Command-line options win over environment variables, which win over the defaults. Standard library only.

Data dir layout::

    DATA_DIR/catalog.db          the SQLite database (when no --database-url is given)
    DATA_DIR/blobs/ab/abcd...    stored files, content-addressed by SHA-256 (read-only)
    DATA_DIR/tmp/                uploads in progress (removed on failure)
    DATA_DIR/work/               folders materialised for scans (removed afterwards)
    DATA_DIR/keys/service.key    the service's Ed25519 signing key (0600) and service.pub
    DATA_DIR/advisories.json     a refreshed advisory database (``modelshield advisories update``)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from modelshield.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_WORKERS = 2
ENV_DATA_DIR = "MODELSHIELD_DATA_DIR"
ENV_DATABASE_URL = "MODELSHIELD_DATABASE_URL"
ENV_ADMIN_TOKEN = "MODELSHIELD_ADMIN_TOKEN"
ENV_PARENT_PID = "MODELSHIELD_PARENT_PID"


def default_data_dir() -> Path:
    """``$MODELSHIELD_DATA_DIR``, else ``$XDG_DATA_HOME/modelshield``, else ``~/.local/share/modelshield``."""
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "modelshield"


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number", hint=f"unset {name} or give a number") from None
    if value <= 0:
        raise UsageError(f"{name} must be positive, got {text}", hint=f"unset {name} or give a positive number")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a service process needs to know; the same for serve and its workers."""

    data_dir: Path
    database_url: str
    lease_seconds: float = 30.0
    max_attempts: int = 3
    max_upload_bytes: int = 1024 << 20
    max_model_bytes: int = 64 << 30
    verify_interval_s: float = 3600.0
    attestation_days: float = 30.0
    renew_before_days: float = 7.0
    scheduler_tick_s: float = 10.0
    job_timeout_s: float = 3600.0
    session_hours: float = 12.0
    default_profile: str = "internal"

    @property
    def renew_window_s(self) -> float:
        """Attestations are renewed this long before they expire (at most a quarter of their life)."""
        return min(self.renew_before_days, self.attestation_days / 4) * 86400

    @property
    def blob_dir(self) -> Path:
        """Where stored files live, by SHA-256."""
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        """Uploads in progress (same file system as the blobs, so storing is a rename)."""
        return self.data_dir / "tmp"

    @property
    def work_dir(self) -> Path:
        """Folders materialised for scans."""
        return self.data_dir / "work"

    @property
    def key_path(self) -> Path:
        """The service's private signing key."""
        return self.data_dir / "keys" / "service.key"

    @property
    def is_sqlite(self) -> bool:
        """True when the database is a SQLite file."""
        return self.database_url.startswith("sqlite")

    def ensure_dirs(self) -> None:
        """Create the data dir (0700) and its folders."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for folder in (self.blob_dir, self.tmp_dir, self.work_dir, self.key_path.parent):
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UsageError(
                f"cannot create the data dir {self.data_dir}: {exc.strerror}",
                hint="choose a writable folder with --data-dir",
            ) from None

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def load_settings(
    data_dir: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    *,
    lease_seconds: float | None = None,
    max_attempts: int | None = None,
    max_upload_mb: float | None = None,
    verify_interval_s: float | None = None,
    attestation_days: float | None = None,
) -> Settings:
    """Settings from the options given, then the environment, then the defaults."""
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = folder.absolute()
    url = database_url or os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{folder / 'catalog.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # the driver we ship
    if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
        raise UsageError(
            f"unsupported database URL {url.split('://', 1)[0]}://...",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        )
    upload_mb = max_upload_mb if max_upload_mb is not None else _env_number("MODELSHIELD_MAX_UPLOAD_MB", 1024)
    return Settings(
        data_dir=folder,
        database_url=url,
        lease_seconds=lease_seconds or _env_number("MODELSHIELD_LEASE_SECONDS", 30.0),
        max_attempts=max_attempts or int(_env_number("MODELSHIELD_MAX_ATTEMPTS", 3)),
        max_upload_bytes=int(upload_mb * (1 << 20)),
        verify_interval_s=verify_interval_s or _env_number("MODELSHIELD_VERIFY_INTERVAL", 3600.0),
        attestation_days=attestation_days or _env_number("MODELSHIELD_ATTESTATION_DAYS", 30.0),
        scheduler_tick_s=_env_number("MODELSHIELD_SCHEDULER_TICK", 10.0),
        job_timeout_s=_env_number("MODELSHIELD_JOB_TIMEOUT", 3600.0),
    )
