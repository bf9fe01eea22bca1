"""Reading Claude's stream-json and deciding what a run's outcome was. Pure functions, no I/O.

Order of the failure classes (DESIGN.md "Failure classes"): cancelled (the user asked), timeout (our own
deadline), auth_expired, capacity_reached (with the reset time), exit_code (anything else). An API failure
arrives as ``subtype: "success"`` with ``is_error: true``: ``subtype`` is never read alone.

The shapes, recorded from the real CLI (2.1.332) against tests/doubles/fake_anthropic.py: an API failure ends
with ``terminal_reason: "api_error"``, ``api_error_status`` and ``api_error_type`` (the API's error type:
``authentication_error``, ``permission_error``, ``rate_limit_error``, ``overloaded_error``) on the result and
on a synthetic ``assistant`` event whose ``error`` is the CLI's own word (``authentication_failed``,
``rate_limit``, ``server_error``); a used-up subscription adds ``api_error: "usage_limit_reached"`` with
``api_error_params.rate_limit_info.resetsAt`` and a ``rate_limit_event`` whose status is ``rejected``.
A run whose subagents work in the background (the CLI's default) prints one ``result`` per turn of the
main agent (``result_index`` 0, 1, ...): usage adds their turns and tokens, ``total_cost_usd`` is the
session's running total.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ccr.core.model import AuthTarget, ErrorType, RateLimit, Usage

AUTH_STATUSES = frozenset({401})
CAPACITY_STATUSES = frozenset({429, 529})
# assistant.error (the CLI's word), api_error / api_error_type (the API's): either kind, in one set per class.
AUTH_ERRORS = frozenset(
    {"authentication_failed", "oauth_token_expired", "invalid_api_key", "authentication_error", "permission_error"}
)
CAPACITY_ERRORS = frozenset(
    {"rate_limit", "overloaded", "usage_limit", "usage_limit_reached", "rate_limit_error", "overloaded_error"}
)
AUTH_TEXT = re.compile(
    r"please run /login|failed to authenticate|oauth (?:token|session) (?:has )?expired|invalid api key"
    r"|authentication_failed|invalid bearer token|not logged in",
    re.IGNORECASE,
)
CAPACITY_TEXT = re.compile(
    r"usage limit|session limit|rate limit|rate_limit|overloaded|limit reached|limit will reset|resets \d",
    re.IGNORECASE,
)
MESSAGE_MAX = 2000


@dataclass
class StreamState:
    """What the classifier needs from one Claude run, accumulated event by event."""

    session_id: str | None = None
    result: dict[str, Any] | None = None  # the last result event
    results: list[dict[str, Any]] = field(default_factory=list)  # every one (one per main-agent turn)
    assistant_errors: list[str] = field(default_factory=list)  # assistant.error, api_error, api_error_type
    rejected_reset: int | None = None
    rate_limit_rejected: bool = False
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)  # the plan's windows, as last reported
    events: int = 0

    def feed_line(self, line: str) -> dict[str, Any] | None:
        """Parse one stdout line; returns the event, or None when the line is not a JSON object."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        self.feed(event)
        return event

    def feed(self, event: dict[str, Any]) -> None:
        self.events += 1
        session = event.get("session_id")
        if isinstance(session, str) and session:
            self.session_id = session
        kind = event.get("type")
        if kind == "result":
            self.result = event
            self.results.append(event)
        elif kind == "assistant":
            self.assistant_errors += [event[k] for k in ("error", "api_error", "api_error_type") if _word(event.get(k))]
            params = event.get("api_error_params")
            if isinstance(params, dict):
                self._rate_limit(params.get("rate_limit_info"))
        elif kind == "rate_limit_event":
            self._rate_limit(event.get("rate_limit_info"))

    def _rate_limit(self, info: Any) -> None:
        if not isinstance(info, dict):
            return
        for name, window in (info.get("unifiedWindows") or {}).items():
            if isinstance(window, dict):
                self.windows[str(name)] = {**self.windows.get(str(name), {}), **window}
        kind = info.get("rateLimitType")
        if isinstance(kind, str):  # the window this event is about, with its status
            own = {"status": info.get("status"), "resetsAt": info.get("resetsAt")}
            if isinstance(info.get("utilization"), int | float):
                own["utilization"] = info["utilization"]
            self.windows[kind] = {**self.windows.get(kind, {}), **{k: v for k, v in own.items() if v is not None}}
        if info.get("status") == "rejected":
            self.rate_limit_rejected = True
            resets = info.get("resetsAt")
            if isinstance(resets, int | float) and not isinstance(resets, bool):
                self.rejected_reset = int(resets)


class JobFailure(Exception):
    """A classified failure raised by a pipeline step: the run stops and reports it."""

    def __init__(
        self,
        error_type: ErrorType,
        message: str,
        reset_time: dt.datetime | None = None,
        auth_target: AuthTarget | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.reset_time = reset_time
        self.auth_target = auth_target

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.error_type, self.message, self.reset_time, self.auth_target)


@dataclass(frozen=True)
class Outcome:
    error_type: ErrorType | None  # None: success
    message: str
    reset_time: dt.datetime | None = None
    auth_target: AuthTarget | None = None  # auth_expired: whose credential was refused (claude's if unset)

    @property
    def ok(self) -> bool:
        return self.error_type is None


