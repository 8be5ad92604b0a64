"""A bounded HTTP client for OpenAI-compatible endpoints (``/v1/models``, ``/v1/chat/completions``).

Every request has a per-request timeout that also bounds the whole answer (a server that drips
bytes is cut off), a cap on the bytes read, and retries with backoff for transient answers
(connection refused, 429, 5xx). Failures are returned as classified :class:`Reply` values, never
raised: the runner turns them into coverage findings.
"""

from __future__ import annotations

import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelshield.probe.errors import ProbeError

#: Bytes read from one answer at most; the rest is not read (``too-large``).
DEFAULT_MAX_BYTES = 1 << 20
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSPORT_ERRORS = frozenset({"unreachable", "tls", "timeout"})


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: the assistant text when ``ok``, else ``error`` names what went wrong.

    ``error`` is one of ``unreachable``, ``tls``, ``timeout``, ``http-NNN``, ``non-json``,
    ``truncated``, ``too-large``, ``no-content``. ``body`` is the raw body (capped) for leak checks.
    """

    ok: bool
    status: int | None
    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    detail: str = ""
    body: str = ""
    attempts: int = 1
    elapsed: float = 0.0
    data: Any = None

    @property
    def transport_failure(self) -> bool:
        """True when nothing usable came back from the server at all."""
        return self.error in TRANSPORT_ERRORS


def base_url(url: str) -> str:
    """The API root ending in ``/v1`` for a URL given with or without it; UsageError-like on junk."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ProbeError(f"{url!r} is not an http(s) URL", hint="give the endpoint as http(s)://HOST[:PORT][/v1]")
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


class ChatClient:
    """Talks to one endpoint; thread-safe (one pooled httpx client shared by the workers)."""

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        insecure: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = 2,
    ) -> None:
        import httpx

        self.root = base_url(url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.max_bytes = max_bytes
        limits = httpx.Limits(max_connections=max(1, concurrency) + 1, max_keepalive_connections=max(1, concurrency))
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), verify=not insecure, limits=limits)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, *, auth: bool = True) -> Reply:
        """GET ``root + path`` and parse a JSON body."""
        return self._with_retries("GET", path, None, auth=auth)

    def post(self, path: str, body: dict[str, Any], *, auth: bool = True) -> Reply:
        """POST a JSON body to ``root + path``."""
        return self._with_retries("POST", path, body, auth=auth)

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float = 0.0,
        seed: int = 0,
        max_tokens: int = 96,
        user: str | None = None,
        auth: bool = True,
    ) -> Reply:
        """One chat completion; ``text`` is the first choice's message content."""
        body: dict[str, Any] = {
            "messages": messages,
            "temperature": temperature,
            "seed": seed,
            "max_tokens": max_tokens,
            "stream": False,
        }
        if self.model:
            body["model"] = self.model
        if user:
            body["user"] = user
        reply = self._with_retries("POST", "/chat/completions", body, auth=auth)
        if not reply.ok:
            return reply
        return _chat_reply(reply)

    def _with_retries(self, method: str, path: str, body: dict[str, Any] | None, *, auth: bool) -> Reply:
        started = time.monotonic()
        reply = Reply(False, None, error="unreachable")
        for attempt in range(1, self.retries + 2):
            reply = self._once(method, path, body, auth=auth)
            retry = reply.error == "unreachable" or (reply.status in RETRY_STATUSES and not reply.ok)
            if not retry or attempt > self.retries:
                break
            time.sleep(min(2.0, 0.25 * 2 ** (attempt - 1)))
        return _replace(reply, attempts=attempt, elapsed=time.monotonic() - started)

    def _once(self, method: str, path: str, body: dict[str, Any] | None, *, auth: bool) -> Reply:
        import httpx

        headers = {"accept": "application/json"}
        if auth and self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.timeout
        try:
            with self._http.stream(method, self.root + path, json=body, headers=headers) as response:
                raw, capped = bytearray(), False
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > self.max_bytes:
                        capped = True
                        break
                    if time.monotonic() > deadline:
                        return Reply(False, response.status_code, error="timeout", detail="answer not finished in time")
                status = response.status_code
                kind = response.headers.get("content-type", "")
        except httpx.TimeoutException:
            return Reply(False, None, error="timeout", detail=f"no answer within {self.timeout:g} s")
        except httpx.ConnectError as exc:
            if _is_tls(exc):
                return Reply(False, None, error="tls", detail=_short(exc))
            return Reply(False, None, error="unreachable", detail=_short(exc))
        except httpx.RemoteProtocolError as exc:
            return Reply(False, None, error="truncated", detail=_short(exc))
        except (httpx.TransportError, ssl.SSLError) as exc:
            error = "tls" if _is_tls(exc) else "unreachable"
            return Reply(False, None, error=error, detail=_short(exc))
        text = raw[: self.max_bytes].decode("utf-8", "replace")
        if capped:
            return Reply(
                False, status, error="too-large", detail=f"answer larger than {self.max_bytes} bytes", body=text
            )
        if status >= 400:
            return Reply(False, status, error=f"http-{status}", detail=text[:200], body=text)
        return _parse_body(status, text, kind)


def _parse_body(status: int, text: str, kind: str) -> Reply:
    if "text/event-stream" in kind or text.lstrip().startswith("data:"):
        return _parse_sse(status, text)
    try:
        data = json.loads(text)
    except ValueError:
        return Reply(False, status, error="non-json", detail=text[:120], body=text)
    return Reply(True, status, body=text, data=data)


def _parse_sse(status: int, text: str) -> Reply:
    """Assemble a streamed chat answer; a stream without ``[DONE]`` is truncated."""
    parts: list[str] = []
    usage: dict[str, int] = {}
    done = False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        try:
            event = json.loads(payload)
            delta = event["choices"][0].get("delta") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Reply(False, status, error="non-json", detail=payload[:120], body=text)
        parts.append(str(delta.get("content") or ""))
        if isinstance(event.get("usage"), dict):
            usage = _usage(event["usage"])
    if not done:
        return Reply(False, status, error="truncated", detail="stream ended without [DONE]", body=text)
    data = {"choices": [{"message": {"content": "".join(parts)}}], "usage": usage}
    return Reply(True, status, body=text, data=data)


def _chat_reply(reply: Reply) -> Reply:
    data = reply.data
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return _replace(reply, ok=False, error="no-content", detail="no choices[0].message.content in the answer")
    usage = _usage(data.get("usage")) if isinstance(data, dict) else {}
    return _replace(reply, text=str(content or ""), usage=usage)


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {k: int(v) for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}


def _replace(reply: Reply, **changes: Any) -> Reply:
    from dataclasses import replace

    return replace(reply, **changes)


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen) or "SSL" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return "certificate" in str(exc).lower() or "ssl" in str(exc).lower()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def host_is_loopback(url: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1 (plain HTTP there is not a transport finding)."""
    import ipaddress

    host = urlsplit(url).hostname or ""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
