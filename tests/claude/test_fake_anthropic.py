"""The real Claude Code CLI against the fake Anthropic API: what the CLI sends, and what it makes of each answer.

These pin the fake to the real CLI (a fake that drifted from it would make every pipeline test meaningless)
and record the CLI's own output shapes that ccr's classifier and dashboard read.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ccr.core.model import ErrorType
from ccr.job.classify import StreamState, classify, structured_output, usage_of
from tests.doubles.claude_cli import TEST_OAUTH_TOKEN, CliRun, print_argv, run_cli
from tests.doubles.fake_anthropic import (
    OAUTH_BETA,
    FakeAnthropic,
    Reply,
    Stall,
    Text,
    Thinking,
    ToolUse,
    bash,
    cli_env,
    forbidden,
    overloaded,
    prompt_too_long,
    rate_limited,
    structured_answer,
    text_reply,
    unauthorized,
    unified_headers,
    usage_limit,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def state_of(run: CliRun) -> StreamState:
    state = StreamState()
    for event in run.events:
        state.feed(event)
    return state


def test_a_streamed_answer_with_thinking_and_what_the_cli_sends(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    fake_anthropic.script(Reply([Thinking("The user wants a greeting."), Text("Hello from the fake model.")]))
    run = run_cli(
        claude_bin,
        fake_anthropic,
        "Say hello",
        cwd=work,
        home=home,
        args=["--model", "claude-sonnet-4-5", "--append-system-prompt", "RULES-MARKER-17"],
    )
    assert run.returncode == 0, run.stderr
    blocks = [b for e in run.of_type("assistant") for b in e["message"]["content"]]
    assert [b["type"] for b in blocks] == ["thinking", "text"]
    assert blocks[0]["thinking"] == "The user wants a greeting."
    result = run.result
    assert result["is_error"] is False and result["subtype"] == "success"
    assert result["result"] == "Hello from the fake model." and result["num_turns"] == 1
    assert (result["usage"]["input_tokens"], result["usage"]["output_tokens"]) == (120, 30)
    assert result["total_cost_usd"] > 0
    # streamed assistant events carry stop_reason null and message_start's usage (the real CLI's shape)
    assert all(e["message"]["stop_reason"] is None for e in run.of_type("assistant"))

    [request] = fake_anthropic.message_requests()
    assert request.path.startswith("/v1/messages") and request.body["stream"] is True
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.header("Authorization") == f"Bearer {TEST_OAUTH_TOKEN}"
    assert request.header("x-api-key") is None
    assert OAUTH_BETA in (request.header("anthropic-beta") or "")
    assert "RULES-MARKER-17" in request.system_text
    assert {"Bash", "Edit", "Write", "Read", "Agent"} <= set(request.tool_names)
    assert "Say hello" in request.first_user_text
    # with the quiet switches the CLI talks to nothing else
    assert [r.path.split("?")[0] for r in fake_anthropic.requests] == ["/v1/messages"]


def test_tool_calls_really_write_edit_and_commit(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    git(work, "init", "-q", "-b", "main")
    git(work, "config", "user.email", "t@example.invalid")
    git(work, "config", "user.name", "t")
    (work / "app.py").write_text("GREETING = 'hi'\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "init")
    fake_anthropic.script(
        Reply([Text("Writing the notes."), ToolUse("Write", {"file_path": str(work / "NOTES.md"), "content": "n\n"})]),
        Reply([ToolUse("Read", {"file_path": str(work / "app.py")})]),
        Reply([ToolUse("Edit", {"file_path": str(work / "app.py"), "old_string": "'hi'", "new_string": "'hello'"})]),
        bash("git add -A && git commit -qm 'Greet properly' && git log --oneline | wc -l"),
        text_reply("Committed."),
    )
    run = run_cli(claude_bin, fake_anthropic, "Improve the greeting", cwd=work, home=home)
    assert run.returncode == 0, run.stderr
    assert (work / "NOTES.md").read_text() == "n\n"
    assert (work / "app.py").read_text() == "GREETING = 'hello'\n"
    assert git(work, "log", "--format=%s") == "Greet properly\ninit\n"
    results = [b for e in run.of_type("user") for b in e["message"]["content"] if b.get("type") == "tool_result"]
    assert len(results) == 4 and not any(r.get("is_error") for r in results)
    assert run.result["num_turns"] == 5 and run.result["result"] == "Committed."
    # each later request carries the earlier turns: the tool result of the Bash call came back to the model
    last = fake_anthropic.last_request()
    assert last.position == 4 and "2" in json.dumps(last.messages[-1])


def test_a_subagent_is_a_conversation_of_its_own(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    spawn = ToolUse(
        "Agent",
        {
            "description": "Count files",
            "prompt": "SUBAGENT-7: count the files",
            "subagent_type": "general-purpose",
            "run_in_background": False,
        },
    )
    fake_anthropic.script(Reply([spawn]), text_reply("The helper counted them."))
    fake_anthropic.script(bash("ls | wc -l"), text_reply("There are 0 files."), match="SUBAGENT-7")
    run = run_cli(claude_bin, fake_anthropic, "Count the files with a helper", cwd=work, home=home)
    assert run.returncode == 0, run.stderr
    nested = [e for e in run.events if e.get("parent_tool_use_id") == spawn.id]
    assert any(b.get("name") == "Bash" for e in nested for b in e.get("message", {}).get("content", []))
    assert len(fake_anthropic.message_requests("SUBAGENT-7")) == 2
    assert run.result["result"] == "The helper counted them."


def test_json_schema_is_the_structured_output_tool(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    schema = {
        "type": "object",
        "properties": {"repo": {"type": ["string", "null"]}, "reason": {"type": "string"}},
        "required": ["repo", "reason"],
        "additionalProperties": False,
    }
    answer = {"repo": "acme/gadgets", "reason": "the task names the gadgets service"}
    fake_anthropic.script(structured_answer(answer))
    run = run_cli(
        claude_bin,
        fake_anthropic,
        "Pick one",
        cwd=work,
        home=home,
        args=["--json-schema", json.dumps(schema), "--max-turns", "3"],
        skip_permissions=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.result["structured_output"] == answer
    assert structured_output(state_of(run)) == answer
    tool = next(t for t in fake_anthropic.last_request().body["tools"] if t["name"] == "StructuredOutput")
    assert tool["input_schema"] == schema


def test_subscription_headers_become_rate_limit_events_with_both_windows(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    now = int(time.time())
    headers = unified_headers(
        "allowed_warning",
        reset=now + 3600,
        claim="five_hour",
        five_hour=0.91,
        five_hour_reset=now + 3600,
        seven_day=0.8,
        seven_day_reset=now + 4 * 86400,
        surpassed={"5h": 0.9, "7d": 0.75},
    )
    fake_anthropic.script(text_reply("ok", headers=headers))
    run = run_cli(claude_bin, fake_anthropic, "hi", cwd=work, home=home)
    [event] = run.of_type("rate_limit_event")
    info = event["rate_limit_info"]
    assert info["status"] == "allowed_warning" and info["rateLimitType"] == "five_hour"
    assert info["utilization"] == 0.91 and "utilization" not in event  # nested, never top-level
    windows = info["unifiedWindows"]
    assert windows["five_hour"]["utilization"] == 0.91 and windows["seven_day"]["utilization"] == 0.8
    assert windows["seven_day"]["resetsAt"] == now + 4 * 86400


# The CLI's answer to each API failure, and what ccr's classifier makes of it. CLAUDE_CODE_MAX_RETRIES=1
# keeps the retried ones short; the pipeline tests run the same through `python -m ccr.job`.
FAILURES: dict[str, tuple[Any, ErrorType, str]] = {
    "401": (unauthorized(), ErrorType.AUTH_EXPIRED, "Failed to authenticate"),
    "403": (forbidden(), ErrorType.AUTH_EXPIRED, "403"),
    "429-subscription": (usage_limit(2_000_000_000), ErrorType.CAPACITY_REACHED, "limit"),
    "429-plain": (rate_limited(), ErrorType.CAPACITY_REACHED, "temporarily limiting requests"),
    "529": (overloaded(), ErrorType.CAPACITY_REACHED, "Overloaded"),
    "400-prompt-too-long": (prompt_too_long(), ErrorType.EXIT_CODE, "Prompt is too long"),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_api_failures_end_the_run_and_are_classified(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path, name: str
) -> None:
    failure, error_type, text = FAILURES[name]
    fake_anthropic.script(failure)
    run = run_cli(claude_bin, fake_anthropic, "hi", cwd=work, home=home, env={"CLAUDE_CODE_MAX_RETRIES": "1"})
    assert run.returncode == 1
    result = run.result
    assert result["is_error"] is True and result["subtype"] == "success"  # never read subtype alone
    assert result["api_error_status"] == failure.status and text in result["result"]
    outcome = classify(state_of(run), exit_code=run.returncode)
    assert outcome.error_type is error_type, outcome
    if name == "429-subscription":
        assert result["api_error"] == "usage_limit_reached" and result["terminal_reason"] == "api_error"
        assert outcome.reset_time is not None and int(outcome.reset_time.timestamp()) == 2_000_000_000
        assert len(fake_anthropic.message_requests()) == 1  # a used-up subscription is not retried
    if name in ("429-plain", "529"):
        retries = run.of_type("system", "api_retry")
        assert [(r["attempt"], r["max_retries"], r["error_status"]) for r in retries] == [(1, 1, failure.status)]
        assert len(fake_anthropic.message_requests()) == 2


def test_max_turns_is_an_error_result(claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path) -> None:
    fake_anthropic.script(bash("echo 1"), bash("echo 2"), bash("echo 3"), text_reply("never reached"))
    run = run_cli(claude_bin, fake_anthropic, "loop", cwd=work, home=home, args=["--max-turns", "2"])
    assert run.returncode == 1
    assert run.result["subtype"] == "error_max_turns" and run.result["terminal_reason"] == "max_turns"
    outcome = classify(state_of(run), exit_code=1)
    assert outcome.error_type is ErrorType.EXIT_CODE and outcome.message.startswith("max_turns")
    usage = usage_of(state_of(run))
    assert usage is not None and usage.turns == run.result["num_turns"]


def test_a_stalled_stream_leaves_the_cli_waiting(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    """Nothing after message_start: the CLI has no default idle limit and waits (our deadline must end it)."""
    fake_anthropic.script(Stall("I am about to"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "CLAUDE_CODE_OAUTH_TOKEN": TEST_OAUTH_TOKEN}
    proc = subprocess.Popen(
        print_argv(claude_bin),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=work,
        env={**env, **cli_env(fake_anthropic)},
        text=True,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("hi")
        proc.stdin.close()
        deadline = time.monotonic() + 30
        while not any(r.served == "stall" for r in fake_anthropic.requests) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(r.served == "stall" for r in fake_anthropic.requests)
        time.sleep(5)
        assert proc.poll() is None, "the CLI gave up on a stalled stream by itself"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_resumed_session_sends_the_first_runs_messages(
    claude_bin: Path, fake_anthropic: FakeAnthropic, home: Path, work: Path
) -> None:
    fake_anthropic.script(text_reply("FIRST-ANSWER"), text_reply("SECOND-ANSWER"))
    first = run_cli(claude_bin, fake_anthropic, "FIRST-PROMPT", cwd=work, home=home)
    session = first.result["session_id"]
    second = run_cli(claude_bin, fake_anthropic, "SECOND-PROMPT", cwd=work, home=home, args=["--resume", session])
    assert second.returncode == 0, second.stderr
    assert second.result["result"] == "SECOND-ANSWER"
    last = fake_anthropic.last_request()
    seen = json.dumps(last.messages)
    assert "FIRST-PROMPT" in seen and "FIRST-ANSWER" in seen and "SECOND-PROMPT" in seen
    assert last.position == 1 and last.served == "reply 1"


def test_non_streaming_count_tokens_and_unknown_paths(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(text_reply("plain JSON"))

    def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            fake_anthropic.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    status, message = post("/v1/messages", body)
    assert status == 200 and message["content"] == [{"type": "text", "text": "plain JSON"}]
    assert message["model"] == "claude-haiku-4-5" and message["stop_reason"] == "end_turn"
    status, counted = post("/v1/messages/count_tokens", body)
    assert status == 200 and counted["input_tokens"] > 0
    status, error = post("/v1/nothing-here", body)
    assert status == 404 and error["type"] == "error"
    paths = [r.path for r in fake_anthropic.requests]
    assert paths == ["/v1/messages", "/v1/messages/count_tokens", "/v1/nothing-here"]
