"""The dashboard in a real browser: a real `ccr serve` running the real job pipeline against the doubles."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccr.core.units import usd
from tests.browser.conftest import screenshot, set_up_admin
from tests.conftest import REPO
from tests.doubles.claude_cli import pinned_version
from tests.server import ADMIN, CcrServer

pytestmark = pytest.mark.browser
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream-json"


def submit(page: Any, prompt: str, repo: str = REPO) -> str:
    """Submit from the list page's form; returns the new task's id (the page lands on the task page)."""
    origin = re.match(r"https?://[^/]+", page.url)
    assert origin
    page.goto(origin.group(0) + "/")
    if not page.is_visible("textarea[name=prompt]"):
        page.click("details.submit > summary")
    page.fill("textarea[name=prompt]", prompt)
    page.fill("input[name=repo]", repo)
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/tasks/[0-9a-f]+$"))
    return str(page.url.rsplit("/", 1)[1])


def seqs(page: Any) -> list[int]:
    """The seq of every line drawn on the task page, in DOM order (one element per line)."""
    return [int(s) for s in page.eval_on_selector_all("[data-seq]", "els => els.map(e => e.dataset.seq)")]


def api_status(server: CcrServer, page: Any, task_id: str) -> dict[str, Any]:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return dict(httpx.get(f"{server.url}/task/{task_id}", cookies=cookies, timeout=10).json())


def transcript_len(server: CcrServer, page: Any, task_id: str) -> int:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    text = httpx.get(f"{server.url}/task/{task_id}/logs?follow=false", cookies=cookies, timeout=10).text
    return len([line for line in text.splitlines() if line.strip()])


# --- accounts -----------------------------------------------------------------------------------------
def test_first_visit_sets_up_then_logout_revokes_the_session(page: Any, server: CcrServer) -> None:
    page.goto(server.url + "/")
    assert page.url.endswith("/setup")
    set_up_admin(page, server)
    assert page.is_visible("#logout")
    assert page.inner_text("#count-queued") == "0"
    old = {c["name"]: c["value"] for c in page.context.cookies()}
    assert httpx.get(f"{server.url}/tasks", cookies=old).status_code == 200

    page.click("#logout")
    page.wait_for_url("**/login")
    assert httpx.get(f"{server.url}/tasks", cookies=old).status_code == 401  # the copied cookie died
    page.goto(server.url + "/")
    assert page.url.endswith("/login")
    page.goto(server.url + "/setup")
    assert page.url.endswith("/login")  # one admin, ever

    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "wrong username or password" in page.inner_text(".error")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")


def test_token_page_shows_a_new_token_once_then_masked_and_revokes(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    page.click("text=API token")
    page.wait_for_url("**/settings/tokens")
    assert page.is_visible("#no-token")
    page.click("text=Generate a new token")
    token = page.input_value("#fresh-token")
    assert token.startswith("ccr_")
    assert httpx.get(f"{server.url}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page.click("#copy-token")
    page.reload()
    assert not page.is_visible("#fresh-token")  # shown once
    masked = page.inner_text(".masked")
    assert token not in page.content() and masked.startswith(token[:8])
    page.click("text=Revoke")
    page.wait_for_selector("#no-token")
    assert httpx.get(f"{server.url}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 401


# --- a task's life -----------------------------------------------------------------------------------
def test_submit_watch_live_and_succeed_with_pr_link(logged_in: Any, server: CcrServer, context: Any) -> None:
    page = logged_in
    task_id = submit(page, "[fake:slow:20:0.25] Add a changelog entry")
    # Lines are on the page while the fake claude is still running.
    page.wait_for_selector("#transcript .text:has-text('working 3/20')")
    assert api_status(server, page, task_id)["status"] == "running"
    assert page.inner_text("#task-status").strip() == "Running"
    page.wait_for_selector("#transcript [data-step=pr_opened] a")  # the draft PR link, mid-run

    # A second tab on the list sees the task go by live, without reloading.
    board = context.new_page()
    board.goto(server.url + "/")
    row = f"#task-{task_id}"
    board.wait_for_selector(f"{row}[data-phase=Running]")
    board.wait_for_selector(f"{row}[data-phase=Succeeded]", timeout=60_000)
    assert board.get_attribute(f"{row} a.pr", "href").startswith("http")
    assert board.inner_text("#count-succeeded") == "1"

    page.wait_for_selector("#task-status:has-text('Succeeded')", timeout=30_000)
    page.wait_for_selector("[data-result=Succeeded]")
    page.wait_for_selector("#open-pr")
    page.wait_for_selector("#stream-state:has-text('ended')")
    drawn = seqs(page)
    assert drawn == sorted(drawn) and len(drawn) == len(set(drawn)) == transcript_len(server, page, task_id)
    screenshot(page, "task-desktop")
    board.close()


def test_queued_then_running(logged_in: Any, server: CcrServer, context: Any) -> None:
    """With every slot busy, a new task waits Queued, then runs once a slot frees."""
    page = logged_in
    first = submit(page, "[fake:slow:12:0.25] one")
    second = submit(page, "[fake:slow:12:0.25] two")
    third = submit(page, "[fake:slow:4:0.1] three")  # CCR_MAX_CONCURRENT defaults to 2
    page.goto(server.url + "/")
    page.wait_for_selector(f"#task-{third}[data-phase=Queued]")
    assert page.inner_text("#count-queued") == "1"
    page.wait_for_selector(f"#task-{third}[data-phase=Running]", timeout=60_000)
    for task_id in (first, second, third):
        page.wait_for_selector(f"#task-{task_id}[data-phase=Succeeded]", timeout=60_000)


def test_reconnect_resumes_without_duplicates(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    task_id = submit(page, "[fake:slow:30:0.15] reconnect")
    page.wait_for_selector("#transcript .text:has-text('working 5/30')")
    for _ in range(3):
        page.evaluate("window.ccrTranscript.reconnect()")
        time.sleep(0.4)
    page.wait_for_selector("#stream-state:has-text('ended')", timeout=60_000)
    drawn = seqs(page)
    total = transcript_len(server, page, task_id)
    assert drawn == list(range(1, total + 1)), f"lines drawn {drawn} of {total}"


def test_server_restart_mid_stream_resumes_by_last_event_id(logged_in: Any, server: CcrServer) -> None:
    """The server dies under an open stream; EventSource reconnects with Last-Event-ID: no line twice."""
    page = logged_in
    task_id = submit(page, "[fake:slow:100:0.1] restart")
    page.wait_for_selector("#transcript .text:has-text('working 5/100')")
    server.kill()
    page.wait_for_selector("#stream-state:has-text('reconnecting')")
    server.start()  # same port, same data: the interrupted task is recorded as failed
    page.wait_for_selector("#stream-state:has-text('ended')", timeout=60_000)
    drawn = seqs(page)
    total = transcript_len(server, page, task_id)
    assert drawn == list(range(1, total + 1)), f"lines drawn {drawn} of {total}"
    page.wait_for_selector("#task-status:has-text('Failed')")


def test_cancel_from_the_page(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    task_id = submit(page, "[fake:hang] wait forever")
    page.wait_for_selector("#task-status:has-text('Running')")
    page.click("#task-head button:has-text('Cancel')")
    page.wait_for_selector("#task-status:has-text('Cancelled')", timeout=30_000)
    assert api_status(server, page, task_id)["status"] == "cancelled"
    assert "cancelled on request" in page.inner_text("#task-advice")
    # After a cancel the first way to retry continues the same branch and PR (it asks first); the other
    # way, "Start over", is offered beside it.
    assert page.locator("#task-head button:has-text('Start over')").count() == 1
    page.click("#task-head button:has-text('Continue')")
    page.wait_for_url(re.compile(r".*/tasks/[0-9a-f]+$"))
    assert not page.url.endswith(task_id)
    meta = page.inner_text("#task-head dl")
    assert f"Follows\n{task_id}" in meta and f"claude/{task_id}" in meta  # same thread, same branch
    page.click("#task-head button:has-text('Cancel')")
    page.wait_for_selector("#task-status:has-text('Cancelled')", timeout=30_000)


# --- hostile text -----------------------------------------------------------------------------------
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'


def test_html_and_script_payloads_render_as_text(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    response = page.goto(server.url + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    task_id = submit(page, f"[fake:slow:3:0.1] {XSS}")
    page.wait_for_selector("#stream-state:has-text('ended')", timeout=60_000)
    assert page.text_content("#task-prompt").endswith(XSS)
    assert page.evaluate("window.__xss") is None
    assert page.query_selector("img") is None and page.query_selector("main b") is None
    page.goto(server.url + "/")
    assert XSS[:40] in page.inner_text(f"#task-{task_id} .prompt")
    assert page.evaluate("window.__xss") is None
    assert page.query_selector("img") is None


def finished_task_with_lines(page: Any, server: CcrServer, lines: list[str]) -> str:
    """A finished task whose transcript ends with ``lines`` (written into the store, as a job would)."""
    task_id = submit(page, "[fake:crash] quick")
    page.wait_for_selector("#task-status:has-text('Failed')", timeout=60_000)
    with sqlite3.connect(server.data_dir / "ccr.db") as db:
        (last,) = db.execute("SELECT max(seq) FROM transcript WHERE task_id = ?", (task_id,)).fetchone()
        db.executemany(
            "INSERT INTO transcript (task_id, seq, line) VALUES (?, ?, ?)",
            [(task_id, last + i + 1, line) for i, line in enumerate(lines)],
        )
    page.reload()
    page.wait_for_selector("#stream-state:has-text('ended')")
    return task_id


def test_hostile_transcript_lines_render_as_text(logged_in: Any, server: CcrServer) -> None:
    """Claude's output (text, tool input, results, unknown events, non-JSON) can carry anything: it stays text."""
    page = logged_in
    tool = {
        "type": "tool_use",
        "id": "t1",
        "name": "Edit",
        "input": {"file_path": XSS, "old_string": XSS, "new_string": XSS},
    }
    hostile = [
        {
            "type": "system",
            "subtype": "init",
            "model": XSS,
            "tools": [XSS],
            "mcp_servers": [{"name": XSS, "status": XSS}],
        },
        {
            "type": "assistant",
            "message": {"content": [{"type": "text", "text": XSS}, {"type": "thinking", "thinking": XSS}, tool]},
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": XSS}]}},
        {
            "type": "assistant",
            "message": {"content": [{"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": XSS}}]},
        },
        {"type": XSS, "subtype": XSS},
        {"type": "ccr", "event": "step", "step": "pr_opened", "message": XSS, "url": "javascript:window.__xss=3"},
        {
            "type": "ccr",
            "event": "result",
            "status": "Failed",
            "errorType": XSS,
            "message": XSS,
            "prUrl": "javascript:window.__xss=4",
        },
    ]
    lines = [json.dumps(e) for e in hostile] + [XSS]
    task_id = finished_task_with_lines(page, server, lines)
    page.click("details.result > summary")  # results fill in when opened
    page.click("details.thinking > summary")
    for link in page.query_selector_all("#transcript a"):
        assert link.get_attribute("href").startswith("http")
    assert page.evaluate("window.__xss") is None
    assert page.query_selector("#transcript img, #transcript script, #transcript b") is None
    assert page.locator("#transcript").text_content().count("window.__xss=1") >= 8
    assert transcript_len(server, page, task_id) == len(seqs(page))


