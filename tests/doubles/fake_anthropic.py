"""A stand-in for the Anthropic Messages API, for tests only: the REAL Claude Code CLI reaches it through
``ANTHROPIC_BASE_URL`` (see :func:`cli_env`).

What it serves
    ``POST /v1/messages`` (the CLI adds ``?beta=true``), streaming (real server-sent events: ``message_start``,
    ``content_block_start``/``content_block_delta``/``content_block_stop`` for ``text``, ``thinking``
    (``thinking_delta`` + ``signature_delta``) and ``tool_use`` (``input_json_delta``), ``ping``,
    ``message_delta`` with ``stop_reason`` and ``usage``, ``message_stop``) or as one JSON message when the
    request does not ask for a stream; ``POST /v1/messages/count_tokens``; ``HEAD``/``GET /api/hello`` (the
    CLI's connectivity probe); anything else is recorded and answered 404 with an API-shaped error, which the
    CLI tolerates for its optional calls. Recorded from 2.1.332: with the switches in :func:`cli_env`
    (``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` and friends) a ``claude -p`` run makes no request but
    ``/v1/messages`` and no DNS lookup at all; without them it also sends ``HEAD /api/hello`` and tries
    telemetry hosts on the internet.

Scripts
    A :class:`Script` is the conversation one test wants: a list of steps, each a :class:`Reply` (one
    assistant message: text, thinking, tool calls) or a failure (:class:`HttpError`, :class:`Stall`) served
    before the reply that follows it. The position in a conversation is the number of assistant messages
    the request already carries, so the n-th :class:`Reply` answers the request that holds n of them: a retry
    gets the same answer, a resumed session (``--resume``) continues where the first run stopped, and a
    subagent (the ``Agent``/Task tool) is a conversation of its own whose first user message is the
    subagent's prompt. A script with ``match`` applies to the conversations whose first user message
    contains that text (a marker in the task's prompt); scripts without ``match`` apply to all others.
    Failures carry ``times`` (how many attempts they answer; ``None``: every attempt, a persistent error).
    When a conversation runs past its script, the fake answers ``Text("done")``.

Recording
    Every request is kept (:attr:`FakeAnthropic.requests`: method, path, headers, JSON body), so tests assert
    on the system prompt, the tools, the model, the ``Authorization`` header (``Bearer`` + the
    ``CLAUDE_CODE_OAUTH_TOKEN``, never an ``x-api-key``) and on the prior messages a later request carries.

Rate limits
    The subscription (``anthropic-ratelimit-unified-*``) headers the CLI reads (found in its bundle):
    ``-status`` (allowed, allowed_warning, rejected), ``-reset`` (epoch seconds), ``-representative-claim``
    (five_hour, seven_day, ...), ``-fallback``, ``-overage-status`` and per window (5h, 7d, 7d_oi, overage)
    ``-{window}-utilization`` (0..1), ``-{window}-reset``, ``-{window}-surpassed-threshold``,
    ``-{window}-status``. :func:`unified_headers` builds them; :func:`usage_limit` is the 429 a subscription's
    exhausted limit answers with.

Running as root
    The CLI refuses ``--dangerously-skip-permissions`` as root unless ``IS_SANDBOX=1`` (its own switch for
    deliberate sandboxes: ``getuid() === 0 && IS_SANDBOX !== "1"`` in 2.1.332). Tests run as root, so
    :func:`cli_env` sets ``IS_SANDBOX=1`` (with ``CCR_ALLOW_ROOT=1`` for our own preflight); the read-only-root
    test (tests/claude/test_readonly_root.py) runs the CLI as uid 10001 instead, as the pod does.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OAUTH_BETA = "oauth-2025-04-20"
DEFAULT_MODEL = "claude-sonnet-4-5"


# -- script vocabulary -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str = "fake-thinking-signature"


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: Mapping[str, Any]
    id: str = field(default_factory=lambda: f"toolu_fake{uuid.uuid4().hex[:16]}")


Block = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Reply:
    """One assistant message. ``stop_reason`` defaults to ``tool_use`` when it calls a tool, else
    ``end_turn``. ``headers`` are added to the response (e.g. :func:`unified_headers`)."""

    content: Sequence[Block]
    stop_reason: str | None = None
    input_tokens: int = 120
    output_tokens: int = 30
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds between events (a slow model)

    @property
    def stop(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.content) else "end_turn"


@dataclass(frozen=True)
class HttpError:
    """An API error response: ``{"type": "error", "error": {"type": error_type, "message": message}}``."""

    status: int
    error_type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int | None = None  # attempts it answers; None: all of them


@dataclass(frozen=True)
class Stall:
    """A stream that starts (200, ``message_start``, optionally some text) and then sends nothing more until
    the client hangs up or the fake stops."""

    text: str = ""
    times: int | None = None
    keepalive: bool = False  # send an SSE comment every half second (bytes flow, no events)


Failure = HttpError | Stall
Step = Reply | Failure


@dataclass
class Script:
    steps: Sequence[Step]
    match: str | None = None  # a substring of the conversation's first user message; None: the default

    def plan(self, position: int) -> tuple[list[Failure], Reply | None]:
        """The failures to serve before the reply at ``position``, and that reply (None: past the end)."""
        failures: list[Failure] = []
        replies = -1
        for step in self.steps:
            if isinstance(step, Reply):
                replies += 1
                if replies == position:
                    return failures, step
                failures = []
            else:
                failures.append(step)
        return (failures if replies == position - 1 else []), None


def text_reply(text: str, **kw: Any) -> Reply:
    return Reply([Text(text)], **kw)


def tool_reply(name: str, tool_input: Mapping[str, Any], text: str = "", **kw: Any) -> Reply:
    blocks: list[Block] = [Text(text)] if text else []
    return Reply([*blocks, ToolUse(name, tool_input)], **kw)


def bash(command: str, description: str = "", text: str = "") -> Reply:
    return tool_reply("Bash", {"command": command, "description": description or command[:60]}, text)


def structured_answer(answer: Mapping[str, Any]) -> Reply:
    """The CLI implements ``--json-schema`` as a tool, ``StructuredOutput``, whose input_schema is the schema;
    the model answers by calling it, and the result event carries the input as ``structured_output``."""
    return tool_reply("StructuredOutput", answer)


def unified_headers(
    status: str = "allowed",
    *,
    reset: int | None = None,
    claim: str | None = None,
    five_hour: float | None = None,
    five_hour_reset: int | None = None,
    seven_day: float | None = None,
    seven_day_reset: int | None = None,
    surpassed: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """The subscription rate-limit headers, named as the CLI reads them. ``surpassed``: window (5h, 7d) ->
    the threshold crossed, which makes the CLI report that window's utilization (status allowed_warning)."""
    h = {"anthropic-ratelimit-unified-status": status}
    if reset is not None:
        h["anthropic-ratelimit-unified-reset"] = str(reset)
    if claim:
        h["anthropic-ratelimit-unified-representative-claim"] = claim
    for window, value, resets in (("5h", five_hour, five_hour_reset), ("7d", seven_day, seven_day_reset)):
        if value is not None:
            h[f"anthropic-ratelimit-unified-{window}-utilization"] = str(value)
        if resets is not None:
            h[f"anthropic-ratelimit-unified-{window}-reset"] = str(resets)
    for window, threshold in (surpassed or {}).items():
        h[f"anthropic-ratelimit-unified-{window}-surpassed-threshold"] = str(threshold)
    return h


