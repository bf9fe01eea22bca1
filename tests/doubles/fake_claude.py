#!/usr/bin/env python3
"""A stand-in for the Claude Code CLI, for tests only (found through CCR_CLAUDE_BIN). The Claude behaviour of
the pipeline, local-mode and operator tests comes from the REAL CLI against tests/doubles/fake_anthropic.py;
this stays for what the real CLI cannot be made to do, and for the lifecycle suites that drive both backends
through one scripted CLI (tests/local/test_outcomes.py, tests/operator/test_conformance.py).

Accepts the flags the pipeline passes, reads the prompt from stdin (a prompt in argv is refused: the
pipeline must never put it there), prints stream-json like ``claude -p --output-format stream-json
--verbose`` and, as the worker, really edits files in its cwd, commits and pushes with plain git.

Behaviour: a marker in the prompt ``[fake:NAME]`` or ``[fake:NAME:ARG:ARG]``, else $FAKE_CLAUDE_SCENARIO,
else ``success``:

    success[:nopush]   two commits, pushed (nopush: not)
    noop               succeed without changing anything
    auth_expired       replay fixtures/auth-expired.jsonl (recorded from the real CLI), exit 1
    usage_limit        replay fixtures/usage-limit.jsonl (recorded from the real CLI), exit 1
    crash              init event, a plain-text line on stdout, a stack trace on stderr, exit 2, no result:
                       the real CLI cannot be made to die mid-run
    hang[:ignore_term] init event, then sleep forever (ignore_term: ignore SIGTERM, needs SIGKILL): the real
                       CLI always honours SIGTERM
    slow:N:SECONDS     commit+push, an uncommitted edit, then N text events SECONDS apart, success: the
                       dashboard's streaming tests (follow, reconnect, restart) count lines at a set pace
    kill_pipeline      SIGKILL the job pipeline (its parent): a job that ends without any result
    leak               print the environment's secret values on stdout and stderr, split across writes: the
                       real CLI never writes the model's words to stderr
    ambiguous          (orchestrator, --json-schema) answer repo=null

As the orchestrator (``--json-schema`` given) it answers with ``structured_output``: the one candidate
("- owner/name: description" lines) whose name appears in the task between <<< and >>>, or null.
With $FAKE_CLAUDE_LOG set, it appends JSON lines about what it did (start, commit, push) there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stream-json"
MARKER = re.compile(r"\[fake:(?P<name>[a-z_]+)(?P<args>(?::[^\]:]*)*)\]")
SESSION = str(uuid.uuid4())
STARTED = time.time()


def process_age() -> float:
    """Seconds since this process was created (interpreter start-up included)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return time.time() - STARTED


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def log(entry: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_CLAUDE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**entry, "time": time.time()}) + "\n")


def init_event(cwd: str, model: str | None) -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": cwd,
        "session_id": SESSION,
        "tools": ["Task", "Bash", "Read", "Edit", "Write"],
        "mcp_servers": [],
        "model": model or "claude-sonnet-4-5",
        "permissionMode": "bypassPermissions",
        "apiKeySource": "none",
        "claude_code_version": "0.0.0-fake",
        "uuid": str(uuid.uuid4()),
        "fake_process_age_s": process_age(),
    }


def replay(name: str, cwd: str) -> None:
    for line in (FIXTURES / name).read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if "session_id" in event:
            event["session_id"] = SESSION
        if event.get("type") == "system" and event.get("subtype") == "init":
            event["cwd"] = cwd
            event["fake_process_age_s"] = process_age()
        emit(event)


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(f"fake claude: git {' '.join(args)} failed: {proc.stderr}\n")
        sys.stderr.flush()
        raise SystemExit(4)
    return proc.stdout


def tool_use(name: str, tool_input: dict[str, Any]) -> str:
    tool_id = f"toolu_{uuid.uuid4().hex[:12]}"
    emit(
        {
            "type": "assistant",
            "message": {
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 10, "output_tokens": 20},
            },
            "parent_tool_use_id": None,
            "session_id": SESSION,
        }
    )
    return tool_id


def tool_result(tool_id: str, content: str) -> None:
    emit(
        {
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": content}],
            },
            "parent_tool_use_id": None,
            "session_id": SESSION,
        }
    )


def text(message: str) -> None:
    emit(
        {
            "type": "assistant",
            "message": {
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": message}],
                "usage": {"input_tokens": 5, "output_tokens": 10},
            },
            "parent_tool_use_id": None,
            "session_id": SESSION,
        }
    )