def test_every_event_type_is_drawn(logged_in: Any, server: CcrServer) -> None:
    """The shared stream-json fixtures: init, thinking, tools, diff, subagent nesting, rate limits, results."""
    page = logged_in
    lines: list[str] = []
    for name in ("success", "max-turns-with-subagent", "usage-limit", "auth-expired", "compact", "mcp-failed"):
        lines += [line for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines() if line.strip()]
    long_output = "\n".join(f"line {i} of a long output" for i in range(300))
    lines.append(
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "content": [{"type": "tool_use", "id": "t_long", "name": "Bash", "input": {"command": "seq 300"}}]
                },
            }
        )
    )
    lines.append(
        json.dumps(
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "tool_use_id": "t_long", "content": long_output}]},
            }
        )
    )
    lines.append(json.dumps({"type": "brand_new_event", "detail": "kept raw"}))
    lines.append(
        json.dumps(
            {
                "type": "ccr",
                "event": "result",
                "status": "Failed",
                "errorType": "auth_expired",
                "message": "OAuth token expired",
            }
        )
    )
    task_id = finished_task_with_lines(page, server, lines)
    t = page.locator("#transcript")
    recorded = t.locator(".init").nth(1)  # the first is the fake CLI's run that made the task
    assert recorded.inner_text().startswith(f"Claude {pinned_version()} · model claude-sonnet-5-5 · ")
    assert t.locator(".mcp.mcp-bad").last.inner_text() == "github (failed)"
    assert t.locator("details.thinking").count() >= 1 and not t.locator("details.thinking").first.get_attribute("open")
    assert "git status --short" in t.locator(".tool[data-tool=Bash] pre.cmd").first.inner_text()
    assert t.locator(".tool[data-tool=Edit] .diff .del").count() >= 1
    assert t.locator(".tool[data-tool=Edit] .diff .add").count() >= 1
    # The subagent's Bash call and its result sit inside the Agent (Task) card.
    task_card = t.locator(".tool[data-tool=Agent]")
    assert "Explore auth module" in task_card.inner_text()
    assert task_card.locator(".children .tool[data-tool=Bash]").count() == 1
    assert task_card.locator(".children details.result").count() == 1
    assert t.locator(".rate.warn").count() >= 1
    assert "context compacted" in t.text_content()
    assert "kept raw" in t.locator(".raw").last.text_content()
    assert "claude setup-token" in t.locator("[data-result=Failed] .advice").last.text_content()
    max_turns = [json.loads(x) for x in (FIXTURES / "max-turns-with-subagent.jsonl").read_text().splitlines()]
    assert f"cost {usd(max_turns[-1]['total_cost_usd'])}" in t.text_content()  # e.g. $0.0027, not $0.00
    assert transcript_len(server, page, task_id) == len(seqs(page))
    # A long tool result: collapsed, then cut, then whole after "show all".
    long_result = t.locator(".tool:has(pre.cmd:text('seq 300')) details.result")
    assert "(300 lines)" in long_result.locator("summary").inner_text()
    long_result.locator("summary").click()
    assert "line 299 of" not in long_result.locator("pre").inner_text()
    long_result.locator("button.show-all").click()
    assert "line 299 of a long output" in long_result.locator("pre").inner_text()


