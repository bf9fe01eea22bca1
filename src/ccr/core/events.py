"""Our own transcript events: ``{"type": "ccr", "event": ..., ..., "ts": ...}``, one JSON object a line.

The job pipeline writes phases, steps and the result; the local executor adds status markers. Both build
them here, so every reader (executor, operator, dashboard) sees one shape.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


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
