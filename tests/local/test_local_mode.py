"""Local mode end to end: a real `ccr serve`, the real job pipeline, the real Claude Code CLI against the fake
Anthropic API (the fake claude only where a test says why), and the fake GitHub."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.doubles.conversations import slow_tool, worker_success
from tests.doubles.fake_anthropic import FakeAnthropic, bash
from tests.doubles.fake_github import FakeGitHub
from tests.server import CcrServer


def wait_for(client: httpx.Client, task_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get(f"/task/{task_id}").json()
        if task["status"] in statuses:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never reached {statuses}: {task}")


def curl(*args: str) -> str:
    return subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_original_curl_sequence_works_verbatim(
    real_local_server: CcrServer, fake_github: FakeGitHub, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(*worker_success())
    local_server = real_local_server
    token = local_server.token()
    base, auth = local_server.url, f"Authorization: Bearer {token}"
    submitted = json.loads(
        curl(
            "-X",
            "POST",
            f"{base}/task",
            "-H",
            auth,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"prompt": f"In the {REPO} repo, fix the token refresh bug"}),
        )
    )
    assert set(submitted) >= {"id", "status", "prompt"} and submitted["status"] in ("queued", "running")
    task_id = submitted["id"]
    logs = curl(f"{base}/task/{task_id}/logs", "-H", auth)  # streams until the task ends
    events = [json.loads(line) for line in logs.splitlines()]
    assert events[-1]["type"] == "ccr" and events[-1]["event"] == "result"
    assert any(e["type"] == "assistant" for e in events)
    status = json.loads(curl(f"{base}/task/{task_id}", "-H", auth))
    assert status["status"] == "completed", status
    assert status["pr_url"] and status["pr_url"] == fake_github.pulls(REPO)[0]["html_url"]
    assert status["started"] and status["finished"] and status["error"] is None and status["errorType"] is None
    assert fake_github.pulls(REPO)[0]["draft"] is True
    tasks = json.loads(curl(f"{base}/tasks", "-H", auth))
    assert [t["id"] for t in tasks] == [task_id]
    health = json.loads(curl(f"{base}/health"))
    assert health["ok"] is True and health["tasks"] == 1
    # and without the token, no detail leaks
    denied = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/task/{task_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert denied.stdout == "401"


def test_task_completes_with_draft_pr_and_transcript(
    real_local_server: CcrServer, fake_github: FakeGitHub, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(*worker_success())
    local_server = real_local_server
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        task = client.post("/task", json={"prompt": "Add a widget counter", "repo": REPO}).json()
        done = wait_for(client, task["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        assert done["usage"]["costUsd"] > 0 and done["branch"] == f"claude/{task['id']}"
        pulls = fake_github.pulls(REPO)
        assert len(pulls) == 1 and pulls[0]["html_url"] == done["pr_url"]
        lines = client.get(f"/task/{task['id']}/logs", params={"follow": "false"}).text.splitlines()
        phases = [json.loads(x).get("phase") for x in lines if '"event": "phase"' in x or '"event":"phase"' in x]
        assert "worker" in phases


def test_bad_input_is_refused_and_nothing_is_stored(local_server: CcrServer) -> None:
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        for body in (
            {"prompt": ""},
            {"prompt": "   "},
            {"prompt": "x" * (256 * 1024 + 1)},
            {},
            {"prompt": 42},
            {"prompt": "ok", "repo": "not a repo"},
            {"prompt": "ok", "surprise": 1},
        ):
            response = client.post("/task", json=body)
            assert response.status_code == 422, body
            assert "x" * 1000 not in response.text  # the input is not echoed back
        assert (
            client.post("/task", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
        )
        assert client.post("/task", content=b"x" * (2 * 1024 * 1024)).status_code == 413
        assert client.get("/task/nope").status_code == 404
        assert client.get("/task/nope/logs").status_code == 404
        assert client.get("/tasks").json() == []


def test_large_prompt_is_passed_by_file_not_argv(real_local_server: CcrServer, fake_anthropic: FakeAnthropic) -> None:
    local_server = real_local_server
    prompt = "Refactor the widgets. " + "Context line. " * 14_000  # ~200 KB
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        task = client.post("/task", json={"prompt": prompt, "repo": REPO}).json()
        assert client.get(f"/task/{task['id']}").json()["prompt"] == prompt
        done = wait_for(client, task["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
    assert prompt.rstrip() in fake_anthropic.last_request().first_user_text  # the model got all of it


def test_queue_respects_limit_priority_and_order(
    tmp_path: Path, real_local_env: dict[str, str], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(slow_tool(3), match="first")
    srv = CcrServer(tmp_path / "data", env={**real_local_env, "CCR_MAX_CONCURRENT": "1"}).start()
    try:
        with srv.client(headers={"Authorization": f"Bearer {srv.token()}"}) as client:
            first = client.post("/task", json={"prompt": "first", "repo": REPO}).json()
            wait_for(client, first["id"], {"running"})
            low = client.post("/task", json={"prompt": "low", "repo": REPO}).json()
            high = client.post("/task", json={"prompt": "high", "repo": REPO, "priority": 5}).json()
            assert client.get(f"/task/{low['id']}").json()["status"] == "queued"
            running_seen = []
            for t in (first, high, low):
                done = wait_for(client, t["id"], {"completed", "failed"}, timeout=90)
                assert done["status"] == "completed", done
                running_seen.append(done["started"])
            assert running_seen == sorted(running_seen), "priority first, then submission order"
    finally:
        srv.stop()


def test_cancel_a_running_task(real_local_server: CcrServer, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(slow_tool(300))
    local_server = real_local_server
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        task = client.post("/task", json={"prompt": "wait forever", "repo": REPO}).json()
        wait_for(client, task["id"], {"running"})
        time.sleep(2)  # the worker is running
        assert client.post(f"/task/{task['id']}/cancel").status_code == 200
        done = wait_for(client, task["id"], {"cancelled", "failed", "completed"}, timeout=40)
        assert done["status"] == "cancelled" and done["errorType"] == "cancelled", done
        # After a cancel, a retry continues the same branch and PR by default; "fresh" starts a new branch.
        again = client.post(f"/task/{task['id']}/retry").json()
        assert again["follow_up_of"] == task["id"] and again["branch"] == done["branch"]
        assert again["prompt"].endswith(task["prompt"]) and again["id"] != task["id"]
        fresh = client.post(f"/task/{task['id']}/retry", json={"mode": "fresh"}).json()
        assert fresh["prompt"] == task["prompt"] and fresh["follow_up_of"] is None
        assert fresh["branch"] == f"claude/{fresh['id']}"
        for retried in (again, fresh):
            client.post(f"/task/{retried['id']}/cancel")


def test_killing_the_server_loses_no_task_and_no_line(
    tmp_path: Path, real_local_env: dict[str, str], fake_anthropic: FakeAnthropic
) -> None:
    # lines come quickly, then a long command keeps the task running when the server dies
    fake_anthropic.script(*[bash(f"echo step {i}") for i in range(6)], slow_tool(30), match="long")
    data = tmp_path / "data"
    local_env = {**real_local_env, "CCR_MAX_CONCURRENT": "1"}
    srv = CcrServer(data, env=local_env).start()
    token = srv.token()
    with srv.client(headers={"Authorization": f"Bearer {token}"}) as client:
        task = client.post("/task", json={"prompt": "long", "repo": REPO}).json()
        queued = client.post("/task", json={"prompt": "second", "repo": REPO, "priority": -1}).json()
        third = client.post("/task", json={"prompt": "third", "repo": REPO, "priority": -1}).json()
        wait_for(client, task["id"], {"running"})
        deadline = time.monotonic() + 30
        while len(client.get(f"/task/{task['id']}/logs", params={"follow": "false"}).text.splitlines()) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        seen = client.get(f"/task/{task['id']}/logs", params={"follow": "false"}).text.splitlines()
    srv.kill()
    stored = (
        sqlite3.connect(data / "ccr.db")
        .execute("SELECT line FROM transcript WHERE task_id = ? ORDER BY seq", (task["id"],))
        .fetchall()
    )
    assert [row[0] for row in stored[: len(seen)]] == seen  # every line already captured is on disk
    again = CcrServer(data, env=local_env, port=srv.port).start()
    try:
        with again.client(headers={"Authorization": f"Bearer {token}"}) as client:
            ids = {t["id"] for t in client.get("/tasks").json()}
            assert ids == {task["id"], queued["id"], third["id"]}
            interrupted = client.get(f"/task/{task['id']}").json()
            assert interrupted["status"] == "failed" and "server stopped" in interrupted["error"]
            after = client.get(f"/task/{task['id']}/logs", params={"follow": "false"}).text.splitlines()
            assert after[: len(seen)] == seen
            for t in (queued, third):  # the queued ones were not dropped: they run now
                done = wait_for(client, t["id"], {"completed", "failed"}, timeout=90)
                assert done["status"] == "completed", done
    finally:
        again.stop()


def test_a_failing_pipeline_never_takes_the_server_down(local_server: CcrServer) -> None:
    # The fake CLI: the real one cannot be made to crash without a result.
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        task = client.post("/task", json={"prompt": "[fake:crash] boom", "repo": REPO}).json()
        done = wait_for(client, task["id"], {"completed", "failed"})
        assert done["status"] == "failed" and done["errorType"] == "exit_code"
        assert client.get("/health").json()["ok"] is True


def test_secrets_never_reach_the_api_or_the_store(local_server: CcrServer, local_env: dict[str, str]) -> None:
    # The fake CLI: it also writes the secrets to stderr split across writes (the server log must stay
    # clean), which the real CLI cannot be made to do; tests/local/test_local_real_cli.py has the real one.
    with local_server.client(headers={"Authorization": f"Bearer {local_server.token()}"}) as client:
        task = client.post("/task", json={"prompt": "[fake:leak] print the env", "repo": REPO}).json()
        wait_for(client, task["id"], {"completed", "failed"})
        everything = client.get("/tasks").text + client.get(f"/task/{task['id']}/logs").text
    everything += (local_server.data_dir / "ccr.db").read_bytes().decode(errors="replace")
    everything += local_server.log.read_text()
    for name in ("GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        assert local_env[name] not in everything, name
    assert os.environ.get("CCR_NEVER") is None
