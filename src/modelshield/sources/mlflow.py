"""Models of an MLflow tracking server or model registry (the ``mlflow`` extra; imported lazily).

Targets:

``mlflow://models/NAME/VERSION[/path]``  (also MLflow's own ``models:/NAME/VERSION[/path]``)
    a registered model version; ``NAME@ALIAS`` in place of ``NAME/VERSION`` names it by alias.
``runs:/RUN_ID/PATH``  (also ``mlflow://runs/RUN_ID/PATH``)
    artifacts of a run.

The store is the one MLflow itself uses: ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``
when the registry lives elsewhere), which must be set: MLflow's own default would create a new
empty store in the working folder. The version or run is looked up first (a missing one is a
clear error), then its artifacts are downloaded with ``mlflow.artifacts.download_artifacts`` into
a private temporary folder, scanned like any folder, and deleted when the process exits.
Nothing downloaded is loaded or executed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from modelshield.errors import SourceError
from modelshield.formats.interface import Blob
from modelshield.sources.local import LocalSource

PREFIXES = ("mlflow://", "models:/", "runs:/")

_MODEL = re.compile(r"^(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w.-]+))(?P<path>/.*)?$")
_RUN = re.compile(r"^(?P<run>[0-9A-Za-z_-]+)(?P<path>/.*)?$")
_HINT = "use mlflow://models/NAME/VERSION, mlflow://models/NAME@ALIAS or runs:/RUN_ID/PATH"


class MlflowTarget(NamedTuple):
    """A parsed MLflow target: a model version (by number or alias) or a run, plus a path inside."""

    uri: str  # what mlflow.artifacts.download_artifacts takes: models:/... or runs:/...
    model: str | None = None
    version: str | None = None
    alias: str | None = None
    run: str | None = None


def parse_target(target: str) -> MlflowTarget:
    """The MLflow URI of ``target``; SourceError when it is not a well-formed MLflow target."""
    if target.startswith("mlflow://models/"):
        rest, kind = target[len("mlflow://models/") :], "models"
    elif target.startswith("models:/"):
        rest, kind = target[len("models:/") :], "models"
    elif target.startswith("mlflow://runs/"):
        rest, kind = target[len("mlflow://runs/") :], "runs"
    elif target.startswith("runs:/"):
        rest, kind = target[len("runs:/") :], "runs"
    else:
        raise SourceError(f"{target}: not an MLflow model or run URI", hint=_HINT)
    rest = rest.rstrip("/")
    if ".." in rest.split("/"):
        raise SourceError(f"{target}: '..' is not allowed in an MLflow URI", hint=_HINT)
    if kind == "models":
        match = _MODEL.match(rest)
        if not match:
            raise SourceError(f"{target}: expected a model NAME and a VERSION number or @ALIAS", hint=_HINT)
        return MlflowTarget(f"models:/{rest}", match["name"], match["version"], match["alias"])
    match = _RUN.match(rest)
    if not match:
        raise SourceError(f"{target}: expected a run id", hint=_HINT)
    return MlflowTarget(f"runs:/{rest}", run=match["run"])


def check_tracking_uri(target: str) -> str:
    """``MLFLOW_TRACKING_URI``, checked: set, and for a local store, one that exists."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise SourceError(
            f"{target}: MLFLOW_TRACKING_URI is not set",
            hint="export MLFLOW_TRACKING_URI=http://your-mlflow:5000 (or sqlite:///path/to/mlflow.db)",
        )
    local = None
    if uri.startswith("sqlite:///"):
        local = uri[len("sqlite:///") :].split("?", 1)[0]  # sqlite:////abs/path or sqlite:///relative
    elif uri.startswith("file://"):
        local = uri[len("file://") :]
    elif "://" not in uri:
        local = uri
    if local is not None and local != ":memory:" and not os.path.exists(local):
        raise SourceError(
            f"{target}: the MLflow store {uri} does not exist ({local})",
            hint="check MLFLOW_TRACKING_URI (MLflow would create an empty store there)",
        )
    return uri


class MlflowSource:
    """A registered model version or run artifacts, downloaded to a temporary folder and scanned."""

    def accepts(self, target: str) -> bool:
        """``mlflow://``, ``models:/`` and ``runs:/`` targets."""
        return target.startswith(PREFIXES)

    def blobs(self, target: str) -> Iterator[Blob]:
        """Every downloaded artifact file, in a stable order."""
        yield from LocalSource().blobs(download(target))


def download(target: str, dst: str | None = None) -> str:
    """Download the artifacts of ``target`` (into ``dst``, else a temporary folder removed at exit).

    Returns the local file or folder. A model, version, alias or run that does not exist, an
    unset or missing store, or a missing ``mlflow`` package is a :class:`SourceError`.
    """
    parsed = parse_target(target)
    check_tracking_uri(target)
    try:
        import mlflow.artifacts
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise SourceError(
            f"{target}: MLflow targets need the mlflow client, which is not installed",
            hint="pip install 'modelshield[mlflow]'",
        ) from None
    try:
        client = MlflowClient()
        if parsed.version is not None:
            client.get_model_version(str(parsed.model), parsed.version)
        elif parsed.alias is not None:
            client.get_model_version_by_alias(str(parsed.model), parsed.alias)
        else:
            client.get_run(str(parsed.run))
        folder = dst if dst is not None else _private_folder(parsed)
        return str(mlflow.artifacts.download_artifacts(artifact_uri=parsed.uri, dst_path=folder))
    except MlflowException as exc:
        raise SourceError(f"{target}: {_first_line(exc.message)}", hint=_not_found_hint(parsed)) from None
    except OSError as exc:
        raise SourceError(
            f"{target}: cannot download the artifacts ({exc.strerror or exc})", hint=_not_found_hint(parsed)
        ) from None


def _not_found_hint(parsed: MlflowTarget) -> str:
    if parsed.run is not None:
        return "check the run id and artifact path (mlflow runs list / the run's Artifacts tab) and MLFLOW_TRACKING_URI"
    return "check the model name and version or alias (MlflowClient().search_model_versions) and MLFLOW_TRACKING_URI"


def _private_folder(parsed: MlflowTarget) -> str:
    """A new temporary folder, deleted when the process exits (the scan reads it until then)."""
    import atexit
    import shutil
    import tempfile

    label = parsed.model or parsed.run or "artifacts"
    label = re.sub(r"[^\w.-]+", "_", label)[:40] + "-" + (parsed.version or parsed.alias or "run")
    folder = tempfile.mkdtemp(prefix=f"modelshield-mlflow-{label}-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else "MLflow error"
