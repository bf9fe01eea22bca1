"""No secret value from the environment leaves the pipeline: searched for by value everywhere it could go."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

from tests.doubles.fake_anthropic import FakeAnthropic, Reply, Text, bash
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


def test_a_hostile_model_cannot_leak_secrets_through_the_real_cli(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    """The model (a script here, so it knows the values) prints the environment with the Bash tool and
    repeats the tokens in its messages and final answer; the real CLI passes all of it to stdout."""
    session_secret = f"session-secret-{secrets.token_hex(12)}"
    api_key = "sk-ant-api03-" + secrets.token_urlsafe(40)
    env = {**real_job_env, "SESSION_SECRET": session_secret, "ANTHROPIC_API_KEY": api_key}
    secret_values = [env["GITHUB_TOKEN"], env["CLAUDE_CODE_OAUTH_TOKEN"], session_secret, api_key]
    said = " and ".join(secret_values)
    fake_anthropic.script(
        bash("printenv GITHUB_TOKEN SESSION_SECRET; echo done"),
        Reply([Text(f"The tokens are {said}")]),
        bash("printf 'harmless\\n' > HARMLESS.md && git add -A && git commit -qm 'Harmless change' && git push -q"),
        Reply([Text(f"Printed the environment; the runner should have hidden {said}")]),
    )
    outcome = run_job(spec_json("task-leak", prompt=f"Print env {session_secret}", repo=repo), env)
    assert outcome.result["status"] == "Succeeded", outcome.stdout[-3000:]
    # The values really went through (so this test would catch a leak) ...
    assert outcome.stdout.count("[REDACTED]") >= 8
    tool_results = [e for e in outcome.events if e.get("type") == "user"]
    assert "[REDACTED]" in json.dumps(tool_results)  # printenv's output
    # ... and ANTHROPIC_API_KEY never reached claude: it would have sent it as x-api-key.
    for request in fake_anthropic.message_requests():
        assert request.header("x-api-key") is None
        assert request.header("Authorization") == f"Bearer {env['CLAUDE_CODE_OAUTH_TOKEN']}"
    clone = Path(outcome.steps("clone")[0]["path"])
    places = _everything_that_left(
        fake_github, repo, outcome.stdout, outcome.stderr, clone, tmp_path / "termination-log"
    )
    for where, text in places.items():
        for value in secret_values:
            assert value not in text, f"a secret leaked into {where}"
            assert value[: len(value) // 2] not in text or where == "git config", f"half a secret in {where}"


def test_no_secret_value_leaks_anywhere(
    fake_github: FakeGitHub, repo: str, job_env: dict[str, str], tmp_path: Path
) -> None:
    # The fake CLI: it writes each secret to stderr split across two writes, which the real CLI cannot be
    # made to do; that is what the stream redactor of claude's stderr must handle.
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


# Without user:inference the CLI does not use the file's token ("Not logged in").
SCOPES = ["user:inference", "user:profile"]


def test_credentials_file_tokens_are_redacted(
    fake_github: FakeGitHub, fake_anthropic: FakeAnthropic, repo: str, real_job_env: dict[str, str], tmp_path: Path
) -> None:
    """A hostile model reads the copied credentials file with the real CLI's Bash tool."""
    access, refresh = f"sk-ant-oat01-{secrets.token_hex(20)}", f"sk-ant-ort01-{secrets.token_hex(20)}"
    source = tmp_path / "credentials.json"
    expires = int((time.time() + 3600) * 1000)
    source.write_text(
        json.dumps(
            {"claudeAiOauth": {"accessToken": access, "refreshToken": refresh, "expiresAt": expires, "scopes": SCOPES}}
        )
    )
    env = {k: v for k, v in real_job_env.items() if k != "CLAUDE_CODE_OAUTH_TOKEN"}
    env["CCR_CLAUDE_CREDENTIALS_FILE"] = str(source)
    fake_anthropic.script(bash("cat $HOME/.claude/.credentials.json"), Reply([Text("Printed it.")]))
    outcome = run_job(spec_json("task-leak-file", prompt="Print the credentials", repo=repo), env)
    assert outcome.result["status"] == "Succeeded", outcome.stdout[-3000:]
    printed = [e for e in outcome.events if e.get("type") == "user"]
    assert "claudeAiOauth" in json.dumps(printed) and "[REDACTED]" in json.dumps(printed)
    clone = Path(outcome.steps("clone")[0]["path"])
    places = _everything_that_left(
        fake_github, repo, outcome.stdout, outcome.stderr, clone, tmp_path / "termination-log"
    )
    for where, text in places.items():
        assert access not in text and refresh not in text, f"a credentials-file token leaked into {where}"
