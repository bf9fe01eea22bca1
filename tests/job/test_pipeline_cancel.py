"""Cancel (SIGTERM) and our own deadline: claude is stopped, the work is pushed, the PR is told.

The real CLI against the fake Anthropic API: a cancel arrives while its Bash tool runs a long command, the
deadline while the model's stream has stalled (the CLI itself would wait for ever: tests/claude).
"""

from __future__ import annotations

import signal
import time

from tests.doubles.conversations import leave_uncommitted, slow_tool
from tests.doubles.fake_anthropic import FakeAnthropic, Stall, bash
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import JobProcess, spec_json

GRACE = 5.0


def _runs_the_long_command(event: dict[str, object]) -> bool:
    message = event.get("message")
    return event.get("type") == "assistant" and isinstance(message, dict) and "seq 300" in str(message)


def test_sigterm_mid_run_pushes_wip_and_reports_cancelled(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(
        bash("printf 'pushed before\\n' > EARLY.md && git add -A && git commit -qm 'Early' && git push -q"),
        leave_uncommitted("WIP.md", "uncommitted work in progress"),
        slow_tool(300),
    )
    job = JobProcess.start(spec_json("task-cancel", prompt="Long job", repo=repo), real_job_env)
    job.wait_for(_runs_the_long_command, timeout=60)  # events stream live while claude runs
    time.sleep(1)  # the tool is running
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    outcome = job.finish(timeout=GRACE + 30)
    elapsed = time.monotonic() - sent
    assert elapsed < GRACE + 10, elapsed
    result = outcome.result
    assert outcome.returncode == 1
    assert result["status"] == "Cancelled" and result["errorType"] == "cancelled"
    assert "uncommitted work in progress" in fake_github.file_at(repo, "claude/task-cancel", "WIP.md")
    assert fake_github.file_at(repo, "claude/task-cancel", "EARLY.md") == "pushed before\n"
    assert outcome.steps("cancel_requested") and outcome.steps("safety_net")
    comments = fake_github.comments(repo, 1)
    assert len(comments) == 1 and "cancelled" in comments[0]["body"] and "pushed" in comments[0]["body"]
    assert "| Status | Cancelled |" in fake_github.pulls(repo)[0]["body"]
    # claude never got to finish the long command
    assert not any(e.get("type") == "result" and not e.get("is_error") for e in outcome.events)


def test_claude_ignoring_sigterm_is_killed_after_the_grace_period(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    # The fake CLI: the real one always honours SIGTERM, so only a stand-in can show the SIGKILL after the grace.
    env = {**job_env, "CCR_CANCEL_GRACE_SECONDS": "1"}
    job = JobProcess.start(spec_json("task-stubborn", prompt="x [fake:hang:ignore_term]", repo=repo), env)
    job.wait_for(lambda e: e.get("type") == "assistant")
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    outcome = job.finish(timeout=30)
    assert time.monotonic() - sent < 10
    assert outcome.result["status"] == "Cancelled"


def test_deadline_stops_a_stalled_model_stream_as_timeout(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(Stall("Thinking about it"))
    env = {**real_job_env, "CCR_CANCEL_GRACE_SECONDS": "1"}
    started = time.monotonic()
    job = JobProcess.start(spec_json("task-slowpoke", prompt="x", repo=repo, timeoutSeconds=60), env)
    outcome = job.finish(timeout=120)
    elapsed = time.monotonic() - started
    assert 60 <= elapsed < 75, elapsed
    assert outcome.result["status"] == "Failed" and outcome.result["errorType"] == "timeout"
    assert [r.served for r in fake_anthropic.message_requests()] == ["stall"]
    comments = fake_github.comments(repo, 1)
    assert "timed out" in comments[0]["body"]
    # Claude committed nothing before the deadline: the empty draft is closed, saying why (CCR_CLOSE_EMPTY_PRS)
    assert len(comments) == 2 and "before Claude committed anything" in comments[1]["body"]
    assert fake_github.pulls(repo)[0]["state"] == "closed"
