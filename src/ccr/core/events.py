"""Our own transcript events: ``{"type": "ccr", "event": ..., ..., "ts": ...}``, one JSON object a line.

The job pipeline writes phases, steps and the result; the local executor adds status markers. Both build
them here, so every reader (executor, operator, dashboard) sees one shape.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ccr.core.model import JobResult

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LOG_LIMIT = 4096


def ccr_event(event: str, **fields: Any) -> dict[str, Any]:
    ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return {"type": "ccr", "event": event, **fields, "ts": ts}


def dumps(payload: dict[str, Any]) -> str:
    """One compact JSON line (no newline)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)


def ccr_line(event: str, **fields: Any) -> str:
    return dumps(ccr_event(event, **fields))


def parse_line(line: str) -> dict[str, Any] | None:
    """A transcript line as a dict, or None when it is not a JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def result_line(result: JobResult, limit: int | None = None) -> str:
    """The result event as one JSON line (no newline); with ``limit``, shortened to fit that many bytes,
    dropping the message's tail first."""
    payload: dict[str, Any] = {"type": "ccr", "event": "result", **result.dump()}
    line = dumps(payload)
    if limit is None or len(line.encode()) < limit:
        return line
    message = str(payload.get("message") or "")
    while message and len(line.encode()) >= limit:
        overflow = len(line.encode()) - limit + 1
        message = message[: max(len(message) - overflow - 1, 0)]
        payload["message"] = message + "…"
        line = dumps(payload)
    for key in ("usage", "sessionId", "message"):
        if len(line.encode()) < limit:
            break
        payload.pop(key, None)
        line = dumps(payload)
    return line