def usage_limit(reset: int, *, claim: str = "five_hour", times: int | None = None) -> HttpError:
    """What the API answers when the subscription's limit is used up: 429, rejected, with the reset time."""
    headers = unified_headers("rejected", reset=reset, claim=claim, five_hour=1.0, five_hour_reset=reset)
    return HttpError(429, "rate_limit_error", "Rate limited", headers=headers, times=times)


def overloaded(times: int | None = None) -> HttpError:
    return HttpError(529, "overloaded_error", "Overloaded", times=times)


def rate_limited(times: int | None = None) -> HttpError:
    """A 429 without the subscription headers (an API-side rate limit)."""
    return HttpError(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit", times=times)


def unauthorized(times: int | None = None) -> HttpError:
    return HttpError(401, "authentication_error", "OAuth token has expired", times=times)


def forbidden(times: int | None = None) -> HttpError:
    return HttpError(403, "permission_error", "OAuth token does not meet scope requirement user:inference")


def prompt_too_long(times: int | None = None) -> HttpError:
    return HttpError(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum", times=times)


# -- recording -------------------------------------------------------------------------------------------
@dataclass
class Request:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    served: str = ""  # what answered it: "reply 0", "http 529", "stall", "404", ...

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    @property
    def is_message(self) -> bool:
        return self.method == "POST" and self.path.split("?")[0] == "/v1/messages"

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def system_text(self) -> str:
        system = self.body.get("system") if isinstance(self.body, dict) else None
        if isinstance(system, str):
            return system
        return "\n".join(b.get("text", "") for b in system or [] if isinstance(b, dict))

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return [str(t.get("name")) for t in tools or [] if isinstance(t, dict)]

    @property
    def first_user_text(self) -> str:
        return first_user_text(self.messages)

    @property
    def position(self) -> int:
        return sum(1 for m in self.messages if m.get("role") == "assistant")


def _texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                if block.get("type") == "text":
                    yield str(block.get("text", ""))
                elif block.get("type") == "tool_result":
                    yield from _texts(block.get("content"))


def first_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            return "\n".join(_texts(message.get("content")))
    return ""


# -- the server ------------------------------------------------------------------------------------------
class FakeAnthropic:
    """A threaded HTTP server on 127.0.0.1 (a free port). ``start()`` / ``stop()``, or use as a fixture."""

    def __init__(self, default: Script | None = None) -> None:
        self.requests: list[Request] = []
        self._scripts: list[Script] = [default] if default else []
        self._attempts: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self.default_headers: dict[str, str] = unified_headers("allowed")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # configuration
    def script(self, *steps: Step, match: str | None = None) -> Script:
        """Add a conversation. A later script for the same ``match`` replaces the earlier one."""
        script = Script(list(steps), match)
        with self._lock:
            self._scripts = [s for s in self._scripts if s.match != match] + [script]
        return script

    # lifecycle
    def start(self) -> FakeAnthropic:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # inspection
    def message_requests(self, match: str | None = None) -> list[Request]:
        """The ``/v1/messages`` requests (of the conversations whose first user message contains ``match``)."""
        with self._lock:
            found = [r for r in self.requests if r.is_message]
        return [r for r in found if match is None or match in r.first_user_text]

    def last_request(self, match: str | None = None) -> Request:
        found = self.message_requests(match)
        assert found, f"no /v1/messages request matching {match!r}; paths seen: {[r.path for r in self.requests]}"
        return found[-1]

    # serving
    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _choose(self, request: Request) -> tuple[Failure | None, Reply | None, int]:
        text, position = request.first_user_text, request.position
        with self._lock:
            scripts = self._scripts
            chosen = next((s for s in reversed(scripts) if s.match is not None and s.match in text), None)
            if chosen is None:
                chosen = next((s for s in reversed(scripts) if s.match is None), None)
            if chosen is None:
                return None, None, position
            failures, reply = chosen.plan(position)
            key = (id(chosen), position)
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        for failure in failures:
            if failure.times is None or attempt < failure.times:
                return failure, None, position
            attempt -= failure.times
        return None, reply, position

    def next_message_id(self) -> str:
        return f"msg_fake{next(self._ids):06d}"


def _handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-anthropic/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _read_body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _serve(self) -> None:
            request = Request(time.time(), self.command, self.path, dict(self.headers.items()), self._read_body())
            fake._record(request)
            route = self.path.split("?")[0]
            if route == "/v1/messages" and self.command == "POST":
                self._messages(request)
            elif route == "/v1/messages/count_tokens" and self.command == "POST":
                request.served = "count_tokens"
                self._json(200, {"input_tokens": _estimate_tokens(request.body)})
            elif route == "/api/hello":
                request.served = "hello"
                self._json(200, {"message": "hello"})
            else:
                request.served = "404"
                self._json(404, _error("not_found_error", f"fake-anthropic does not serve {route}"))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", f"req_fake{uuid.uuid4().hex[:20]}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _messages(self, request: Request) -> None:
            body = request.body if isinstance(request.body, dict) else {}
            failure, reply, position = fake._choose(request)
            if isinstance(failure, HttpError):
                request.served = f"http {failure.status}"
                # No retry-after unless the script sets one: the CLI then backs off exponentially (0.5 s,
                # 1 s, 2 s, ... capped at 32 s), the case CLAUDE_CODE_MAX_RETRIES bounds.
                self._json(failure.status, _error(failure.error_type, failure.message), failure.headers)
                return
            if isinstance(failure, Stall):
                request.served = "stall"
                self._stall(body, failure)
                return
            reply = reply or text_reply("done")
            request.served = f"reply {position}"
            message_id = fake.next_message_id()
            headers = {**fake.default_headers, **reply.headers}
            if body.get("stream"):
                self._stream(body, reply, message_id, headers)
            else:
                self._json(200, _message(body, reply, message_id), headers)

        def _start_stream(self, headers: Mapping[str, str]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("request-id", f"req_fake{uuid.uuid4().hex[:20]}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.close_connection = True

        def _event(self, name: str, data: Mapping[str, Any], delay: float = 0.0) -> None:
            if delay:
                time.sleep(delay)
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        def _stream(self, body: Mapping[str, Any], reply: Reply, message_id: str, headers: Mapping[str, str]) -> None:
            self._start_stream(headers)
            d = reply.delay
            start = _message(body, reply, message_id)
            start.update(content=[], stop_reason=None, stop_sequence=None)
            start["usage"] = {**start["usage"], "output_tokens": 1}
            try:
                self._event("message_start", {"type": "message_start", "message": start})
                self._event("ping", {"type": "ping"})
                for index, block in enumerate(reply.content):
                    for name, data in _block_events(index, block):
                        self._event(name, data, d)
                usage = {
                    "input_tokens": reply.input_tokens,
                    "output_tokens": reply.output_tokens,
                    "cache_read_input_tokens": reply.cache_read_input_tokens,
                    "cache_creation_input_tokens": reply.cache_creation_input_tokens,
                }
                delta = {"stop_reason": reply.stop, "stop_sequence": None}
                self._event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}, d)
                self._event("message_stop", {"type": "message_stop"}, d)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _stall(self, body: Mapping[str, Any], stall: Stall) -> None:
            self._start_stream(fake.default_headers)
            reply = text_reply(stall.text or "")
            start = _message(body, reply, fake.next_message_id())
            start.update(content=[], stop_reason=None, stop_sequence=None)
            try:
                self._event("message_start", {"type": "message_start", "message": start})
                if stall.text:
                    for name, data in list(_block_events(0, Text(stall.text)))[:2]:  # start + one delta, no stop
                        self._event(name, data)
                while not fake._stopping.wait(0.5):
                    if stall.keepalive:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_fake{uuid.uuid4().hex}"}


def _message(body: Mapping[str, Any], reply: Reply, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or DEFAULT_MODEL),
        "content": [_block_json(b) for b in reply.content],
        "stop_reason": reply.stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens,
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
        },
    }