def classify(
    state: StreamState,
    *,
    exit_code: int | None,
    timed_out: bool = False,
    cancelled: bool = False,
    stderr_tail: str = "",
) -> Outcome:
    """The outcome of one Claude run."""
    result = state.result or {}
    result_text = _text(result.get("result"))
    errors = " ".join(str(e) for e in result.get("errors") or [] if isinstance(e, str))
    status = result.get("api_error_status")
    texts = " ".join(t for t in (result_text, errors, stderr_tail) if t)
    words = {*state.assistant_errors, *(result[k] for k in ("api_error", "api_error_type") if _word(result.get(k)))}

    if cancelled:
        return Outcome(ErrorType.CANCELLED, "cancelled on request")
    if timed_out:
        return Outcome(ErrorType.TIMEOUT, "the task's deadline (timeoutSeconds) passed")
    if not _failed(state, exit_code):
        return Outcome(None, _clip(result_text or "done"))
    if status in AUTH_STATUSES or AUTH_ERRORS.intersection(words) or AUTH_TEXT.search(texts):
        return Outcome(ErrorType.AUTH_EXPIRED, _clip(result_text or _last_line(stderr_tail) or "authentication failed"))
    if (
        status in CAPACITY_STATUSES
        or state.rate_limit_rejected
        or CAPACITY_ERRORS.intersection(words)
        or CAPACITY_TEXT.search(texts)
    ):
        reset = dt.datetime.fromtimestamp(state.rejected_reset, dt.UTC) if state.rejected_reset else None
        message = result_text or "usage limit reached"
        if reset:
            message = f"{message} (resets at {reset.isoformat()})"
        return Outcome(ErrorType.CAPACITY_REACHED, _clip(message), reset)
    return Outcome(ErrorType.EXIT_CODE, _clip(_failure_message(state, exit_code, errors, stderr_tail)))


def usage_of(state: StreamState) -> Usage | None:
    """Cost, tokens and turns from the result events: one result is taken as it is; several (one per turn of
    the main agent) add their turns, tokens and durations, and the cost is the last running total."""
    if not state.results:
        return None
    costs = [c for c in (_num(r.get("total_cost_usd")) for r in state.results) if c is not None]
    runs = [_result_usage(r) for r in state.results]
    total = runs[0]
    for run in runs[1:]:
        total = add_usage(total, run) or total
    return total.model_copy(update={"cost_usd": costs[-1] if costs else None})


def _result_usage(result: dict[str, Any]) -> Usage:
    raw_tokens = result.get("usage")
    tokens: dict[str, Any] = raw_tokens if isinstance(raw_tokens, dict) else {}
    return Usage(
        input_tokens=_int(tokens.get("input_tokens")),
        output_tokens=_int(tokens.get("output_tokens")),
        cache_read_tokens=_int(tokens.get("cache_read_input_tokens")),
        cache_creation_tokens=_int(tokens.get("cache_creation_input_tokens")),
        turns=_int(result.get("num_turns")),
        duration_ms=_int(result.get("duration_ms")),
    )


def rate_limits_of(state: StreamState, seen_at: dt.datetime) -> list[RateLimit] | None:
    """The plan's windows (5-hour, 7-day, ...) as the run last saw them."""
    found = []
    for name, window in sorted(state.windows.items()):
        resets = window.get("resetsAt")
        utilization = window.get("utilization")
        found.append(
            RateLimit(
                window=name,
                status=window["status"] if isinstance(window.get("status"), str) else None,
                utilization=float(utilization) if isinstance(utilization, int | float) else None,
                resets_at=dt.datetime.fromtimestamp(resets, dt.UTC) if isinstance(resets, int | float) else None,
                seen_at=seen_at,
            )
        )
    return found or None


def add_usage(a: Usage | None, b: Usage | None) -> Usage | None:
    """Sum two runs' usage (orchestrator + worker); a field stays None only when both are None."""
    if a is None or b is None:
        return a or b
    fields: dict[str, Any] = {}
    for name in Usage.model_fields:
        x, y = getattr(a, name), getattr(b, name)
        fields[name] = None if x is None and y is None else (x or 0) + (y or 0)
    return Usage(**fields)


def structured_output(state: StreamState) -> dict[str, Any] | None:
    """The ``--json-schema`` answer (the CLI's ``StructuredOutput`` tool call, copied into the result as
    ``structured_output``), else JSON in the result text."""
    result = state.result or {}
    value = result.get("structured_output")
    if isinstance(value, dict):
        return value
    text = _text(result.get("result"))
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            parsed = json.loads(match.group(0))
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def result_text(state: StreamState) -> str:
    """Claude's final message: the last result's text (an earlier one's when the last is empty)."""
    return next((t for t in (_text(r.get("result")) for r in reversed(state.results)) if t), "")


def _failed(state: StreamState, exit_code: int | None) -> bool:
    result = state.result
    if result is None:
        return True
    return bool(result.get("is_error")) or result.get("subtype") != "success" or exit_code not in (0, None)


def _failure_message(state: StreamState, exit_code: int | None, errors: str, stderr_tail: str) -> str:
    result = state.result
    if result is None:
        tail = _last_line(stderr_tail)
        return f"claude exited with code {exit_code} without a result" + (f": {tail}" if tail else "")
    reason = result.get("terminal_reason") or result.get("subtype") or "error"
    if result.get("subtype") == "error_max_turns":
        reason = "max_turns"
    detail = errors or _text(result.get("result")) or f"exit code {exit_code}"
    return f"{reason}: {detail}"


def _word(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
