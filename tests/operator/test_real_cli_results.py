"""The operator reads what the real pipeline, running the REAL Claude Code CLI, reports.

kwok runs the job pods here (no container runtime: tests/k8s), so the pipeline cannot run inside them. It runs
in the test instead (``python -m ccr.job`` with the real CLI against the fake Anthropic API and the fake
GitHub), and the pod reproduces its exit code and its termination message byte for byte (the ``ccr-test/*``
annotations); the operator must then put the real run's outcome into the ClaudeTask's status. A real
kubelet that runs the job image is issue 18's tier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.conversations import endless_bash, worker_success
from tests.doubles.fake_anthropic import FakeAnthropic, unauthorized, usage_limit
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import run_job, spec_json
from tests.operator.conftest import create_task, new_task
from tests.operator.test_operator import behave, wait_phase

pytestmark = pytest.mark.k8s

REPO = "acme/widgets"
RESET = 2_000_000_000

CASES: dict[str, tuple[list[Any], dict[str, Any], str, str | None]] = {
    # name: (the model's script, extra spec, phase, errorType)
    "success": (worker_success(), {}, "Succeeded", None),
    "usage-limit": ([usage_limit(RESET)], {}, "Failed", "capacity_reached"),
    "auth-expired": ([unauthorized()], {}, "Failed", "auth_expired"),
    "max-turns": (endless_bash(), {"maxTurns": 2}, "Failed", "exit_code"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_status_is_the_real_runs_outcome(
    api: Any,
    ns: str,
    start_operator: Any,
    fake_github: FakeGitHub,
    fake_anthropic: FakeAnthropic,
    real_job_env: dict[str, str],
    tmp_path: Path,
    case: str,
) -> None:
    script, spec, phase, error_type = CASES[case]
    fake_github.add_repo(REPO, files={"README.md": "# widgets\n"})
    fake_anthropic.script(*script)
    outcome = run_job(spec_json(f"real-{case}", prompt="Work on the widgets", repo=REPO, **spec), real_job_env)
    termination = (tmp_path / "termination-log").read_text()
    reported = json.loads(termination)
    assert reported["status"] == phase and reported.get("errorType") == error_type, reported
    [claude_result] = [e for e in outcome.events if e.get("type") == "result"]

    start_operator()
    name = f"real-{case}"
    create_task(
        api,
        ns,
        new_task(name, repo=REPO, annotations=behave(exit_code=outcome.returncode, message=termination, run="1s")),
    )
    status = wait_phase(api, ns, name, "Succeeded", "Failed", "Cancelled", timeout=60)["status"]
    assert status["phase"] == phase
    assert status.get("errorType") == error_type
    assert status["prUrl"] == reported["prUrl"] and status["branch"] == reported["branch"]
    usage = status["usage"]
    assert usage["costUsd"] == claude_result["total_cost_usd"]
    assert usage["turns"] == claude_result["num_turns"]
    assert usage.get("inputTokens") == claude_result["usage"]["input_tokens"]
    assert status["sessionId"] == claude_result["session_id"]
    if error_type is not None:
        assert status["message"] == reported["message"]
    if case == "usage-limit":
        assert status["resetTime"].startswith("2033-05-18T03:33:20")
        assert "You've hit your 5-hour limit" in status["message"]