def _block_json(block: Block) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Thinking):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: Block) -> Iterator[tuple[str, dict[str, Any]]]:
    def delta(d: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}

    if isinstance(block, Text):
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": _empty(block)}
        for piece in _chunks(block.text):
            yield delta({"type": "text_delta", "text": piece})
    elif isinstance(block, Thinking):
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": _empty(block)}
        for piece in _chunks(block.thinking):
            yield delta({"type": "thinking_delta", "thinking": piece})
        yield delta({"type": "signature_delta", "signature": block.signature})
    else:
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": _empty(block)}
        for piece in _chunks(json.dumps(dict(block.input)), 40):
            yield delta({"type": "input_json_delta", "partial_json": piece})
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _empty(block: Block) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": ""}
    if isinstance(block, Thinking):
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}


def _estimate_tokens(body: Any) -> int:
    return max(len(json.dumps(body)) // 4, 1) if body else 1


# -- running the real CLI against it ---------------------------------------------------------------------
# The CLI's own switches that keep it from the internet (telemetry, error reports, the auto-updater,
# feature flags, the connectivity probe): recorded, with them a run talks to the fake only.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}


def cli_env(fake: FakeAnthropic, *, root_ok: bool = True) -> dict[str, str]:
    """What a test adds to a real CLI run's environment: the fake's URL, the quiet switches, and (tests run
    as root) IS_SANDBOX=1 so ``--dangerously-skip-permissions`` is accepted."""
    env = {"ANTHROPIC_BASE_URL": fake.base_url, **QUIET_ENV}
    if root_ok:
        env["IS_SANDBOX"] = "1"
    return env
