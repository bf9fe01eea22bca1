"""Cancel (SIGTERM) and our own deadline: claude is stopped, the work is pushed, the PR is told."""

from __future__ import annotations

import signal
import time

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import JobProcess, spec_json

GRACE = 5.0


def _is_progress(event: dict[str, object]) -> bool:
    message = event.get("message")
    return event.get("type") == "assistant" and isinstance(message, dict) and "working 3/" in str(message)


def test_sigterm_mid_run_pushes_wip_and_reports_cancelled(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    job = JobProcess.start(spec_json("task-cancel", prompt="Long job [fake:slow:300:0.1]", repo=repo), job_env)
    job.wait_for(_is_progress)  # events stream live while claude runs
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    outcome = job.finish(timeout=GRACE + 30)
    elapsed = time.monotonic() - sent
    assert elapsed < GRACE + 10, elapsed
    result = outcome.result
    assert outcome.returncode == 1
    assert result["status"] == "Cancelled" and result["errorType"] == "cancelled"
    assert "uncommitted work in progress" in fake_github.file_at(repo, "claude/task-cancel", "WIP.md")
    assert outcome.steps("cancel_requested") and outcome.steps("safety_net")
    comments = fake_github.comments(repo, 1)
    assert len(comments) == 1 and "cancelled" in comments[0]["body"] and "pushed" in comments[0]["body"]
    assert "| Status | Cancelled |" in fake_github.pulls(repo)[0]["body"]
    # claude did not get to finish its 300 steps
    assert not any(e.get("type") == "result" for e in outcome.events)


def test_claude_ignoring_sigterm_is_killed_after_the_grace_period(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    env = {**job_env, "CCR_CANCEL_GRACE_SECONDS": "1"}
    job = JobProcess.start(spec_json("task-stubborn", prompt="x [fake:hang:ignore_term]", repo=repo), env)
    job.wait_for(lambda e: e.get("type") == "assistant")
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    outcome = job.finish(timeout=30)
    assert time.monotonic() - sent < 10
    assert outcome.result["status"] == "Cancelled"


def test_deadline_stops_a_hanging_claude_as_timeout(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    env = {**job_env, "CCR_CANCEL_GRACE_SECONDS": "1"}
    started = time.monotonic()
    job = JobProcess.start(spec_json("task-slowpoke", prompt="x [fake:hang]", repo=repo, timeoutSeconds=60), env)
    outcome = job.finish(timeout=120)
    elapsed = time.monotonic() - started
    assert 60 <= elapsed < 75, elapsed
    assert outcome.result["status"] == "Failed" and outcome.result["errorType"] == "timeout"
    comments = fake_github.comments(repo, 1)
    assert "timed out" in comments[0]["body"]
    # Claude committed nothing before the deadline: the empty draft is closed, saying why (CCR_CLOSE_EMPTY_PRS)
    assert len(comments) == 2 and "before Claude committed anything" in comments[1]["body"]
    assert fake_github.pulls(repo)[0]["state"] == "closed"
