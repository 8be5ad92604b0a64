"""Identity of the serving model, and drift against a saved baseline (continuous verification).

The fingerprint has three parts: the ``/v1/models`` entry (volatile fields such as ``created``
dropped), the token counts the endpoint reports for fixed strings (a tokenizer and chat-template
signature), and the answers to fixed prompts at temperature 0 with a fixed seed (a weights
signature: a swapped or re-quantised model answers differently). Drift rules: a different model
entry or different token counts are drift; answers are drift when at least ``ANSWER_DRIFT_MIN``
of them differ (one differing answer is reported as a note, not an alarm).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from modelshield.probe.client import ChatClient
from modelshield.probe.errors import BaselineError

FINGERPRINT_VERSION = "1"
FINGERPRINT_SEED = 1234
ANSWER_DRIFT_MIN = 2
PROMPTS = (
    "Complete the sentence: The capital of France is",
    "Count from one to ten in words.",
    "Write one sentence about the sea.",
    "What is 17 times 23?",
    "Name three colours.",
)
TOKEN_STRINGS = (
    "The quick brown fox jumps over the lazy dog.",
    "def f(x):\n    return x ** 2  # 平方 🙂",
    "Zürich, Kraków, São Paulo, Ελλάδα, Россия, 東京",
)
_VOLATILE = {"created", "modified_at", "expires_at", "timestamp"}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in sorted(value.items()) if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def model_entry(models: Any, model: str | None) -> dict[str, Any] | None:
    """The ``/v1/models`` ``data`` entry of ``model`` (or the only one), stable fields only."""
    data = models.get("data") if isinstance(models, dict) else None
    if not isinstance(data, list):
        return None
    entries = [e for e in data if isinstance(e, dict)]
    chosen = next((e for e in entries if model and e.get("id") == model), None)
    if chosen is None and len(entries) == 1 and not model:
        chosen = entries[0]
    return _stable(chosen) if chosen is not None else None


def take(client: ChatClient, models: Any, *, max_tokens: int = 32) -> tuple[dict[str, Any], list[str]]:
    """Record the fingerprint; also returns the problems met (requests that failed)."""
    problems: list[str] = []
    answers: list[dict[str, Any]] = []
    for prompt in PROMPTS:
        reply = client.chat(
            [{"role": "user", "content": prompt}], temperature=0.0, seed=FINGERPRINT_SEED, max_tokens=max_tokens
        )
        if not reply.ok:
            problems.append(f"fingerprint prompt {prompt!r}: {reply.error} {reply.detail}".strip())
        answers.append(
            {
                "prompt": prompt,
                "sha256": hashlib.sha256(reply.text.encode()).hexdigest() if reply.ok else None,
                "excerpt": reply.text[:120] if reply.ok else None,
            }
        )
    tokens: list[int | None] = []
    for text in TOKEN_STRINGS:
        reply = client.chat([{"role": "user", "content": text}], temperature=0.0, seed=FINGERPRINT_SEED, max_tokens=1)
        count = reply.usage.get("prompt_tokens") if reply.ok else None
        if not reply.ok:
            problems.append(f"token count for a fixed string: {reply.error} {reply.detail}".strip())
        tokens.append(count)
    entry = model_entry(models, client.model)
    fingerprint = {
        "version": FINGERPRINT_VERSION,
        "model": client.model,
        "models_entry": entry,
        "models_entry_sha256": _digest(entry) if entry is not None else None,
        "prompt_tokens": tokens,
        "answers": answers,
    }
    fingerprint["sha256"] = _digest(
        {k: v for k, v in fingerprint.items() if k != "answers"} | {"answers": [a["sha256"] for a in answers]}
    )
    return fingerprint, problems


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Drift of ``current`` against ``baseline``: ``drift`` (bool), the reasons, and notes."""
    reasons: list[str] = []
    notes: list[str] = []
    if baseline.get("models_entry_sha256") != current.get("models_entry_sha256"):
        reasons.append("the /v1/models entry changed")
    old_tokens, new_tokens = baseline.get("prompt_tokens") or [], current.get("prompt_tokens") or []
    if old_tokens != new_tokens:
        reasons.append(f"reported token counts for fixed strings changed: {old_tokens} -> {new_tokens}")
    old_answers = [a.get("sha256") for a in baseline.get("answers") or []]
    new_answers = [a.get("sha256") for a in current.get("answers") or []]
    differing = sum(1 for a, b in zip(old_answers, new_answers, strict=False) if a != b)
    differing += abs(len(old_answers) - len(new_answers))
    if differing >= ANSWER_DRIFT_MIN:
        reasons.append(f"{differing} of {max(len(old_answers), len(new_answers))} fixed-prompt answers changed")
    elif differing:
        notes.append(f"{differing} fixed-prompt answer changed (below the drift threshold of {ANSWER_DRIFT_MIN})")
    return {
        "drift": bool(reasons),
        "reasons": reasons,
        "notes": notes,
        "answers_changed": differing,
        "baseline_sha256": baseline.get("sha256"),
        "current_sha256": current.get("sha256"),
    }


def save_baseline(path: Path, fingerprint: dict[str, Any], endpoint: str) -> None:
    """Write the fingerprint as a baseline file."""
    body = {"kind": "modelshield-probe-baseline", "endpoint": endpoint, "fingerprint": fingerprint}
    try:
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"cannot write baseline {path}: {exc.strerror}", hint="check the folder exists") from None


def load_baseline(path: Path) -> dict[str, Any]:
    """Read a baseline file written by ``--save-baseline``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror}", hint="check the path") from None
    except ValueError as exc:
        raise BaselineError(f"baseline {path} is not JSON ({exc})", hint="write it with --save-baseline") from None
    fingerprint = raw.get("fingerprint") if isinstance(raw, dict) else None
    if not isinstance(fingerprint, dict) or raw.get("kind") != "modelshield-probe-baseline":
        raise BaselineError(f"{path} is not a modelshield probe baseline", hint="write it with --save-baseline")
    return fingerprint