def result(message: str, *, turns: int = 3, cost: float = 0.0612, is_error: bool = False, **extra: Any) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "duration_ms": int((time.time() - STARTED) * 1000),
            "duration_api_ms": 10,
            "num_turns": turns,
            "result": message,
            "session_id": SESSION,
            "total_cost_usd": cost,
            "usage": {
                "input_tokens": 26,
                "cache_creation_input_tokens": 9800,
                "cache_read_input_tokens": 20000,
                "output_tokens": 245,
            },
            "permission_denials": [],
            "terminal_reason": "completed",
            **extra,
        }
    )


def edit(path: str, line: str) -> None:
    tool_id = tool_use("Edit", {"file_path": str(Path.cwd() / path), "old_string": "", "new_string": line})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    tool_result(tool_id, f"The file {Path.cwd() / path} has been updated.")


def commit(message: str, push: bool) -> str:
    tool_id = tool_use(
        "Bash", {"command": f"git add -A && git commit -m {message!r}" + (" && git push" if push else "")}
    )
    git("add", "--all")
    git("commit", "--quiet", "-m", message)
    sha = git("rev-parse", "HEAD").strip()
    log({"event": "commit", "sha": sha, "message": message})
    if push:
        git("push", "--quiet")
        log({"event": "push", "sha": sha})
    tool_result(tool_id, f"[{git('rev-parse', '--abbrev-ref', 'HEAD').strip()} {sha[:7]}] {message}")
    return sha


# -- scenarios ----------------------------------------------------------------------------------------
def worker_success(args: list[str], cwd: str, model: str | None) -> int:
    push = "nopush" not in args
    emit(init_event(cwd, model))
    text("I'll check the repository state first.")
    tool_id = tool_use("Bash", {"command": "git status --short && git branch --show-current"})
    tool_result(tool_id, git("status", "--short", "--branch"))
    emit(
        {
            "type": "rate_limit_event",
            "rate_limit_info": {
                "status": "allowed",
                "resetsAt": 1788000000,
                "rateLimitType": "five_hour",
                "utilization": 0.12,
            },
            "session_id": SESSION,
        }
    )
    edit("FAKE_CLAUDE.md", "first change by the fake claude")
    commit("Fake change one", push)
    edit("src/fake_module.py" if Path("src").is_dir() else "fake_module.py", "VALUE = 2")
    commit("Fake change two", push)
    text("Made two changes and pushed them.")
    result("Made two changes to FAKE_CLAUDE.md and fake_module.py and pushed them.")
    return 0


def worker_noop(args: list[str], cwd: str, model: str | None) -> int:
    """Succeeds without changing anything (a question answered, a task found already done)."""
    emit(init_event(cwd, model))
    text("Nothing to change: the repository already does this.")
    result("Nothing to change: the repository already does this.")
    return 0


def worker_slow(args: list[str], cwd: str, model: str | None) -> int:
    count = int(args[0]) if args and args[0] else 20
    interval = float(args[1]) if len(args) > 1 and args[1] else 0.2
    emit(init_event(cwd, model))
    edit("FAKE_CLAUDE.md", "committed and pushed before the slow part")
    commit("Fake change before the slow part", push=True)
    edit("WIP.md", "uncommitted work in progress")
    log({"event": "dirty", "file": "WIP.md"})
    for i in range(count):
        text(f"working {i + 1}/{count}")
        time.sleep(interval)
    result(f"Finished {count} slow steps.")
    return 0


