"""Local mode end to end with the REAL Claude Code CLI: a real `ccr serve`, the real job pipeline as its
subprocess, the real CLI against the fake Anthropic API, the fake GitHub. What the API reports is what the
real CLI printed."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.doubles.claude_cli import pinned_version
from tests.doubles.conversations import leave_uncommitted, slow_tool, worker_success
from tests.doubles.fake_anthropic import FakeAnthropic, Reply, Text, bash, overloaded, unauthorized, usage_limit
from tests.doubles.fake_github import FakeGitHub
from tests.server import CcrServer

RESET = 2_000_000_000


@pytest.fixture
def server(tmp_path: Path, real_local_env: dict[str, str]) -> Iterator[CcrServer]:
    srv = CcrServer(tmp_path / "data", env=real_local_env).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: CcrServer) -> Iterator[httpx.Client]:
    with server.client(headers={"Authorization": f"Bearer {server.token()}"}) as c:
        yield c


def wait_for(client: httpx.Client, task_id: str, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = client.get(f"/task/{task_id}").json()
        if task["status"] in statuses:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} never reached {statuses}: {task}")


def transcript(client: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    text = client.get(f"/task/{task_id}/logs", params={"follow": "false"}).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_task_runs_the_real_cli_to_a_draft_pr(
    client: httpx.Client, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub
) -> None:
    fake_anthropic.script(*worker_success())
    task = client.post("/task", json={"prompt": "Add a widget counter", "repo": REPO}).json()
    done = wait_for(client, task["id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["pr_url"] == fake_github.pulls(REPO)[0]["html_url"] and done["branch"] == f"claude/{task['id']}"
    assert fake_github.file_at(REPO, done["branch"], "WORKER.md") == "first change by the worker\n"
    events = transcript(client, task["id"])
    [init] = [e for e in events if e.get("type") == "system" and e.get("subtype") == "init"]
    assert init["claude_code_version"] == pinned_version()
    [result] = [e for e in events if e.get("type") == "result"]
    usage = done["usage"]
    assert usage["costUsd"] == result["total_cost_usd"] and usage["turns"] == result["num_turns"]
    assert usage["inputTokens"] == result["usage"]["input_tokens"]
    assert usage["outputTokens"] == result["usage"]["output_tokens"]
    assert "Add a widget counter" in fake_anthropic.last_request().first_user_text


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [(unauthorized(), "auth_expired"), (usage_limit(RESET), "capacity_reached"), (overloaded(), "capacity_reached")],
    ids=["401", "usage-limit", "529"],
)
def test_failure_classes_reach_the_api(
    client: httpx.Client, fake_anthropic: FakeAnthropic, failure: Any, error_type: str
) -> None:
    fake_anthropic.script(failure)
    started = time.monotonic()
    task = client.post("/task", json={"prompt": "Work", "repo": REPO}).json()
    done = wait_for(client, task["id"], {"completed", "failed", "cancelled"})
    assert done["errorType"] == error_type, done
    assert done["status"] == "failed" and done["error"]
    if failure.status == 429:
        assert done["reset_time"] and int(dt.datetime.fromisoformat(done["reset_time"]).timestamp()) == RESET
    if failure.status == 529:
        assert time.monotonic() - started < 20  # the bounded retries (CCR_CLAUDE_MAX_RETRIES)


def test_cancel_a_running_real_cli_task(
    client: httpx.Client, fake_anthropic: FakeAnthropic, fake_github: FakeGitHub
) -> None:
    fake_anthropic.script(leave_uncommitted("WIP.md", "work in progress"), slow_tool(300))
    task = client.post("/task", json={"prompt": "A long job", "repo": REPO}).json()
    deadline = time.monotonic() + 60
    while not any("seq 300" in json.dumps(e) for e in transcript(client, task["id"])):
        assert time.monotonic() < deadline, "the long command never started"
        time.sleep(0.2)
    assert client.post(f"/task/{task['id']}/cancel").status_code == 200
    done = wait_for(client, task["id"], {"cancelled", "failed", "completed"}, timeout=40)
    assert done["status"] == "cancelled" and done["errorType"] == "cancelled", done
    assert "work in progress" in fake_github.file_at(REPO, f"claude/{task['id']}", "WIP.md")


def test_secrets_printed_by_the_real_cli_never_reach_the_api_or_the_store(
    server: CcrServer, client: httpx.Client, fake_anthropic: FakeAnthropic, real_local_env: dict[str, str]
) -> None:
    token = real_local_env["GITHUB_TOKEN"]
    fake_anthropic.script(bash("printenv GITHUB_TOKEN"), Reply([Text(f"The token is {token}")]))
    task = client.post("/task", json={"prompt": "print the env", "repo": REPO}).json()
    wait_for(client, task["id"], {"completed", "failed"})
    everything = client.get("/tasks").text + client.get(f"/task/{task['id']}/logs").text
    assert "[REDACTED]" in everything  # it was printed, and hidden
    everything += (server.data_dir / "ccr.db").read_bytes().decode(errors="replace")
    everything += server.log.read_text()
    for name in ("GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        assert real_local_env[name] not in everything, name
