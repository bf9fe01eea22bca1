"""Each way a run can fail ends in the right errorType, with the work saved and the PR told.

The Claude failures are the REAL CLI's answers to the fake Anthropic API's errors, through the whole
pipeline (``python -m ccr.job``); the retry bound is the pipeline's default (CCR_CLAUDE_MAX_RETRIES).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from tests.doubles.conversations import endless_bash, leave_uncommitted, worker_success
from tests.doubles.fake_anthropic import (
    FakeAnthropic,
    HttpError,
    forbidden,
    overloaded,
    prompt_too_long,
    rate_limited,
    unauthorized,
    usage_limit,
)
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import JobOutcome, run_job, spec_json

RESET = 2_000_000_000  # the subscription's reset time the fake API announces (2033-05-18T03:33:20Z)
# A persistent 529 or header-less 429 must end its task this fast (issue 12): the CLI's own default of 10
# retries takes over three minutes; the pipeline's bound makes it seconds.
CAPACITY_BUDGET_SECONDS = 15


def assert_failed_with(outcome: JobOutcome, fake_github: FakeGitHub, repo: str, error_type: str, tmp: Path) -> None:
    assert outcome.returncode == 1, outcome.stderr[-2000:]
    result = outcome.result
    assert result["status"] == "Failed" and result["errorType"] == error_type, result
    assert result["prUrl"]  # the draft PR was opened before the worker failed
    body = fake_github.pulls(repo)[0]["body"]
    assert f"`{error_type}`" in body and "| Status | Failed |" in body
    assert json.loads((tmp / "termination-log").read_text())["errorType"] == error_type
    assert all(line.event is not None for line in outcome.lines)  # stdout stays JSON Lines


@pytest.mark.parametrize(
    ("failure", "in_message"),
    [(unauthorized(), "401 OAuth token has expired"), (forbidden(), "403")],
    ids=["401", "403"],
)
def test_a_rejected_claude_token_is_auth_expired(
    fake_github: FakeGitHub,
    fake_anthropic: FakeAnthropic,
    repo: str,
    real_job_env: dict[str, str],
    tmp_path: Path,
    failure: HttpError,
    in_message: str,
) -> None:
    fake_anthropic.script(failure)
    outcome = run_job(spec_json("task-auth", prompt="Work", repo=repo), real_job_env)
    assert_failed_with(outcome, fake_github, repo, "auth_expired", tmp_path)
    assert in_message in outcome.result["message"]
    assert "claude setup-token" not in outcome.result["message"]  # advice is the dashboard's, not the status


def test_a_used_up_subscription_is_capacity_reached_with_its_reset_time(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    fake_anthropic.script(usage_limit(RESET))
    outcome = run_job(spec_json("task-limit", prompt="Work", repo=repo), real_job_env)
    assert_failed_with(outcome, fake_github, repo, "capacity_reached", tmp_path)
    result = outcome.result
    assert int(dt.datetime.fromisoformat(result["resetTime"]).timestamp()) == RESET
    assert "You've hit your 5-hour limit" in result["message"]
    assert "Capacity resets" in fake_github.pulls(repo)[0]["body"]
    # the real shape went through: api_error usage_limit_reached and a rejected rate_limit_event
    [claude_result] = [e for e in outcome.events if e.get("type") == "result"]
    assert claude_result["api_error"] == "usage_limit_reached" and claude_result["terminal_reason"] == "api_error"
    rejected = [e for e in outcome.events if e.get("type") == "rate_limit_event"]
    assert rejected and rejected[0]["rate_limit_info"]["status"] == "rejected"
    assert len(fake_anthropic.message_requests()) == 1  # not retried


@pytest.mark.parametrize(
    ("failure", "status"), [(overloaded(), 529), (rate_limited(), 429)], ids=["529", "429-without-headers"]
)
def test_a_persistent_overload_or_rate_limit_ends_in_seconds_as_capacity_reached(
    fake_github: FakeGitHub,
    fake_anthropic: FakeAnthropic,
    repo: str,
    real_job_env: dict[str, str],
    tmp_path: Path,
    failure: HttpError,
    status: int,
) -> None:
    assert "CCR_CLAUDE_MAX_RETRIES" not in real_job_env and "CLAUDE_CODE_MAX_RETRIES" not in os.environ
    fake_anthropic.script(failure)
    started = time.monotonic()
    outcome = run_job(spec_json("task-busy", prompt="Work", repo=repo), real_job_env)
    elapsed = time.monotonic() - started
    assert_failed_with(outcome, fake_github, repo, "capacity_reached", tmp_path)
    assert elapsed < CAPACITY_BUDGET_SECONDS, f"{elapsed:.1f} s"
    assert outcome.result.get("resetTime") is None
    retries = [e for e in outcome.events if e.get("type") == "system" and e.get("subtype") == "api_retry"]
    assert [r["attempt"] for r in retries] == [1, 2, 3] and {r["error_status"] for r in retries} == {status}
    assert len(fake_anthropic.message_requests()) == 4  # the bound: CCR_CLAUDE_MAX_RETRIES=3 by default


def test_the_retry_bound_is_configurable(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(overloaded())
    outcome = run_job(spec_json("task-busy", prompt="Work", repo=repo), {**real_job_env, "CCR_CLAUDE_MAX_RETRIES": "1"})
    assert outcome.result["errorType"] == "capacity_reached"
    assert len(fake_anthropic.message_requests()) == 2


def test_max_turns_is_exit_code_and_the_half_done_work_is_saved(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    fake_anthropic.script(leave_uncommitted("UNFINISHED.md", "half-done work"), *endless_bash())
    outcome = run_job(spec_json("task-turns", prompt="Work", repo=repo, maxTurns=3), real_job_env)
    assert_failed_with(outcome, fake_github, repo, "exit_code", tmp_path)
    result = outcome.result
    assert result["message"].startswith("max_turns") and "Reached maximum number of turns (3)" in result["message"]
    # the half-done, uncommitted work was committed as WIP and pushed
    assert "half-done" in fake_github.file_at(repo, result["branch"], "UNFINISHED.md")
    assert "committed the uncommitted work" in outcome.steps("safety_net")[0]["message"]
    [claude_result] = [e for e in outcome.events if e.get("type") == "result"]
    assert result["usage"]["costUsd"] == claude_result["total_cost_usd"]
    assert result["usage"]["turns"] == claude_result["num_turns"]


def test_a_prompt_too_long_is_exit_code(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    fake_anthropic.script(prompt_too_long())
    outcome = run_job(spec_json("task-long", prompt="Work", repo=repo), real_job_env)
    assert_failed_with(outcome, fake_github, repo, "exit_code", tmp_path)
    assert outcome.result["message"].startswith("prompt_too_long: Prompt is too long")


def test_a_claude_crash_without_a_result_is_exit_code(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    # The fake CLI: the real one cannot be made to die mid-run with a stack trace and no result event.
    outcome = run_job(spec_json("task-crash", prompt="Work [fake:crash]", repo=repo), job_env)
    assert_failed_with(outcome, fake_github, repo, "exit_code", tmp_path)
    assert "fake crash" in outcome.result["message"]
    raw = [e for e in outcome.events if e.get("type") == "ccr" and e.get("event") == "raw"]
    assert raw and raw[0]["text"].startswith("Error: not JSON")
    assert "TypeError: fake crash" in outcome.stderr


def test_missing_claude_credentials_fail_before_claude_runs(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    env = {k: v for k, v in real_job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    outcome = run_job(spec_json("task-nocreds", prompt="x", repo=repo), env)
    assert outcome.returncode == 1
    assert outcome.result["errorType"] == "invalid" and "CLAUDE_CODE_OAUTH_TOKEN" in outcome.result["message"]
    assert fake_anthropic.requests == []  # claude never ran
    assert outcome.phases() == ["preflight", "finish"]
    assert fake_github.pulls(repo) == []


def test_rejected_github_token_is_auth_expired_before_claude_runs(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    env = {**real_job_env, "GITHUB_TOKEN": "fake-gh-token-revoked-0000"}
    outcome = run_job(spec_json("task-badgh", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "auth_expired" and "GITHUB_TOKEN" in outcome.result["message"]
    assert fake_anthropic.requests == []
    assert [r.path for r in fake_github.request_log()] == ["/api/v3/user"]


def test_missing_github_token_is_invalid(repo: str, real_job_env: dict[str, str]) -> None:
    env = {k: v for k, v in real_job_env.items() if k != "GITHUB_TOKEN"}
    outcome = run_job(spec_json("task-nogh", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid" and "GITHUB_TOKEN" in outcome.result["message"]


def test_root_is_refused_unless_allowed_for_tests(
    fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    env = {k: v for k, v in real_job_env.items() if k != "CCR_ALLOW_ROOT"}
    outcome = run_job(spec_json("task-root", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid"
    assert "root" in outcome.result["message"] and "--dangerously-skip-permissions" in outcome.result["message"]
    assert fake_anthropic.requests == []


def test_missing_claude_binary_is_invalid(repo: str, real_job_env: dict[str, str], tmp_path: Path) -> None:
    env = {**real_job_env, "CCR_CLAUDE_BIN": str(tmp_path / "no-such-claude")}
    outcome = run_job(spec_json("task-nobin", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid" and "not found" in outcome.result["message"]


def test_unknown_repository_is_invalid(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, real_job_env: dict[str, str]
) -> None:
    outcome = run_job(spec_json("task-norepo", prompt="x", repo="acme/nope"), real_job_env)
    assert outcome.result["errorType"] == "invalid" and "acme/nope" in outcome.result["message"]
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        json.dumps({"id": "Bad_Id", "spec": {"prompt": "x"}}),
        json.dumps({"id": "ok", "spec": {"prompt": " "}}),
    ],
)
def test_invalid_spec_is_invalid(real_job_env: dict[str, str], spec: str) -> None:
    outcome = run_job(spec, real_job_env)
    assert outcome.returncode == 1
    assert outcome.result["status"] == "Failed" and outcome.result["errorType"] == "invalid"
    assert "invalid task spec" in outcome.result["message"]


def test_credentials_file_is_copied_into_a_writable_home(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    access = "sk-ant-oat01-" + "a" * 40
    source = tmp_path / "secret-mount" / "credentials.json"
    source.parent.mkdir()
    expires = int((time.time() + 3600) * 1000)
    source.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": access,
                    "refreshToken": "sk-ant-ort01-" + "b" * 40,
                    "expiresAt": expires,
                    "scopes": ["user:inference", "user:profile"],
                }
            }
        )
    )
    source.chmod(0o444)
    env = {k: v for k, v in real_job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    env["CCR_CLAUDE_CREDENTIALS_FILE"] = str(source)
    fake_anthropic.script(*worker_success())
    outcome = run_job(spec_json("task-credfile", prompt="x", repo=repo), env)
    assert outcome.result["status"] == "Succeeded", outcome.stdout[-2000:]
    copied = Path(env["HOME"]) / ".claude" / ".credentials.json"
    assert json.loads(copied.read_text())["claudeAiOauth"]["accessToken"] == access
    assert copied.stat().st_mode & 0o777 == 0o600
    # the real CLI read the copy: the model was called with its access token
    assert fake_anthropic.last_request().header("Authorization") == f"Bearer {access}"


def test_malformed_job_environment_is_invalid(repo: str, real_job_env: dict[str, str], tmp_path: Path) -> None:
    for name, value in (("CCR_CANCEL_GRACE_SECONDS", "soon"), ("CCR_CLAUDE_MAX_RETRIES", "many")):
        outcome = run_job(spec_json("task-badenv", prompt="x", repo=repo), {**real_job_env, name: value})
        assert outcome.returncode == 1 and outcome.result["errorType"] == "invalid"
        assert "invalid job environment" in outcome.result["message"]
        assert json.loads((tmp_path / "termination-log").read_text())["errorType"] == "invalid"