def worker_leak(args: list[str], cwd: str, model: str | None) -> int:
    emit(init_event(cwd, model))
    names = ["GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "SESSION_SECRET", "ANTHROPIC_API_KEY"]
    values = {name: os.environ[name] for name in names if os.environ.get(name)}
    creds = Path(os.environ.get("HOME", "/nonexistent")) / ".claude" / ".credentials.json"
    if creds.is_file():
        oauth = json.loads(creds.read_text()).get("claudeAiOauth", {})
        values.update({k: v for k, v in oauth.items() if isinstance(v, str)})
    tool_id = tool_use("Bash", {"command": "env"})
    tool_result(tool_id, "\n".join(f"{k}={v}" for k, v in values.items()))
    text("The token is " + " and ".join(values.values()))
    for value in values.values():  # split each secret across two writes to stderr
        half = len(value) // 2
        sys.stderr.write("leaked: " + value[:half])
        sys.stderr.flush()
        time.sleep(0.05)
        sys.stderr.write(value[half:] + " (end)\n")
        sys.stderr.flush()
    edit("FAKE_CLAUDE.md", "a harmless change")
    commit("Harmless change", push=True)
    result("Printed the environment; the runner should have hidden it: " + " ".join(values.values()))
    return 0


def worker_crash(args: list[str], cwd: str, model: str | None) -> int:
    emit(init_event(cwd, model))
    sys.stdout.write("Error: not JSON, as the real CLI prints before it dies\n")
    sys.stdout.flush()
    sys.stderr.write('Traceback (most recent call last):\n  File "cli.js", line 1\nTypeError: fake crash\n')
    sys.stderr.flush()
    return 2


def worker_kill_pipeline(args: list[str], cwd: str, model: str | None) -> int:
    """The job pipeline itself dies (SIGKILL: an OOM kill, a crash): nobody reports a result."""
    emit(init_event(cwd, model))
    text("about to take the pipeline down")
    os.kill(os.getppid(), signal.SIGKILL)
    return 0


def worker_hang(args: list[str], cwd: str, model: str | None) -> int:
    if "ignore_term" in args:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    emit(init_event(cwd, model))
    text("thinking very hard...")
    while True:
        time.sleep(3600)


Scenario = Callable[[list[str], str, "str | None"], int]


def replayer(name: str, code: int) -> Scenario:
    def run(args: list[str], cwd: str, model: str | None) -> int:
        replay(name, cwd)
        return code

    return run


WORKER: dict[str, Scenario] = {
    "success": worker_success,
    "slow": worker_slow,
    "noop": worker_noop,
    "leak": worker_leak,
    "crash": worker_crash,
    "hang": worker_hang,
    "kill_pipeline": worker_kill_pipeline,
    "auth_expired": replayer("auth-expired.jsonl", 1),
    "usage_limit": replayer("usage-limit.jsonl", 1),
}


def orchestrator(prompt: str, name: str, cwd: str, model: str | None) -> int:
    candidates = re.findall(r"^- ([\w.-]+/[\w.-]+):", prompt, re.MULTILINE)
    task = prompt.split("<<<", 1)[-1].rsplit(">>>", 1)[0]
    words = set(re.findall(r"[\w.-]+", task.lower()))
    matches = [c for c in candidates if c.split("/")[1].lower() in words]
    chosen = matches[0] if len(matches) == 1 and name != "ambiguous" else None
    reason = f"the task mentions {chosen}" if chosen else f"could be any of {', '.join(matches or candidates[:5])}"
    log({"event": "orchestrator", "candidates": candidates, "chosen": chosen})
    emit(init_event(cwd, model))
    text(json.dumps({"repo": chosen, "reason": reason}))
    result(
        json.dumps({"repo": chosen, "reason": reason}),
        turns=1,
        cost=0.002,
        structured_output={"repo": chosen, "reason": reason},
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="claude")
    parser.add_argument("-p", "--print", action="store_true")
    parser.add_argument("--output-format")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--dangerously-skip-permissions", action="store_true")
    parser.add_argument("--append-system-prompt")
    parser.add_argument("--model")
    parser.add_argument("--max-turns", type=int)
    parser.add_argument("--json-schema")
    parser.add_argument("prompt", nargs="?")
    opts = parser.parse_args()
    if opts.prompt is not None:
        sys.stderr.write("fake claude: the prompt was passed in argv; ccr must use stdin\n")
        return 64
    if not opts.print or opts.output_format != "stream-json" or not opts.verbose:
        sys.stderr.write("fake claude: expected -p --output-format stream-json --verbose\n")
        return 64
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"):
        sys.stderr.write("fake claude: ANTHROPIC_API_KEY reached claude; ccr must scrub it\n")
        return 65
    prompt = sys.stdin.read()
    cwd = os.getcwd()
    match = MARKER.search(prompt)
    if match:
        name, args = match.group("name"), [a for a in match.group("args").split(":")[1:]]
    else:
        name, *args = (os.environ.get("FAKE_CLAUDE_SCENARIO") or "success").split(":")
    log(
        {
            "event": "start",
            "argv": sys.argv[1:],
            "cwd": cwd,
            "scenario": name,
            "prompt_bytes": len(prompt.encode()),
            "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
            "orchestrator": opts.json_schema is not None,
        }
    )
    has_creds = (
        bool(os.environ.get("CLAUDE_CODE_OAUTH_TOKEN"))
        or (Path(os.environ.get("HOME", "/nonexistent")) / ".claude" / ".credentials.json").is_file()
    )
    if not has_creds:
        replay("auth-expired.jsonl", cwd)
        return 1
    if opts.json_schema is not None:
        json.loads(opts.json_schema)
        return orchestrator(prompt, name, cwd, opts.model)
    return WORKER.get(name, worker_success)(args, cwd, opts.model)


if __name__ == "__main__":
    raise SystemExit(main())