def test_submit_form_errors_keep_the_input(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    if not page.is_visible("textarea[name=prompt]"):
        page.click("details.submit > summary")
    page.fill("textarea[name=prompt]", "keep this prompt <b>")
    page.fill("input[name=repo]", "not a repository")
    page.click("#submit-form button[type=submit]")
    assert "repo" in page.inner_text(".error")
    assert page.input_value("textarea[name=prompt]") == "keep this prompt <b>"
    assert page.inner_text("#count-queued") == "0"


def test_follows_the_end_only_while_the_reader_is_at_the_bottom(logged_in: Any, server: CcrServer) -> None:
    page = logged_in
    page.set_viewport_size({"width": 1280, "height": 500})
    submit(page, "[fake:slow:60:0.1] scroll")
    page.wait_for_selector("#transcript .text:has-text('working 20/60')")
    at_bottom = "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 60"
    assert page.evaluate(at_bottom)  # following
    page.mouse.wheel(0, -300)
    page.wait_for_selector("#jump-end:visible")
    top = page.evaluate("scrollY")
    page.wait_for_selector("#transcript .text:has-text('working 40/60')")
    assert page.evaluate("scrollY") == top  # the reader's place is kept
    page.click("#jump-end")
    page.wait_for_selector("#transcript .text:has-text('working 55/60')")
    assert page.evaluate(at_bottom)


# --- screenshots --------------------------------------------------------------------------------------
def test_screenshots_desktop_and_phone(logged_in: Any, server: CcrServer, browser: Any) -> None:
    page = logged_in
    task_id = submit(page, "[fake:success] Fix the login redirect and add a test")
    page.wait_for_selector("#task-status:has-text('Succeeded')", timeout=60_000)
    submit(page, "[fake:hang] A task that is still running")
    for width, name in ((1280, "desktop"), (360, "phone")):
        page.set_viewport_size({"width": width, "height": 900 if width > 400 else 740})
        page.goto(server.url + "/")
        page.wait_for_selector(".tasks")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        screenshot(page, f"list-{name}")
        page.goto(f"{server.url}/tasks/{task_id}")
        page.wait_for_selector("#stream-state:has-text('ended')")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"task-{name}")
        page.goto(f"{server.url}/settings/tokens")
        page.click("text=Generate a new token")
        page.wait_for_selector("#fresh-token")  # the POST's redirect has landed (evaluate raced it)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"token-{name}")
