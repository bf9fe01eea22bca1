"""Choosing the repository when the task names none: from the prompt, through Claude, or not at all.

Claude is the real CLI against the fake Anthropic API: ``--json-schema`` reaches the model as the
``StructuredOutput`` tool, whose call is the answer.
"""

from __future__ import annotations

import json

import pytest

from ccr.job.claude import REPO_SCHEMA
from tests.doubles.conversations import ORCHESTRATOR, pick, worker_success
from tests.doubles.fake_anthropic import FakeAnthropic, usage_limit
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import run_job, spec_json

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
    paged_github: FakeGitHub, fake_anthropic: FakeAnthropic, many_repos: list[str], real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*pick("acme/gadgets", "the task names the gadgets service"), match=ORCHESTRATOR)
    fake_anthropic.script(*worker_success())
    outcome = run_job(spec_json("task-pick", prompt="Fix the flaky test in the gadgets service"), real_job_env)
    assert outcome.returncode == 0, outcome.stdout[-2000:]
    assert outcome.result["repo"] == "acme/gadgets" and outcome.result["status"] == "Succeeded"
    assert "chosen by Claude" in outcome.steps("repo_selected")[0]["message"]
    pages = [r for r in paged_github.request_log() if r.path == "/api/v3/user/repos"]
    assert len(pages) == 3
    # The orchestrator's conversation: every candidate (all pages were read), the task quoted, the schema as
    # the StructuredOutput tool, and no permission bypass (the CLI lists no bypass in its system prompt).
    [asked] = fake_anthropic.message_requests(ORCHESTRATOR)
    for name in many_repos:
        assert f"- {name}: " in asked.first_user_text
    assert "<<<\nFix the flaky test in the gadgets service\n>>>" in asked.first_user_text
    tool = next(t for t in asked.body["tools"] if t["name"] == "StructuredOutput")
    assert tool["input_schema"] == json.loads(json.dumps(REPO_SCHEMA))
    assert paged_github.pulls("acme/gadgets")
    # usage adds both runs: the orchestrator's and the worker's result events
    results = [e for e in outcome.events if e.get("type") == "result"]
    assert len(results) == 2
    assert outcome.result["usage"]["costUsd"] == pytest.approx(sum(r["total_cost_usd"] for r in results))
    assert outcome.result["usage"]["turns"] == sum(r["num_turns"] for r in results)


def test_repo_named_in_the_prompt_needs_no_claude_turn(
    paged_github: FakeGitHub, fake_anthropic: FakeAnthropic, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*worker_success())
    outcome = run_job(spec_json("task-named", prompt="In acme/widgets, fix the README typo"), real_job_env)
    assert outcome.result["repo"] == "acme/widgets"
    assert "named in the prompt" in outcome.steps("repo_selected")[0]["message"]
    assert fake_anthropic.message_requests(ORCHESTRATOR) == []
    assert fake_anthropic.message_requests()  # the worker ran


def test_ambiguous_prompt_fails_as_invalid_with_candidates(
    paged_github: FakeGitHub, fake_anthropic: FakeAnthropic, many_repos: list[str], real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(*pick(None, "could be the widgets or the gadgets"), match=ORCHESTRATOR)
    outcome = run_job(spec_json("task-vague", prompt="Improve the docs"), real_job_env)
    assert outcome.returncode == 1
    result = outcome.result
    assert result["status"] == "Failed" and result["errorType"] == "invalid"
    assert "could not tell which repository" in result["message"] and "widgets or the gadgets" in result["message"]
    for name in many_repos:
        assert name in result["message"]
    assert "worker" not in outcome.phases()
    assert all(paged_github.pulls(name) == [] for name in many_repos)


def test_a_used_up_subscription_while_choosing_is_capacity_reached(
    paged_github: FakeGitHub, fake_anthropic: FakeAnthropic, real_job_env: dict[str, str]
) -> None:
    fake_anthropic.script(usage_limit(2_000_000_000), match=ORCHESTRATOR)
    outcome = run_job(spec_json("task-pick-limit", prompt="Improve the docs"), real_job_env)
    result = outcome.result
    assert result["errorType"] == "capacity_reached" and result["message"].startswith("choosing the repository")
    assert result["resetTime"].startswith("2033-05-18T03:33:20")
