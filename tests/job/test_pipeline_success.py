"""A successful run end to end: real git over HTTP, real REST calls, the pipeline as a subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import JobProcess, run_job, spec_json
from tests.job.conftest import fake_log


def _is_worker_claude_event(event: dict[str, object]) -> bool:
    return event.get("type") != "ccr"


def test_success_opens_draft_pr_first_pushes_everything_and_reports(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    job = JobProcess.start(spec_json("task-ok", prompt="Add a greeting [fake:success]", repo=repo), job_env)
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

    outcome = job.finish()
    assert outcome.returncode == 0, outcome.stderr
    result = outcome.result
    assert result["status"] == "Succeeded" and "errorType" not in result
    assert result["prUrl"] == pulls_then[0]["html_url"]
    assert result["repo"] == repo and result["branch"] == "claude/task-ok"
    assert result["usage"]["costUsd"] == 0.0612 and result["usage"]["turns"] == 3
    assert result["usage"]["durationMs"] > 0 and result["sessionId"]
    assert outcome.phases() == ["preflight", "orchestrator", "worker", "finish"]
    assert [s["step"] for s in outcome.events if s.get("event") == "step"][:5] == [
        "repo_selected",
        "clone",
        "branch",
        "push",
        "pr_opened",
    ]
    assert outcome.steps("pr_opened")[0]["url"] == result["prUrl"]

    # Every commit the fake claude made is on the remote branch, after the empty start commit.
    made = [e["sha"] for e in fake_log(job_env) if e["event"] == "commit"]
    remote = fake_github.branch_commits(repo, "claude/task-ok")
    assert len(made) == 2 and set(made) <= set(remote)
    assert len(remote) == 4  # initial + start + two changes
    assert "first change" in fake_github.file_at(repo, "claude/task-ok", "FAKE_CLAUDE.md")

    # The PR body carries the prompt, the outcome and the cost; it stays a draft by default.
    pull = fake_github.pulls(repo)[0]
    assert "Add a greeting" in pull["body"] and "task-ok" in pull["body"]
    assert "| Status | Succeeded |" in pull["body"] and "$0.0612" in pull["body"] and "| Turns | 3 |" in pull["body"]
    assert "Made two changes" in pull["body"]
    assert pull["draft"] is True

    # Every stdout line is JSON; the termination message is the result, under 4 KB.
    assert all(line.event is not None for line in outcome.lines)
    termination = (tmp_path / "termination-log").read_text()
    assert len(termination.encode()) < 4096 and json.loads(termination)["prUrl"] == result["prUrl"]


def test_unpushed_commits_are_pushed_by_the_safety_net(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    outcome = run_job(spec_json("task-nopush", prompt="Change it [fake:success:nopush]", repo=repo), job_env)
    assert outcome.result["status"] == "Succeeded"
    made = [e["sha"] for e in fake_log(job_env) if e["event"] == "commit"]
    assert not [e for e in fake_log(job_env) if e["event"] == "push"]
    assert set(made) <= set(fake_github.branch_commits(repo, "claude/task-nopush"))
    assert "pushed unpushed commits" in outcome.steps("safety_net")[0]["message"]


def test_mark_ready_on_success_when_configured(fake_github: FakeGitHub, repo: str, job_env: dict[str, str]) -> None:
    env = {**job_env, "CCR_MARK_READY_ON_SUCCESS": "true"}
    outcome = run_job(spec_json("task-ready", prompt="Do it [fake:success]", repo=repo), env)
    assert outcome.result["status"] == "Succeeded"
    assert fake_github.pulls(repo)[0]["draft"] is False
    assert outcome.steps("pr_ready")


def test_follow_up_continues_the_branch_and_its_pull_request(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str]
) -> None:
    first = run_job(spec_json("task-first", prompt="Start [fake:success]", repo=repo), job_env)
    assert first.result["status"] == "Succeeded"
    before = fake_github.branch_commits(repo, "claude/task-first")
    second = run_job(
        spec_json(
            "task-second",
            prompt="Now more [fake:success]",
            repo=repo,
            branch="claude/task-first",
            followUpOf="task-first",
        ),
        job_env,
    )
    assert second.result["status"] == "Succeeded", second.stderr
    assert second.result["prUrl"] == first.result["prUrl"] and second.result["branch"] == "claude/task-first"
    assert len(fake_github.pulls(repo)) == 1
    after = fake_github.branch_commits(repo, "claude/task-first")
    assert after[len(after) - len(before) :] == before and len(after) == len(before) + 2
    assert "claude/task-second" not in fake_github.branches(repo)
    assert "continuing" in second.steps("pr_opened")[0]["message"]


def test_large_prompt_goes_through_stdin_whole(fake_github: FakeGitHub, repo: str, job_env: dict[str, str]) -> None:
    import hashlib

    body = "".join(f"Requirement {i}: the widget must handle case {i} gracefully.\n" for i in range(3500))
    prompt = "Implement the spec below [fake:success]\n" + body
    prompt = prompt[: 200 * 1024]
    assert len(prompt.encode()) == 200 * 1024
    outcome = run_job(spec_json("task-big", prompt=prompt, repo=repo), job_env)
    assert outcome.returncode == 0 and outcome.result["status"] == "Succeeded", outcome.stderr
    start = next(e for e in fake_log(job_env) if e["event"] == "start")
    assert start["prompt_bytes"] == 200 * 1024
    assert start["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert not any(len(arg) > 10_000 for arg in start["argv"])
    pull = fake_github.pulls(repo)[0]
    assert len(pull["body"]) < 65536 and "prompt truncated" in pull["body"]


def test_clone_credentials_never_hold_the_token(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    outcome = run_job(spec_json("task-cfg", prompt="x [fake:success]", repo=repo), job_env)
    assert outcome.result["status"] == "Succeeded"
    clone = Path(outcome.steps("clone")[0]["path"])
    config = (clone / ".git" / "config").read_text()
    remotes = subprocess.run(["git", "remote", "-v"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert fake_github.token not in config and fake_github.token not in remotes
    assert "@" not in remotes.split()[1]  # no userinfo in the URL
    # git requests were authenticated: the helper supplied the token
    assert any(r.path.endswith("git-receive-pack") and r.auth == "ok" for r in fake_github.request_log())
