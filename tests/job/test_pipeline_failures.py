"""Each way a run can fail ends in the right errorType, with the work saved and the PR told."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import run_job, spec_json
from tests.job.conftest import fake_log


@pytest.mark.parametrize(
    ("scenario", "error_type", "in_message"),
    [
        ("auth_expired", "auth_expired", "OAuth session expired"),
        ("usage_limit", "capacity_reached", "session limit"),
        ("max_turns", "exit_code", "max_turns"),
        ("crash", "exit_code", "fake crash"),
    ],
)
def test_fixture_scenarios_are_classified(
    fake_github: FakeGitHub,
    repo: str,
    job_env: dict[str, str],
    tmp_path: Path,
    scenario: str,
    error_type: str,
    in_message: str,
) -> None:
    outcome = run_job(
        spec_json(f"task-{scenario.replace('_', '-')}", prompt=f"Work [fake:{scenario}]", repo=repo), job_env
    )
    assert outcome.returncode == 1
    result = outcome.result
    assert result["status"] == "Failed" and result["errorType"] == error_type
    assert in_message in result["message"]
    assert result["prUrl"]  # the draft PR was opened before the worker failed
    body = fake_github.pulls(repo)[0]["body"]
    assert f"`{error_type}`" in body and "| Status | Failed |" in body
    assert json.loads((tmp_path / "termination-log").read_text())["errorType"] == error_type
    if scenario == "usage_limit":
        reset = dt.datetime.fromisoformat(result["resetTime"])
        assert int(reset.timestamp()) == 1788003600
        assert "Capacity resets" in body
    assert all(line.event is not None for line in outcome.lines)  # stdout stays JSON Lines
    if scenario == "crash":
        raw = [e for e in outcome.events if e.get("type") == "ccr" and e.get("event") == "raw"]
        assert raw and raw[0]["text"].startswith("Error: not JSON")
        assert "TypeError: fake crash" in outcome.stderr
    if scenario == "max_turns":
        # the half-done, uncommitted work was committed as WIP and pushed
        branch = result["branch"]
        assert "half-done" in fake_github.file_at(repo, branch, "UNFINISHED.md")
        assert "committed the uncommitted work" in outcome.steps("safety_net")[0]["message"]
        assert result["usage"]["costUsd"] == 1.234


def test_missing_claude_credentials_fail_before_claude_runs(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    env = {k: v for k, v in job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    outcome = run_job(spec_json("task-nocreds", prompt="x [fake:success]", repo=repo), env)
    assert outcome.returncode == 1
    assert outcome.result["errorType"] == "invalid" and "CLAUDE_CODE_OAUTH_TOKEN" in outcome.result["message"]
    assert fake_log(env) == []  # claude never ran
    assert outcome.phases() == ["preflight", "finish"]
    assert fake_github.pulls(repo) == []


def test_rejected_github_token_is_auth_expired_before_claude_runs(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    env = {**job_env, "GITHUB_TOKEN": "fake-gh-token-revoked-0000"}
    outcome = run_job(spec_json("task-badgh", prompt="x [fake:success]", repo=repo), env)
    assert outcome.result["errorType"] == "auth_expired" and "GITHUB_TOKEN" in outcome.result["message"]
    assert fake_log(env) == []
    assert [r.path for r in fake_github.request_log()] == ["/api/v3/user"]


def test_missing_github_token_is_invalid(repo: str, job_env: dict[str, str]) -> None:
    env = {k: v for k, v in job_env.items() if k != "GITHUB_TOKEN"}
    outcome = run_job(spec_json("task-nogh", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid" and "GITHUB_TOKEN" in outcome.result["message"]


def test_root_is_refused_unless_allowed_for_tests(repo: str, job_env: dict[str, str]) -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    env = {k: v for k, v in job_env.items() if k != "CCR_ALLOW_ROOT"}
    outcome = run_job(spec_json("task-root", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid"
    assert "root" in outcome.result["message"] and "--dangerously-skip-permissions" in outcome.result["message"]
    assert fake_log(env) == []


def test_missing_claude_binary_is_invalid(repo: str, job_env: dict[str, str], tmp_path: Path) -> None:
    env = {**job_env, "CCR_CLAUDE_BIN": str(tmp_path / "no-such-claude")}
    outcome = run_job(spec_json("task-nobin", prompt="x", repo=repo), env)
    assert outcome.result["errorType"] == "invalid" and "not found" in outcome.result["message"]


def test_unknown_repository_is_invalid(fake_github: FakeGitHub, job_env: dict[str, str]) -> None:
    outcome = run_job(spec_json("task-norepo", prompt="x", repo="acme/nope"), job_env)
    assert outcome.result["errorType"] == "invalid" and "acme/nope" in outcome.result["message"]
    assert fake_log(job_env) == []


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        json.dumps({"id": "Bad_Id", "spec": {"prompt": "x"}}),
        json.dumps({"id": "ok", "spec": {"prompt": " "}}),
    ],
)
def test_invalid_spec_is_invalid(job_env: dict[str, str], spec: str) -> None:
    outcome = run_job(spec, job_env)
    assert outcome.returncode == 1
    assert outcome.result["status"] == "Failed" and outcome.result["errorType"] == "invalid"
    assert "invalid task spec" in outcome.result["message"]


def test_credentials_file_is_copied_into_a_writable_home(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "secret-mount" / "credentials.json"
    source.parent.mkdir()
    source.write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": "sk-ant-oat01-" + "a" * 40,
                    "refreshToken": "sk-ant-ort01-" + "b" * 40,
                    "expiresAt": 1,
                }
            }
        )
    )
    source.chmod(0o444)
    env = {k: v for k, v in job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    env["CCR_CLAUDE_CREDENTIALS_FILE"] = str(source)
    outcome = run_job(spec_json("task-credfile", prompt="x [fake:success]", repo=repo), env)
    assert outcome.result["status"] == "Succeeded", outcome.stdout[-2000:]
    copied = Path(env["HOME"]) / ".claude" / ".credentials.json"
    assert copied.read_text() == source.read_text()
    assert copied.stat().st_mode & 0o777 == 0o600


def test_malformed_job_environment_is_invalid(repo: str, job_env: dict[str, str], tmp_path: Path) -> None:
    env = {**job_env, "CCR_CANCEL_GRACE_SECONDS": "soon"}
    outcome = run_job(spec_json("task-badenv", prompt="x", repo=repo), env)
    assert outcome.returncode == 1 and outcome.result["errorType"] == "invalid"
    assert "invalid job environment" in outcome.result["message"]
    assert json.loads((tmp_path / "termination-log").read_text())["errorType"] == "invalid"
    assert fake_log(env) == []
