"""Our own transcript events: ``{"type": "ccr", "event": ..., "ts": ...}``, one JSON object a line."""

from __future__ import annotations

import json
from typing import Any

from ccr.core.model import now


def ccr_event(event: str, **fields: Any) -> str:
    return json.dumps({"type": "ccr", "event": event, **fields, "ts": now().isoformat()}, default=str)


def parse_line(line: str) -> dict[str, Any] | None:
    """A transcript line as a dict, or None when it is not a JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
