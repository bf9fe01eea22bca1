"""The dashboard drawing what the REAL Claude Code CLI prints: a real `ccr serve` runs the task with the real
CLI against the fake Anthropic API, whose answers carry the subscription's rate-limit headers, and Debian's
Chromium shows the task."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccr.core.units import usd
from tests.browser.conftest import screenshot
from tests.browser.test_dashboard import seqs, submit, transcript_len
from tests.doubles.conversations import worker_success
from tests.doubles.fake_anthropic import (
    FakeAnthropic,
    Reply,
    ToolUse,
    bash,
    overloaded,
    text_reply,
    unified_headers,
    usage_limit,
)
from tests.server import CcrServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path, real_local_env: dict[str, str]) -> Iterator[CcrServer]:
    srv = CcrServer(tmp_path / "data", env={**real_local_env, "CCR_CANCEL_GRACE_SECONDS": "3"}).start()
    yield srv
    srv.stop()


def windows(status: str, five_hour: float, seven_day: float, **kw: Any) -> dict[str, str]:
    """The subscription headers with both windows' readings. Their resets must lie inside the windows (the
    CLI drops a reading that resets further out than its window lasts)."""
    hour = (int(time.time()) // 3600 + 2) * 3600
    return unified_headers(
        status,
        reset=hour,
        claim="five_hour",
        five_hour=five_hour,
        five_hour_reset=hour,
        seven_day=seven_day,
        seven_day_reset=hour + 3 * 86400,
        **kw,
    )


def transcript_events(server: CcrServer, page: Any, task_id: str) -> list[dict[str, Any]]:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    text = httpx.get(f"{server.url}/task/{task_id}/logs?follow=false", cookies=cookies, timeout=10).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_plan_usage_retries_git_and_subagents_from_the_real_cli(
    logged_in: Any, server: CcrServer, fake_anthropic: FakeAnthropic
) -> None:
    page = logged_in
    fake_anthropic.default_headers = windows("allowed", 0.42, 0.13)
    subagent = ToolUse(
        "Agent",
        {
            "description": "Survey the code",
            "prompt": "SUBAGENT-UI: list the files",
            "subagent_type": "Explore",
            "run_in_background": False,
        },
    )
    *work, _ = worker_success()
    fake_anthropic.script(
        *work,
        Reply([subagent]),
        overloaded(times=1),  # answered by the CLI with one system/api_retry, then the same request again
        text_reply("All done.", headers=windows("allowed_warning", 0.91, 0.80, surpassed={"5h": 0.9, "7d": 0.75})),
    )
    fake_anthropic.script(bash("ls"), text_reply("README.md and WORKER.md"), match="SUBAGENT-UI")
    task_id = submit(page, "Add the worker notes")
    page.wait_for_selector("#task-status:has-text('Succeeded')", timeout=90_000)
    page.wait_for_selector("#stream-state:has-text('ended')")
    events = transcript_events(server, page, task_id)
    rate_events = [e["rate_limit_info"] for e in events if e.get("type") == "rate_limit_event"]
    assert rate_events[-1]["unifiedWindows"]["seven_day"]["utilization"] == 0.8  # the CLI's own shape
    t = page.locator("#transcript")

    # The 5-hour and 7-day utilization: beside the title (the latest reading) and in each rate-limit line.
    page.wait_for_selector("#plan-usage:visible")
    assert page.inner_text("#plan-usage") == "plan usage: 5-hour 91% · 7-day 80%"
    assert t.locator(".rate").first.inner_text().startswith("Usage (5-hour): 5-hour 42% used · 7-day 13% used")
    warning = t.locator(".rate.warn").last.inner_text()
    assert warning.startswith("⚠ Usage warning (5-hour): 5-hour 91% used · 7-day 80% used · resets ")

    # system/api_retry as one compact line, system/vcs_state_changed drawn; no system event left raw.
    retry = t.locator(".sys-line.retry")
    assert retry.count() == 1 and retry.inner_text().startswith("↻ retrying (1/3, 529 overloaded) in ")
    assert t.locator(".sys-line.vcs").first.inner_text() == "git push"
    assert t.locator(".sys-line.vcs").count() == sum(1 for e in events if e.get("subtype") == "vcs_state_changed")
    raw_kinds = t.locator(".raw .kind").all_inner_texts()
    assert not [k for k in raw_kinds if k.startswith("system")], raw_kinds
    # The subagent's lifecycle events sit in its card, with its own tool calls.
    card = t.locator(".tool[data-tool=Agent]")
    assert "subagent started: Survey the code (Explore)" in card.locator(".children").inner_text()
    assert card.locator(".children .tool[data-tool=Bash]").count() == 1
    children = card.locator(".children").inner_text()
    assert "subagent completed: README.md and WORKER.md" in children
    assert "SUBAGENT-UI: list the files" in children  # the subagent's prompt, as its first user line
    assert t.locator(":scope > .chunk > .entry-assistant").count() > 0  # the selector reaches top-level lines
    assert not [x for x in t.locator(":scope > .chunk > .entry-user").all_inner_texts() if "SUBAGENT-UI" in x]

    # The cost with its digits: in the result cards, the task's header and the task list.
    [result] = [e for e in events if e.get("type") == "result"]
    cost = usd(result["total_cost_usd"])
    assert cost.startswith("$0.00") and cost != "$0.00"
    assert f"cost {cost}" in t.locator(".result-card").first.inner_text()
    assert cost in page.inner_text("#task-head")
    assert transcript_len(server, page, task_id) == len(seqs(page))
    screenshot(page, "task-real-cli")
    page.goto(server.url + "/")
    assert page.inner_text(f"#task-{task_id} [data-label=Cost]") == cost


def test_a_used_up_subscription_shows_the_limit_and_its_reset(
    logged_in: Any, server: CcrServer, fake_anthropic: FakeAnthropic
) -> None:
    page = logged_in
    fake_anthropic.script(usage_limit(2_000_000_000))
    submit(page, "Work while the limit is used up")
    page.wait_for_selector("#task-status:has-text('Failed')", timeout=60_000)
    page.wait_for_selector("#stream-state:has-text('ended')")
    t = page.locator("#transcript")
    rejected = t.locator(".rate.warn[data-status=rejected]")
    assert rejected.count() == 1
    # no window reading: the fake announces a reset years ahead, further than a 5-hour window reaches
    assert rejected.inner_text().startswith("⚠ Usage limit reached (5-hour) · resets ")
    assert "capacity_reached" in page.inner_text("#task-error")
    assert "2033" in page.inner_text("#task-advice")
