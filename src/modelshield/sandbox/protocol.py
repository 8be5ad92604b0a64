"""The event channel from the sandboxed child to the parent.

The child writes one JSON line per event to an inherited file descriptor. Each line carries a
sequence number and an HMAC keyed with a secret the parent sends over stdin before anything
untrusted runs; the key lives only in the audit hook's closure. A payload that writes to the
channel cannot produce valid lines, one that closes it loses the end-of-run marker, and the
parent reports both as tampering. Standard library only: this module runs in the child.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

#: Kind of the last line of a run that completed normally.
END = "end"
MAC_BYTES = 16
MAX_LINE = 64 * 1024


def _mac(key: bytes, seq: int, body: str) -> str:
    return hmac.new(key, f"{seq}\n{body}".encode(), hashlib.sha256).hexdigest()[: MAC_BYTES * 2]


def encode(key: bytes, seq: int, record: dict[str, Any]) -> bytes:
    """One authenticated line: ``{"seq":..,"body":{..},"mac":..}`` + newline."""
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), default=repr)
    if len(body) > MAX_LINE:
        record = {**{k: v for k, v in record.items() if k in {"kind", "event", "rule"}}, "truncated": True}
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), default=repr)
    line = json.dumps({"seq": seq, "body": body, "mac": _mac(key, seq, body)}, separators=(",", ":"))
    return line.encode() + b"\n"


@dataclass
class Decoded:
    """What the parent read from the channel: valid records, problems, and whether it ended."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ended: bool = False


def decode(key: bytes, data: bytes) -> Decoded:
    """Verify and decode the whole channel output (sequence, MAC, end marker last)."""
    out = Decoded()
    expected = 0
    for number, raw in enumerate(data.split(b"\n")):
        if not raw:
            continue
        problem = _decode_line(key, raw, expected, out)
        if problem:
            out.problems.append(f"line {number + 1}: {problem}")
            continue
        expected += 1
    return out


def _decode_line(key: bytes, raw: bytes, expected: int, out: Decoded) -> str:
    try:
        outer = json.loads(raw)
        seq, body, mac = outer["seq"], outer["body"], outer["mac"]
        record = json.loads(body)
    except (ValueError, KeyError, TypeError):
        return f"malformed line {raw[:80]!r}"
    if not isinstance(seq, int) or not isinstance(record, dict):
        return "malformed line"
    if not hmac.compare_digest(str(mac), _mac(key, seq, str(body))):
        return f"forged line (bad MAC) {raw[:80]!r}"
    if seq != expected:
        return f"out-of-order line (seq {seq}, expected {expected})"
    if out.ended:
        return f"line after the end-of-run marker: {record.get('kind')}"
    if record.get("kind") == END:
        out.ended = True
    out.records.append(record)
    return ""
