"""Issue 11 in local mode, through a real `ccr serve`: a status that never lies, branches, one run per branch,
follow-ups, retries, the list API."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import REPO
from tests.doubles.conversations import worker_success
from tests.doubles.fake_anthropic import FakeAnthropic, unauthorized, usage_limit
from tests.doubles.fake_github import FakeGitHub
from tests.local.test_local_mode import wait_for
from tests.server import CcrServer

DONE = {"completed", "failed", "cancelled"}


def authed(server: CcrServer) -> httpx.Client:
    return server.client(headers={"Authorization": f"Bearer {server.token()}"})


def wait_reason(client: httpx.Client, task_id: str, reason: str, timeout: float = 10) -> dict[str, Any]:
    """The queue writes why a task waits in its next round, just after the change that made it wait."""
    deadline = time.monotonic() + timeout
    while (task := client.get(f"/task/{task_id}").json())["reason"] != reason:
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    return dict(task)


def submit(client: httpx.Client, prompt: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/task", json={"prompt": prompt, "repo": REPO, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_branch_is_not_a_user_field_and_bad_prompts_are_refused(local_server: CcrServer) -> None:
    with authed(local_server) as client:
        for body in (
            {"prompt": "x", "branch": "main"},
            {"prompt": "bad \x00 byte"},
            {"prompt": "x", "timeout_seconds": 10},
        ):
            assert client.post("/task", json=body).status_code == 422, body
        first = submit(client, "[fake:noop] look")
        for prompt in ("", "   ", "y" * (256 * 1024 + 1), "a\x00b"):
            response = client.post(f"/task/{first['id']}/followup", json={"prompt": prompt})
            assert response.status_code == 422 and "y" * 100 not in response.text
        assert client.post(f"/task/{first['id']}/followup", json={"prompt": "ok", "branch": "main"}).status_code == 422
        assert client.post("/task/nope/followup", json={"prompt": "ok"}).status_code == 404
        assert "nope" not in client.get("/task/nope").text
        assert [t["id"] for t in client.get("/tasks").json()] == [first["id"]]  # nothing else was stored


def test_a_run_that_changed_nothing_says_so(local_server: CcrServer, fake_github: FakeGitHub) -> None:
    with authed(local_server) as client:
        task = wait_for(client, submit(client, "[fake:noop] nothing to do")["id"], DONE)
        assert task["status"] == "completed" and task["changes"] == {
            "commits": 0,
            "filesChanged": 0,
            "additions": 0,
            "deletions": 0,
        }
        assert "no commits" in fake_github.pulls(REPO)[0]["body"]
        busy = wait_for(client, submit(client, "[fake:success] two changes")["id"], DONE)
        assert busy["changes"]["commits"] == 2 and busy["changes"]["filesChanged"] == 2
        assert busy["changes"]["additions"] == 2 and "2 commits, 2 files (+2 -0)" in fake_github.pulls(REPO)[1]["body"]


def test_a_failed_push_is_failed_push_failed_never_completed(local_server: CcrServer, fake_github: FakeGitHub) -> None:
    fake_github.refuse_pushes_after_pr(REPO, "protected branch: pushes refused")
    with authed(local_server) as client:
        task = wait_for(client, submit(client, "[fake:success:nopush] commit but do not push")["id"], DONE)
        assert task["status"] == "failed" and task["errorType"] == "push_failed", task
        assert "could not be pushed" in task["error"] and "protected branch" in task["error"]
        assert task["reason"] == "PushFailed"
        assert task["changes"]["commits"] == 2  # counted where they are: in the job's workspace
        body = fake_github.pulls(REPO)[0]["body"]
        assert "push_failed" in body and "not on the branch" in body


def test_github_and_claude_auth_failures_name_their_target(
    tmp_path: Any, real_local_env: dict[str, str], fake_github: FakeGitHub, fake_anthropic: FakeAnthropic
) -> None:
    local_env = real_local_env  # the real CLI, refused by the fake Anthropic API with a 401
    fake_anthropic.script(unauthorized())
    server = CcrServer(tmp_path / "data", env={**local_env, "GITHUB_TOKEN": "fake-gh-token-revoked-0000"}).start()
    try:
        with authed(server) as client:
            github = wait_for(client, submit(client, "anything")["id"], DONE)
            assert (github["errorType"], github["authTarget"]) == ("auth_expired", "github")
    finally:
        server.stop()
    server = CcrServer(tmp_path / "data2", env=local_env).start()
    try:
        with authed(server) as client:
            claude = wait_for(client, submit(client, "go")["id"], DONE)
            assert (claude["errorType"], claude["authTarget"]) == ("auth_expired", "claude")
            assert "setup-token" in fake_github.pulls(REPO)[0]["body"]
    finally:
        server.stop()


def test_two_follow_ups_at_once_run_one_after_the_other_on_one_branch(
    local_server: CcrServer, fake_github: FakeGitHub
) -> None:
    with authed(local_server) as client:
        first = wait_for(client, submit(client, "[fake:success] start")["id"], DONE)
        assert first["status"] == "completed"
        a = client.post(f"/task/{first['id']}/followup", json={"prompt": "[fake:slow:30:0.1] more"}).json()
        b = client.post(f"/task/{first['id']}/followup", json={"prompt": "[fake:success] and more"}).json()
        assert a["branch"] == b["branch"] == first["branch"]
        wait_for(client, a["id"], {"running"})
        waiting = wait_reason(client, b["id"], "WaitingForTask")
        assert waiting["status"] == "queued" and a["id"] in waiting["message"]
        done_a, done_b = wait_for(client, a["id"], DONE), wait_for(client, b["id"], DONE)
        assert done_a["status"] == done_b["status"] == "completed", (done_a, done_b)
        assert done_a["finished"] <= done_b["started"]  # one after the other
        assert len(fake_github.pulls(REPO)) == 1 and done_b["pr_url"] == first["pr_url"]
        # every run's pushes landed, in order: first (start commit + 2), a (1 pushed + its WIP), b (2)
        subjects = [line.split(" ", 1)[1] for line in reversed(fake_github.git_log(REPO, first["branch"]))]
        assert subjects[1:] == [
            f"Start task {first['id']}",
            "Fake change one",
            "Fake change two",
            "Fake change before the slow part",
            "WIP: uncommitted work saved by claude-code-runner (succeeded)",
            "Fake change one",
            "Fake change two",
        ], subjects


def test_a_follow_up_of_a_running_task_waits_then_continues_its_branch_and_pr(
    local_server: CcrServer, fake_github: FakeGitHub
) -> None:
    with authed(local_server) as client:
        first = submit(client, "[fake:slow:30:0.1] long")
        wait_for(client, first["id"], {"running"})
        later = client.post(f"/task/{first['id']}/followup", json={"prompt": "[fake:success] then this"}).json()
        assert later["branch"] == f"claude/{first['id']}" and later["follow_up_of"] == first["id"]
        assert first["id"] in wait_reason(client, later["id"], "WaitingForTask")["message"]
        done = wait_for(client, later["id"], DONE)
        assert done["status"] == "completed" and done["pr_url"] == wait_for(client, first["id"], DONE)["pr_url"]
        assert len(fake_github.pulls(REPO)) == 1


def test_retry_after_a_usage_limit_continues_the_same_branch_and_pr(
    real_local_server: CcrServer, fake_github: FakeGitHub, fake_anthropic: FakeAnthropic
) -> None:
    # The real CLI: the first run's request meets the used-up subscription, the retry's the work.
    fake_anthropic.script(usage_limit(2_000_000_000, times=1), *worker_success())
    local_server = real_local_server
    with authed(local_server) as client:
        stopped = wait_for(client, submit(client, "big job")["id"], DONE)
        assert stopped["errorType"] == "capacity_reached"
        again = client.post(f"/task/{stopped['id']}/retry").json()
        done = wait_for(client, again["id"], DONE)
        assert done["branch"] == stopped["branch"] and done["follow_up_of"] == stopped["id"]
        assert len(fake_github.pulls(REPO)) == 1 and done["pr_url"] == stopped["pr_url"]


def test_an_empty_failed_draft_is_closed_and_a_continuing_retry_reopens_it(
    local_server: CcrServer, fake_github: FakeGitHub
) -> None:
    with authed(local_server) as client:
        crashed = wait_for(client, submit(client, "[fake:crash] boom")["id"], DONE)
        assert crashed["errorType"] == "exit_code"
        pull = fake_github.pulls(REPO)[0]
        assert pull["state"] == "closed"
        assert "before Claude committed anything" in fake_github.comments(REPO, 1)[-1]["body"]
        # the next run on the branch (a continuing retry or, here, a follow-up) reopens it
        again = client.post(f"/task/{crashed['id']}/followup", json={"prompt": "[fake:success] try again"}).json()
        done = wait_for(client, again["id"], DONE)
        assert done["status"] == "completed" and fake_github.pulls(REPO)[0]["state"] == "open"
        assert len(fake_github.pulls(REPO)) == 1


def test_the_list_filters_pages_and_serializes_like_one_task(local_server: CcrServer) -> None:
    with authed(local_server) as client:
        ok = wait_for(client, submit(client, "[fake:success] flaky test fix")["id"], DONE)
        bad = wait_for(client, submit(client, "[fake:crash] boom", repo="acme/gadgets")["id"], DONE)
        queued = [submit(client, f"[fake:noop] number {i}", priority=-5)["id"] for i in range(3)]
        everything = client.get("/tasks")
        assert "link" not in everything.headers  # the original's shape: every task, no paging
        listed = {t["id"]: t for t in everything.json()}
        assert listed[ok["id"]] == client.get(f"/task/{ok['id']}").json()  # one serializer
        assert "costUsd" in listed[ok["id"]]["usage"]  # camelCase inside usage, in the list as in one task
        assert [t["id"] for t in client.get("/tasks", params={"status": "failed"}).json()] == [bad["id"]]
        assert [t["id"] for t in client.get("/tasks", params={"repo": "ACME/gadgets"}).json()] == [bad["id"]]
        assert [t["id"] for t in client.get("/tasks", params={"q": "FLAKY"}).json()] == [ok["id"]]
        first = client.get("/tasks", params={"limit": 2})
        assert [t["id"] for t in first.json()] == [queued[2], queued[1]]
        following = httpx.get(first.links["next"]["url"], headers=client.headers)
        assert [t["id"] for t in following.json()] == [queued[0], bad["id"]]
        assert client.get("/tasks", params={"status": "sleeping"}).status_code == 422
        assert client.get("/tasks", params={"before": "gone"}).status_code == 422
