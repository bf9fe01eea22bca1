"""No secret value from the environment leaves the pipeline: searched for by value everywhere it could go."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import run_job, spec_json
from tests.job.conftest import fake_log


def _everything_that_left(
    fake_github: FakeGitHub, repo: str, outcome_stdout: str, stderr: str, clone: Path, termination: Path
) -> dict[str, str]:
    pulls = fake_github.pulls(repo)
    config = (clone / ".git" / "config").read_text()
    remotes = subprocess.run(["git", "remote", "-v"], cwd=clone, capture_output=True, text=True, check=True).stdout
    return {
        "stdout": outcome_stdout,
        "stderr": stderr,
        "pr bodies and titles": json.dumps([(p["title"], p["body"]) for p in pulls]),
        "pr comments": json.dumps(fake_github.comments(repo)),
        "termination log": termination.read_text(),
        "git config": config,
        "git remotes": remotes,
        "commit messages": subprocess.run(
            ["git", "log", "--all", "--format=%B"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout,
    }


def test_no_secret_value_leaks_anywhere(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    session_secret = f"session-secret-{secrets.token_hex(12)}"
    api_key = "sk-ant-api03-" + secrets.token_urlsafe(40)
    env = {**job_env, "SESSION_SECRET": session_secret, "ANTHROPIC_API_KEY": api_key}
    secret_values = [env["GITHUB_TOKEN"], env["CLAUDE_CODE_OAUTH_TOKEN"], session_secret, api_key]
    # The prompt itself carries one as well (people paste things).
    outcome = run_job(spec_json("task-leak", prompt=f"Print env [fake:leak] {session_secret}", repo=repo), env)
    assert outcome.result["status"] == "Succeeded", outcome.stdout[-3000:]
    # The fake claude really printed them (so this test would catch a leak) ...
    assert "[REDACTED]" in outcome.stdout and "leaked: [REDACTED]" in outcome.stderr
    # ... and ANTHROPIC_API_KEY never reached claude (the fake exits 65 if it does).
    assert next(e["event"] for e in fake_log(env)) == "start"
    clone = Path(outcome.steps("clone")[0]["path"])
    places = _everything_that_left(
        fake_github, repo, outcome.stdout, outcome.stderr, clone, tmp_path / "termination-log"
    )
    for where, text in places.items():
        for value in secret_values:
            assert value not in text, f"a secret leaked into {where}"
            assert value[: len(value) // 2] not in text or where == "git config", f"half a secret in {where}"


def test_credentials_file_tokens_are_redacted(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    access, refresh = f"acc-{secrets.token_hex(20)}", f"ref-{secrets.token_hex(20)}"
    source = tmp_path / "credentials.json"
    source.write_text(json.dumps({"claudeAiOauth": {"accessToken": access, "refreshToken": refresh, "expiresAt": 9}}))
    env = {k: v for k, v in job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    env["CCR_CLAUDE_CREDENTIALS_FILE"] = str(source)
    outcome = run_job(spec_json("task-leak-file", prompt="Print env [fake:leak]", repo=repo), env)
    assert outcome.result["status"] == "Succeeded"
    clone = Path(outcome.steps("clone")[0]["path"])
    places = _everything_that_left(
        fake_github, repo, outcome.stdout, outcome.stderr, clone, tmp_path / "termination-log"
    )
    for where, text in places.items():
        assert access not in text and refresh not in text, f"a credentials-file token leaked into {where}"
