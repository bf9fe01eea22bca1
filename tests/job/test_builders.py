"""The pure builders: argv and environment for claude, git config, PR text, the result line."""

from __future__ import annotations

import json

import pytest

from ccr.core.events import TERMINATION_LOG_LIMIT, result_line
from ccr.core.model import ErrorType, JobResult, Phase, Usage
from ccr.job import prtext
from ccr.job.claude import REPO_SCHEMA, child_env, orchestrator_argv, orchestrator_prompt, worker_argv
from ccr.job.github import graphql_url
from ccr.job.gitops import CREDENTIAL_HELPER, Identity, clone_config, clone_url
from ccr.job.pipeline import ambiguous_message, repos_named_in


def test_worker_argv_has_our_flags_and_never_the_prompt() -> None:
    argv = worker_argv("claude", "opus", 40)
    assert argv[:6] == ["claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
    assert argv[argv.index("--model") + 1] == "opus" and argv[argv.index("--max-turns") + 1] == "40"
    assert "AskUserQuestion" in argv[argv.index("--append-system-prompt") + 1]
    assert worker_argv("claude", None, None).count("--model") == 0


def test_orchestrator_argv_is_read_only_with_a_schema() -> None:
    argv = orchestrator_argv("claude", None)
    assert "--dangerously-skip-permissions" not in argv
    assert json.loads(argv[argv.index("--json-schema") + 1]) == REPO_SCHEMA


def test_orchestrator_prompt_lists_candidates_and_quotes_the_task() -> None:
    prompt = orchestrator_prompt("fix it", [{"full_name": "a/b", "description": "B\nservice"}, {"full_name": "c/d"}])
    assert "- a/b: B service" in prompt and "- c/d: " in prompt and "<<<\nfix it\n>>>" in prompt


def test_child_env_scrubs_api_keys_and_sets_home() -> None:
    env = child_env(
        {"ANTHROPIC_API_KEY": "x", "ANTHROPIC_AUTH_TOKEN": "y", "GITHUB_TOKEN": "t", "PATH": "/bin"},
        "https://github.com",
        __import__("pathlib").Path("/home/ccr"),
        max_retries=3,
    )
    assert "ANTHROPIC_API_KEY" not in env and "ANTHROPIC_AUTH_TOKEN" not in env
    assert env["HOME"] == "/home/ccr" and env["GITHUB_TOKEN"] == "t" and "GH_HOST" not in env
    ghes = child_env({"GITHUB_TOKEN": "t"}, "https://ghe.example.com", __import__("pathlib").Path("/h"), max_retries=3)
    assert ghes["GH_HOST"] == "ghe.example.com" and ghes["GH_ENTERPRISE_TOKEN"] == "t"


def test_child_env_bounds_claude_retries_over_the_callers_value() -> None:
    env = child_env(
        {"CLAUDE_CODE_MAX_RETRIES": "10"}, "https://github.com", __import__("pathlib").Path("/h"), max_retries=0
    )
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "0"


def test_the_retry_bound_is_a_setting_with_a_small_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from ccr.job.config import DEFAULT_CLAUDE_MAX_RETRIES, JobSettings

    monkeypatch.delenv("CCR_CLAUDE_MAX_RETRIES", raising=False)
    assert JobSettings().claude_max_retries == DEFAULT_CLAUDE_MAX_RETRIES == 3
    monkeypatch.setenv("CCR_CLAUDE_MAX_RETRIES", "5")
    assert JobSettings().claude_max_retries == 5
    monkeypatch.setenv("CCR_CLAUDE_MAX_RETRIES", "50")
    with pytest.raises(ValidationError):
        JobSettings()


def test_git_config_refers_to_the_token_by_name_only() -> None:
    config = clone_config("https://github.com/", Identity.from_github_user({"login": "octo", "id": 7}))
    assert config["credential.helper"] == ""
    assert config["credential.https://github.com.helper"] == CREDENTIAL_HELPER
    assert "${GITHUB_TOKEN}" in CREDENTIAL_HELPER
    assert config["user.email"] == "7+octo@users.noreply.github.com" and config["user.name"] == "octo"
    assert clone_url("https://github.com/", "a/b") == "https://github.com/a/b.git"


def test_graphql_url_for_github_and_enterprise() -> None:
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/graphql"


def test_repos_named_in_prompt_whole_names_only() -> None:
    names = ["acme/widgets", "acme/widgets-ui", "other/thing"]
    assert repos_named_in("Fix acme/widgets please", names) == ["acme/widgets"]
    assert repos_named_in("Fix ACME/Widgets-UI.", names) == ["acme/widgets-ui"]
    assert repos_named_in("the widgets service", names) == []
    assert repos_named_in("compare acme/widgets with other/thing", names) == ["acme/widgets", "other/thing"]


def test_ambiguous_message_lists_and_bounds_candidates() -> None:
    names = [f"o/r{i}" for i in range(30)]
    message = ambiguous_message(names, "several fit")
    assert "o/r0" in message and "o/r19" in message and "o/r20" not in message and "and 10 more" in message
    assert "several fit" in message


def test_pr_title_and_body() -> None:
    assert prtext.pr_title("\n\n  Fix the login redirect  \nmore") == "Fix the login redirect"
    assert len(prtext.pr_title("x" * 500)) == prtext.TITLE_MAX
    body = prtext.pr_body("t-1", "line one\n\nline three")
    assert "`t-1`" in body and "> line one\n>\n> line three" in body
    assert prtext.OUTCOME_START in body and prtext.OUTCOME_END in body
    assert len(prtext.pr_body("t", "y" * 300_000)) < 65536


def test_outcome_section_replaces_only_its_own_part() -> None:
    body = prtext.pr_body("t-1", "do it") + "\nNotes Claude added.\n"
    result = JobResult(
        status=Phase.FAILED,
        error_type=ErrorType.EXIT_CODE,
        message="max_turns: 50",
        usage=Usage(cost_usd=1.5, turns=50, duration_ms=125_000),
    )
    summary, blockers = prtext.split_blockers("Did half.\n\nBlockers:\n- the API key is missing")
    assert summary == "Did half." and blockers == "- the API key is missing"
    updated = prtext.with_outcome(body, prtext.outcome_section(result, summary, blockers))
    assert "Running…" not in updated and "Notes Claude added." in updated and "> do it" in updated
    assert "| Cost | $1.50 |" in updated and "| Turns | 50 |" in updated and "2.1 min" in updated
    assert "`exit_code`" in updated and "the API key is missing" in updated
    assert updated.count(prtext.OUTCOME_START) == 1
    assert prtext.with_outcome("no markers", "S").endswith("S\n")


def test_result_line_is_cut_below_the_termination_limit_message_first() -> None:
    result = JobResult(
        status=Phase.FAILED,
        error_type=ErrorType.EXIT_CODE,
        message="é" * 10_000,
        repo="a/b",
        pr_url="https://github.com/a/b/pull/1",
        usage=Usage(cost_usd=0.5),
    )
    line = result_line(result, TERMINATION_LOG_LIMIT)
    assert len(line.encode()) < TERMINATION_LOG_LIMIT
    payload = json.loads(line)
    assert payload["message"].endswith("…") and payload["prUrl"] == "https://github.com/a/b/pull/1"
    assert payload["usage"] == {"costUsd": 0.5} and payload["type"] == "ccr" and payload["event"] == "result"
    short = JobResult(status=Phase.SUCCEEDED, message="ok")
    assert json.loads(result_line(short, TERMINATION_LOG_LIMIT))["message"] == "ok"
