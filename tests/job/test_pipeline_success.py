"""A successful run end to end: the real Claude Code CLI against the fake Anthropic API, real git over HTTP,
real REST calls to the fake GitHub, the pipeline as a subprocess (``python -m ccr.job``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ccr.core.units import usd
from ccr.job.claude import WORKER_RULES
from tests.doubles.conversations import SUMMARY, worker_success
from tests.doubles.fake_anthropic import FakeAnthropic
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import JobOutcome, JobProcess, run_job, spec_json


def _is_worker_claude_event(event: dict[str, object]) -> bool:
    return event.get("type") != "ccr"


def claude_results(outcome: JobOutcome) -> list[dict[str, Any]]:
    """The real CLI's own result events, as the pipeline passed them through."""
    return [e for e in outcome.events if e.get("type") == "result"]


def test_success_opens_draft_pr_first_pushes_everything_and_reports(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    fake_anthropic.script(*worker_success())
    spec = spec_json("task-ok", prompt="Add a greeting", repo=repo, model="claude-sonnet-4-5")
    job = JobProcess.start(spec, real_job_env)
    job.wait_for(lambda e: e.get("event") == "phase" and e.get("phase") == "worker")
    first_worker = job.wait_for(_is_worker_claude_event)
    # The draft PR exists on GitHub by the time the worker's first event arrives ...
    pulls_then = fake_github.pulls(repo)
    assert len(pulls_then) == 1 and pulls_then[0]["draft"] is True
    assert pulls_then[0]["head"]["ref"] == "claude/task-ok" and pulls_then[0]["base"]["ref"] == "main"
    # ... and it was created before that event was read (request log order vs stdout order).
    creates = [r for r in fake_github.request_log() if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(creates) == 1 and creates[0].at < first_worker.at
    assert first_worker.event is not None and first_worker.event["type"] == "system"
    assert first_worker.event["subtype"] == "init" and first_worker.event["claude_code_version"] != "0.0.0-fake"

    outcome = job.finish()
    assert outcome.returncode == 0, outcome.stderr
    result = outcome.result
    assert result["status"] == "Succeeded" and "errorType" not in result
    assert result["prUrl"] == pulls_then[0]["html_url"]
    assert result["repo"] == repo and result["branch"] == "claude/task-ok"
    # The usage is the real CLI's result event's (the repository was named: no orchestrator run).
    [claude_result] = claude_results(outcome)
    usage = result["usage"]
    assert usage["costUsd"] == claude_result["total_cost_usd"] > 0
    assert usage["turns"] == claude_result["num_turns"] == 4
    assert usage["inputTokens"] == claude_result["usage"]["input_tokens"] == 4 * 120
    assert usage["outputTokens"] == claude_result["usage"]["output_tokens"] == 4 * 30
    assert usage["durationMs"] > 0 and result["sessionId"] == claude_result["session_id"]
    assert outcome.phases() == ["preflight", "orchestrator", "worker", "finish"]
    assert [s["step"] for s in outcome.events if s.get("event") == "step"][:5] == [
        "repo_selected",
        "clone",
        "branch",
        "push",
        "pr_opened",
    ]
    assert outcome.steps("pr_opened")[0]["url"] == result["prUrl"]

    # What the model was sent: the task, our rules in the system prompt, the model, the subscription token.
    request = fake_anthropic.last_request()
    assert "Add a greeting" in request.first_user_text
    assert WORKER_RULES.splitlines()[0] in request.system_text
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.header("Authorization") == f"Bearer {real_job_env['CLAUDE_CODE_OAUTH_TOKEN']}"
    assert request.header("x-api-key") is None
    assert {"Bash", "Edit", "Write", "Agent"} <= set(request.tool_names)

    # The commits the real CLI's Bash tool made are on the remote branch, after the empty start commit.
    remote = fake_github.branch_commits(repo, "claude/task-ok")
    assert len(remote) == 4  # initial + start + two changes
    assert fake_github.file_at(repo, "claude/task-ok", "WORKER.md") == "first change by the worker\n"
    assert "Edited by the worker." in fake_github.file_at(repo, "claude/task-ok", "README.md")
    assert "pushed unpushed" not in outcome.steps("safety_net")[0]["message"]

    # The PR body carries the prompt, the outcome and the cost (with its digits); it stays a draft.
    pull = fake_github.pulls(repo)[0]
    assert "Add a greeting" in pull["body"] and "task-ok" in pull["body"]
    assert "| Status | Succeeded |" in pull["body"] and "| Turns | 4 |" in pull["body"]
    assert f"| Cost | {usd(claude_result['total_cost_usd'])} |" in pull["body"]
    assert usd(claude_result["total_cost_usd"]) != "$0.00"
    assert SUMMARY in pull["body"]
    assert pull["draft"] is True

    # Every stdout line is JSON; the termination message is the result, under 4 KB.
    assert all(line.event is not None for line in outcome.lines)
    termination = (tmp_path / "termination-log").read_text()
    assert len(termination.encode()) < 4096 and json.loads(termination)["prUrl"] == result["prUrl"]


def test_unpushed_commits_are_pushed_by_the_safety_net(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*worker_success(pushes=False))
    outcome = run_job(spec_json("task-nopush", prompt="Change it", repo=repo), real_job_env)
    assert outcome.result["status"] == "Succeeded", outcome.stderr
    assert "pushed unpushed commits" in outcome.steps("safety_net")[0]["message"]
    assert len(fake_github.branch_commits(repo, "claude/task-nopush")) == 4
    assert fake_github.file_at(repo, "claude/task-nopush", "WORKER.md") == "first change by the worker\n"


def test_mark_ready_on_success_when_configured(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*worker_success())
    env = {**real_job_env, "CCR_MARK_READY_ON_SUCCESS": "true"}
    outcome = run_job(spec_json("task-ready", prompt="Do it", repo=repo), env)
    assert outcome.result["status"] == "Succeeded"
    assert fake_github.pulls(repo)[0]["draft"] is False
    assert outcome.steps("pr_ready")


def test_follow_up_continues_the_branch_and_its_pull_request(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*worker_success(), match="Start the widgets")
    fake_anthropic.script(*worker_success(summary="Two more changes.", file="MORE.md"), match="Now more")
    first = run_job(spec_json("task-first", prompt="Start the widgets", repo=repo), real_job_env)
    assert first.result["status"] == "Succeeded", first.stderr
    before = fake_github.branch_commits(repo, "claude/task-first")
    second = run_job(
        spec_json("task-second", prompt="Now more", repo=repo, branch="claude/task-first", followUpOf="task-first"),
        real_job_env,
    )
    assert second.result["status"] == "Succeeded", second.stderr
    assert second.result["prUrl"] == first.result["prUrl"] and second.result["branch"] == "claude/task-first"
    assert len(fake_github.pulls(repo)) == 1
    after = fake_github.branch_commits(repo, "claude/task-first")
    assert after[len(after) - len(before) :] == before and len(after) == len(before) + 2
    assert "claude/task-second" not in fake_github.branches(repo)
    assert "continuing" in second.steps("pr_opened")[0]["message"]
    assert "Two more changes." in fake_github.pulls(repo)[0]["body"]


def test_large_prompt_goes_through_stdin_whole(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    body = "".join(f"Requirement {i}: the widget must handle case {i} gracefully.\n" for i in range(3500))
    prompt = ("Implement the spec below\n" + body)[: 200 * 1024]
    assert len(prompt.encode()) == 200 * 1024
    fake_anthropic.script(*worker_success())
    outcome = run_job(spec_json("task-big", prompt=prompt, repo=repo), real_job_env)
    assert outcome.returncode == 0 and outcome.result["status"] == "Succeeded", outcome.stderr
    # The model got every byte of it (the argv builders never carry the prompt: tests/job/test_builders.py).
    assert prompt.rstrip("\n") in fake_anthropic.last_request().first_user_text
    pull = fake_github.pulls(repo)[0]
    assert len(pull["body"]) < 65536 and "prompt truncated" in pull["body"]


def test_clone_credentials_never_hold_the_token(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*worker_success())
    outcome = run_job(spec_json("task-cfg", prompt="x", repo=repo), real_job_env)
    assert outcome.result["status"] == "Succeeded"
    clone = Path(outcome.steps("clone")[0]["path"])
    config = (clone / ".git" / "config").read_text()
    remotes = subprocess.run(["git", "remote", "-v"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert fake_github.token not in config and fake_github.token not in remotes
    assert "@" not in remotes.split()[1]  # no userinfo in the URL
    # the real CLI's git pushes were authenticated: the helper supplied the token
    pushes = [r for r in fake_github.request_log() if r.path.endswith("git-receive-pack")]
    assert len(pushes) >= 3 and all(r.auth == "ok" for r in pushes)
