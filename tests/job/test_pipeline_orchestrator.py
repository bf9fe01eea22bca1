"""Choosing the repository when the task names none: from the prompt, through Claude, or not at all."""

from __future__ import annotations

import pytest

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import run_job, spec_json
from tests.job.conftest import fake_log

OTHERS = [f"acme/service-{i:02d}" for i in range(10)]


@pytest.fixture
def many_repos() -> list[str]:
    return ["acme/widgets", "acme/gadgets", *OTHERS]


@pytest.fixture
def paged_github(fake_github: FakeGitHub, many_repos: list[str]) -> FakeGitHub:
    fake_github.per_page_cap = 5  # twelve repositories over three pages
    for name in many_repos:
        fake_github.add_repo(name, description=f"The {name.split('/')[1]} code")
    return fake_github


def test_prompt_without_repo_is_resolved_by_the_orchestrator(
    paged_github: FakeGitHub, many_repos: list[str], job_env: dict[str, str]
) -> None:
    outcome = run_job(spec_json("task-pick", prompt="Fix the flaky test in the gadgets service"), job_env)
    assert outcome.returncode == 0, outcome.stdout[-2000:]
    assert outcome.result["repo"] == "acme/gadgets" and outcome.result["status"] == "Succeeded"
    assert "chosen by Claude" in outcome.steps("repo_selected")[0]["message"]
    orchestrator = next(e for e in fake_log(job_env) if e["event"] == "orchestrator")
    assert sorted(orchestrator["candidates"]) == sorted(many_repos)  # all pages were read
    pages = [r for r in paged_github.request_log() if r.path == "/api/v3/user/repos"]
    assert len(pages) == 3
    starts = [e for e in fake_log(job_env) if e["event"] == "start"]
    assert [s["orchestrator"] for s in starts] == [True, False]
    assert "--dangerously-skip-permissions" not in starts[0]["argv"]
    assert "--json-schema" in starts[0]["argv"]
    assert paged_github.pulls("acme/gadgets") and outcome.result["usage"]["costUsd"] == pytest.approx(0.0632)


def test_repo_named_in_the_prompt_needs_no_claude_turn(paged_github: FakeGitHub, job_env: dict[str, str]) -> None:
    outcome = run_job(spec_json("task-named", prompt="In acme/widgets, fix the README typo"), job_env)
    assert outcome.result["repo"] == "acme/widgets"
    assert "named in the prompt" in outcome.steps("repo_selected")[0]["message"]
    assert [e["orchestrator"] for e in fake_log(job_env) if e["event"] == "start"] == [False]


def test_ambiguous_prompt_fails_as_invalid_with_candidates(
    paged_github: FakeGitHub, many_repos: list[str], job_env: dict[str, str]
) -> None:
    outcome = run_job(spec_json("task-vague", prompt="Improve the docs [fake:ambiguous]"), job_env)
    assert outcome.returncode == 1
    result = outcome.result
    assert result["status"] == "Failed" and result["errorType"] == "invalid"
    assert "could not tell which repository" in result["message"]
    for name in many_repos:
        assert name in result["message"]
    assert "worker" not in outcome.phases()
    assert all(paged_github.pulls(name) == [] for name in many_repos)
