"""Running the Claude CLI: argv and environment builders (pure) and one streaming runner.

The prompt goes to claude's stdin, never argv (argv is visible in ``ps`` and limited in size). Claude runs
in its own process group so a cancel reaches everything it started.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ccr.job import session
from ccr.job.classify import StreamState
from ccr.job.config import SCRUBBED_ENV
from ccr.job.events import Emitter

WORKER_RULES = """\
You are running unattended inside a clone of the repository, on a branch that already has a draft pull \
request. Nobody will answer questions.
- Never use AskUserQuestion or wait for input: decide, note the assumption in the PR, and go on.
- Commit and push after every logical change (`git add -A && git commit -m "..." && git push`); the \
branch is already set up, push without arguments.
- Use subagents (the Task tool) for exploration and side work to keep your own context small.
- Do not create another branch or pull request and do not merge: the runner owns both.
- If you cannot finish, commit and push what exists, and end your final message with a section \
"Blockers:" listing what stopped you; the runner copies it into the PR description.
- End with a short summary of what changed."""

ORCHESTRATOR_MAX_TURNS = 3
REPO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "repo": {
            "type": ["string", "null"],
            "description": "owner/name of the one candidate the task means, or null when unclear",
        },
        "reason": {"type": "string"},
    },
    "required": ["repo", "reason"],
    "additionalProperties": False,
}
# Without output for this long after claude exited, a leftover child holds the pipe: stop reading.
_EXIT_DRAIN_SECONDS = 2.0
_STDERR_TAIL = 8192
_POLL = 0.1


def _print_argv(claude_bin: str) -> list[str]:
    """What every run of ours starts with: print mode and stream-json events."""
    return [claude_bin, "-p", "--output-format", "stream-json", "--verbose"]


def _model(model: str | None) -> list[str]:
    return ["--model", model] if model else []


def worker_argv(
    claude_bin: str,
    model: str | None,
    max_turns: int | None,
    *,
    resume: str | None = None,
    max_budget_usd: float | None = None,
) -> list[str]:
    turns = ["--max-turns", str(max_turns)] if max_turns else []
    rules = ["--append-system-prompt", WORKER_RULES]
    resumed = ["--resume", resume] if resume else []
    budget = ["--max-budget-usd", f"{max_budget_usd:g}"] if max_budget_usd else []
    return [
        *_print_argv(claude_bin),
        "--dangerously-skip-permissions",
        *rules,
        *_model(model),
        *turns,
        *budget,
        *resumed,
    ]


def orchestrator_argv(claude_bin: str, model: str | None) -> list[str]:
    """A short read-only run (no permission bypass): one structured answer."""
    schema = json.dumps(REPO_SCHEMA, separators=(",", ":"))
    turns = ["--max-turns", str(ORCHESTRATOR_MAX_TURNS)]
    return [*_print_argv(claude_bin), "--json-schema", schema, *turns, *_model(model)]


def orchestrator_prompt(task_prompt: str, candidates: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "Pick the GitHub repository that the coding task below is about, from the candidates.",
        "Answer repo = the candidate's owner/name exactly as listed, or null if the task does not make it",
        "clear which one it means (then say in reason which candidates could fit). Do not use tools.",
        "",
        "Candidates (owner/name: description):",
    ]
    for repo in candidates:
        description = " ".join(str(repo.get("description") or "").split())[:200]
        lines.append(f"- {repo['full_name']}: {description}")
    lines += ["", "Task:", "<<<", task_prompt, ">>>"]
    return "\n".join(lines)


def child_env(base: Mapping[str, str], server_url: str, home: Path, *, max_retries: int) -> dict[str, str]:
    """Claude's environment: ours without the API keys that would override the subscription, a bounded
    retry policy (``CCR_CLAUDE_MAX_RETRIES``: a dead or overloaded API ends the run in seconds, not minutes),
    with the GitHub token also where gh looks for an Enterprise host."""
    env = {k: v for k, v in base.items() if k not in SCRUBBED_ENV}
    env["HOME"] = str(home)
    env["DISABLE_AUTOUPDATER"] = "1"
    env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    env.update(session.config_env(home))  # the session file's place does not depend on the clone's path
    host = urlparse(server_url).hostname or ""
    if host and host != "github.com" and "GITHUB_TOKEN" in env:
        env.setdefault("GH_HOST", host)
        env.setdefault("GH_ENTERPRISE_TOKEN", env["GITHUB_TOKEN"])
    return env


class Control:
    """The run's deadline and its cancel flag (set from the SIGTERM handler)."""

    def __init__(self, timeout_seconds: float, grace_seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + timeout_seconds
        self.grace = grace_seconds
        self.cancel = threading.Event()

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    @property
    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    @property
    def stopping(self) -> bool:
        return self.cancel.is_set() or self.timed_out


@dataclass
class ClaudeRun:
    state: StreamState = field(default_factory=StreamState)
    exit_code: int | None = None
    stderr_tail: str = ""
    cancelled: bool = False
    timed_out: bool = False
    first_event_at: float | None = None  # monotonic time of the first stdout line


def run_claude(
    argv: Sequence[str],
    prompt: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    out: Emitter,
    control: Control,
) -> ClaudeRun:
    """Run claude to completion (or until cancel/deadline), passing its events through ``out``."""
    run = ClaudeRun()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        run.stderr_tail = f"cannot start {argv[0]}: {exc.strerror or exc}"
        run.exit_code = 127
        return run

    lines: queue.Queue[bytes | None] = queue.Queue()
    tail: list[str] = []
    threads = [
        threading.Thread(target=_write_stdin, args=(proc, prompt), daemon=True),
        threading.Thread(target=_read_lines, args=(proc, lines), daemon=True),
        threading.Thread(target=_forward_stderr, args=(proc, out, tail), daemon=True),
    ]
    for thread in threads:
        thread.start()

    stop_sent_at: float | None = None
    exited_at: float | None = None
    while True:
        try:
            raw = lines.get(timeout=_POLL)
        except queue.Empty:
            raw = b""
        if raw is None:
            break
        if raw:
            if run.first_event_at is None:
                run.first_event_at = time.monotonic()
            _pass_through(raw, run.state, out)
        now = time.monotonic()
        if stop_sent_at is None and control.stopping:
            run.cancelled = control.cancel.is_set()
            run.timed_out = not run.cancelled
            stop_sent_at = now
            _signal_group(proc, signal.SIGTERM)
        elif stop_sent_at is not None and now - stop_sent_at > control.grace:
            _signal_group(proc, signal.SIGKILL)
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        elif exited_at is not None and not raw and now - exited_at > _EXIT_DRAIN_SECONDS:
            _signal_group(proc, signal.SIGKILL)  # a leftover grandchild keeps stdout open
            break
    run.exit_code = _wait(proc, control, stop_sent_at)
    for thread in threads[1:]:
        thread.join(timeout=1.0)
    run.stderr_tail = "".join(tail)[-_STDERR_TAIL:]
    return run


def _pass_through(raw: bytes, state: StreamState, out: Emitter) -> None:
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text.strip():
        return
    if state.feed_line(text) is None:
        out.emit("raw", text=text)  # keep stdout JSON Lines: a non-JSON line is wrapped, never dropped
    else:
        out.line(text)


def _wait(proc: subprocess.Popen[bytes], control: Control, stop_sent_at: float | None) -> int:
    while True:
        try:
            return proc.wait(timeout=_POLL)
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if stop_sent_at is None and control.stopping:
                stop_sent_at = now
                _signal_group(proc, signal.SIGTERM)
            elif stop_sent_at is not None and now - stop_sent_at > control.grace:
                _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _write_stdin(proc: subprocess.Popen[bytes], prompt: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(prompt.encode())
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _read_lines(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes | None]) -> None:
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            lines.put(raw)
    finally:
        lines.put(None)


def _forward_stderr(proc: subprocess.Popen[bytes], out: Emitter, tail: list[str]) -> None:
    """claude's stderr -> our stderr, redacted as a stream (a secret may be split across reads)."""
    assert proc.stderr is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    redacting = out.redactor.stream()
    fd = proc.stderr.fileno()
    while True:
        chunk = os.read(fd, 65536)
        text = decoder.decode(chunk, final=not chunk)
        safe = redacting.feed(text) if text else ""
        if not chunk:
            safe += redacting.flush()
        if safe:
            out.stderr_chunk(safe)
            tail.append(safe)
            if sum(len(t) for t in tail) > 2 * _STDERR_TAIL:
                joined = "".join(tail)[-_STDERR_TAIL:]
                tail[:] = [joined]
        if not chunk:
            return
