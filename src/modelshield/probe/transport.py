"""Transport and access checks: TLS, key enforcement, ``/v1/models``, error bodies.

:func:`check_endpoint` returns findings, the ``/v1/models`` answer, the model to probe, and a
fatal reason when the endpoint cannot be probed at all (unreachable, TLS refused, key rejected).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelshield.probe.client import ChatClient, Reply, host_is_loopback
from modelshield.probe.report import ProbeFinding

#: Signs of a stack trace or an internal path in an error body.
_LEAK_PATTERNS = {
    "python-traceback": re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+"),
    "java-stack": re.compile(r"\bat [a-z]+(?:\.[A-Za-z0-9_$]+){2,}\([A-Za-z0-9_]+\.java:\d+\)"),
    "go-panic": re.compile(r"\bpanic: |goroutine \d+ \[running\]"),
    "node-stack": re.compile(r"\bat [^\s(]+ \((?:/|[A-Z]:\\)[^)]+:\d+:\d+\)"),
    "internal-path": re.compile(
        r"(?:/home/[\w.-]+/|/usr/(?:local/)?lib/python3|site-packages/|/opt/[\w.-]+/|/srv/|C:\\Users\\)"
    ),
}


@dataclass(slots=True)
class EndpointState:
    """What the transport checks learned."""

    findings: list[ProbeFinding] = field(default_factory=list)
    models: Any = None
    model: str | None = None
    fatal: str | None = None
    fatal_hint: str = ""


def _leak(reply: Reply) -> str | None:
    for name, pattern in _LEAK_PATTERNS.items():
        found = pattern.search(reply.body)
        if found:
            return f"{name}: {found.group(0)[:80]!r}"
    return None


def _fatal_for(reply: Reply, what: str, url: str, key_given: bool) -> tuple[str, str]:
    if reply.error == "tls":
        return (
            f"TLS failure talking to {url}: {reply.detail}",
            "the certificate is not trusted; fix it, or pass --insecure to probe anyway (reported as a finding)",
        )
    if reply.error == "unreachable":
        return f"endpoint {url} is unreachable: {reply.detail}", "check the URL and that the server is running"
    if reply.error == "timeout":
        return f"endpoint {url} did not answer {what} in time ({reply.detail})", "raise --timeout or check the server"
    if reply.status in {401, 403}:
        hint = (
            "the key was rejected: check --api-key-env" if key_given else "the endpoint needs a key: --api-key-env VAR"
        )
        return f"endpoint {url} answered {reply.status} to {what}", hint
    return (
        f"endpoint {url} answered {what} with {reply.error} ({reply.detail[:80]})",
        "check that it is OpenAI-compatible",
    )


def check_endpoint(client: ChatClient, url: str, *, insecure: bool) -> EndpointState:
    """Run the transport and access checks, in order, stopping at the first fatal problem."""
    state = EndpointState()
    parts = urlsplit(url)
    if parts.scheme == "http" and not host_is_loopback(url):
        state.findings.append(
            ProbeFinding(
                "PROBE-PLAINTEXT-HTTP",
                "high",
                "transport",
                f"the endpoint is plain HTTP on a non-loopback host ({parts.hostname}): "
                "prompts and keys travel in clear",
            )
        )
    if parts.scheme == "https" and insecure:
        state.findings.append(
            ProbeFinding(
                "PROBE-TLS-UNVERIFIED",
                "medium",
                "transport",
                "the certificate was not verified (--insecure): the endpoint's identity is unproven",
            )
        )
    models = client.get("/models")
    if not models.ok:
        if models.status == 404 or (models.error or "").startswith("http-5") or models.error == "non-json":
            state.findings.append(
                ProbeFinding(
                    "PROBE-MODELS-UNAVAILABLE",
                    "medium",
                    "access",
                    f"/v1/models did not answer usefully ({models.error})",
                    evidence=models.detail[:200],
                )
            )
        else:
            state.fatal, state.fatal_hint = _fatal_for(models, "/v1/models", url, bool(client.api_key))
            return state
    else:
        state.models = models.data
    state.model = _choose_model(state, client.model)
    client.model = state.model
    if client.api_key:
        _check_key_enforced(client, state)
    _check_error_bodies(client, state, [models])
    return state


def _choose_model(state: EndpointState, wanted: str | None) -> str | None:
    data = state.models.get("data") if isinstance(state.models, dict) else None
    ids = [str(e.get("id")) for e in data if isinstance(e, dict) and e.get("id")] if isinstance(data, list) else []
    if state.models is not None and not ids:
        state.findings.append(
            ProbeFinding(
                "PROBE-MODELS-EMPTY", "medium", "access", "/v1/models lists no model", evidence=str(state.models)[:200]
            )
        )
    if wanted and ids and wanted not in ids:
        state.findings.append(
            ProbeFinding(
                "PROBE-MODEL-NOT-LISTED",
                "medium",
                "access",
                f"/v1/models does not list the model {wanted!r}",
                evidence=f"listed: {', '.join(ids[:10])}",
            )
        )
    if wanted:
        return wanted
    return ids[0] if ids else None


def _check_key_enforced(client: ChatClient, state: EndpointState) -> None:
    anonymous = [
        client.get("/models", auth=False),
        client.chat([{"role": "user", "content": "Say OK."}], max_tokens=1, auth=False),
    ]
    accepted = [r for r in anonymous if r.ok]
    if accepted:
        state.findings.append(
            ProbeFinding(
                "PROBE-KEY-NOT-ENFORCED",
                "high",
                "access",
                "the endpoint answered requests sent without the API key",
                evidence=f"{len(accepted)} of {len(anonymous)} anonymous requests succeeded",
            )
        )
    _check_error_bodies(client, state, anonymous)


def _check_error_bodies(client: ChatClient, state: EndpointState, earlier: list[Reply]) -> None:
    """Malformed requests must get error answers that leak no stack trace or internal path."""
    replies = list(earlier)
    replies.append(client.post("/chat/completions", {"messages": 5, "model": client.model or ""}))
    wrong_types = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots", "temperature": "hot"}
    replies.append(client.post("/chat/completions", wrong_types))
    replies.append(client.get("/this-path-does-not-exist"))
    for reply in replies:
        leak = _leak(reply)
        if leak:
            state.findings.append(
                ProbeFinding(
                    "PROBE-ERROR-LEAK",
                    "medium",
                    "information-leak",
                    f"an error answer (HTTP {reply.status}) exposes internals",
                    evidence=leak,
                )
            )
            return
