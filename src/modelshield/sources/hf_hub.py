"""Fetch a Hugging Face Hub repo into the local cache (``scan --online`` only; the ``hub`` extra).

Offline is the default: :mod:`modelshield.sources.hf_cache` scans what the cache already holds
and never touches the network. With ``--online`` the revision is resolved by the Hub and every
file the cache lacks is downloaded with ``huggingface_hub.snapshot_download`` into the same cache
(``$HF_HUB_CACHE`` ...), the way ``transformers`` would fetch it, so the bytes scanned are the
bytes a later ``from_pretrained`` loads. The endpoint (``HF_ENDPOINT``) and the token
(``HF_TOKEN`` or ``hf auth login``) are huggingface_hub's own settings.

Nothing downloaded is executed: the files are only scanned, like any other folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelshield.errors import SourceError

if TYPE_CHECKING:
    from pathlib import Path


class HubExtraMissing(SourceError):
    """``--online`` needs huggingface_hub, which is not installed."""


def download_snapshot(
    repo: str,
    revision: str | None,
    *,
    cache: Path,
    allow_patterns: Sequence[str] | None = None,
) -> Path:
    """Download ``repo`` at ``revision`` (default ``main``) into ``cache``; the snapshot folder.

    ``allow_patterns`` (globs such as ``*.safetensors``) limits what is fetched; the default
    fetches every file of the revision (a gate scans all that a loader could read). Errors become
    a :class:`SourceError` saying what failed: repo or revision not on the Hub, no access, no
    connection.
    """
    from pathlib import Path

    try:
        import httpx
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise HubExtraMissing(
            f"hf://{repo}: --online needs huggingface_hub, which is not installed",
            hint="pip install 'modelshield[hub]', or download the repo yourself and scan it offline",
        ) from None
    target = f"hf://{repo}" + (f"@{revision}" if revision else "")
    try:
        folder = snapshot_download(
            repo_id=repo,
            revision=revision,
            cache_dir=str(cache),
            allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
        )
    except GatedRepoError:
        raise SourceError(
            f"{target}: the repo is gated and this account has no access",
            hint="accept its terms on the Hub, then set HF_TOKEN (or run: hf auth login)",
        ) from None
    except RepositoryNotFoundError:
        raise SourceError(
            f"{target}: no such repo on the Hub (or it is private)",
            hint="check the repo id; for a private repo set HF_TOKEN (or run: hf auth login)",
        ) from None
    except RevisionNotFoundError:
        raise SourceError(
            f"{target}: revision {revision or 'main'!r} does not exist on the Hub",
            hint="use a branch, tag or commit hash of the repo",
        ) from None
    except LocalEntryNotFoundError as exc:  # the Hub could not be reached and the cache lacks files
        raise SourceError(
            f"{target}: cannot reach the Hub and the cache does not have this revision ({_first_line(exc)})",
            hint="check the network, HF_ENDPOINT and HF_HUB_OFFLINE",
        ) from None
    except (HfHubHTTPError, httpx.HTTPError) as exc:
        raise SourceError(
            f"{target}: download failed: {_first_line(exc)}", hint="check the network and HF_TOKEN"
        ) from None
    except ValueError as exc:  # huggingface_hub's HFValidationError: an id the Hub does not accept
        raise SourceError(f"{target}: {_first_line(exc)}", hint="use hf://org/name[@revision]") from None
    except OSError as exc:
        raise SourceError(
            f"{target}: download failed: {_first_line(exc)}", hint="check the network and the cache folder"
        ) from None
    return Path(folder)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
