"""Classification of Claude runs, against the stream-json fixtures and the edge cases around them.

The fixtures are recorded from the real CLI against the fake Anthropic API (``python -m
tests.doubles.record_fixtures``); the expected numbers follow from the scripts there (each answer's token
counts), the cost is the CLI's own arithmetic, read from the fixture's result event.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ccr.core.model import ErrorType
from ccr.job.classify import StreamState, add_usage, classify, result_text, structured_output, usage_of
from tests.doubles.claude_cli import pinned_version

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream-json"
RECORDED = sorted(p.name for p in FIXTURES.glob("*.jsonl") if not p.name.startswith("hand-"))


def events_of(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def state_of(name: str) -> StreamState:
    state = StreamState()
    for line in (FIXTURES / name).read_text().splitlines():
        if line.strip():
            assert state.feed_line(line) is not None
    return state


def results_of(name: str) -> list[dict[str, Any]]:
    return [e for e in events_of(name) if e["type"] == "result"]


@pytest.mark.parametrize("name", RECORDED)
def test_fixtures_are_recorded_from_the_pinned_cli(name: str) -> None:
    """Changing scripts/versions.env means recording them again (the module docstring says how)."""
    versions = {e["claude_code_version"] for e in events_of(name) if e.get("subtype") == "init"}
    assert versions == {pinned_version()}, f"{name} was recorded with {versions}"


def test_success_fixture_succeeds_with_the_result_events_usage() -> None:
    state = state_of("success.jsonl")
    outcome = classify(state, exit_code=0)
    assert outcome.ok and outcome.error_type is None
    assert outcome.message == "Fixed the post-login redirect and pushed the commit to the draft PR."
    usage = usage_of(state)
    [result] = results_of("success.jsonl")
    assert usage is not None
    assert usage.cost_usd == result["total_cost_usd"] == pytest.approx(0.030232)
    assert (usage.turns, usage.input_tokens, usage.output_tokens) == (5, 176, 235)
    assert (usage.cache_read_tokens, usage.cache_creation_tokens) == (30300, 9800)
    assert usage.duration_ms == result["duration_ms"]
    init = events_of("success.jsonl")[0]
    assert state.session_id == init["session_id"]


def test_an_allowed_and_a_warning_rate_limit_event_are_not_a_failure() -> None:
    state = state_of("success.jsonl")
    assert not state.rate_limit_rejected and state.rejected_reset is None
    statuses = [e["rate_limit_info"]["status"] for e in events_of("success.jsonl") if e["type"] == "rate_limit_event"]
    assert statuses == ["allowed", "allowed_warning"]


@pytest.mark.parametrize(
    ("name", "error_type", "text"),
    [
        ("auth-expired.jsonl", ErrorType.AUTH_EXPIRED, "Failed to authenticate. API Error: 401"),
        ("forbidden.jsonl", ErrorType.AUTH_EXPIRED, "403"),
        ("usage-limit.jsonl", ErrorType.CAPACITY_REACHED, "You've hit your 5-hour limit"),
        ("overloaded.jsonl", ErrorType.CAPACITY_REACHED, "529 Overloaded"),
        ("rate-limited.jsonl", ErrorType.CAPACITY_REACHED, "temporarily limiting requests"),
        ("prompt-too-long.jsonl", ErrorType.EXIT_CODE, "prompt_too_long: Prompt is too long"),
        ("max-turns-with-subagent.jsonl", ErrorType.EXIT_CODE, "max_turns: Reached maximum number of turns (3)"),
    ],
)
def test_failure_fixtures(name: str, error_type: ErrorType, text: str) -> None:
    outcome = classify(state_of(name), exit_code=1)
    assert outcome.error_type is error_type
    assert text in outcome.message
    if name != "usage-limit.jsonl":
        assert outcome.reset_time is None


def test_usage_limit_keeps_the_reset_time_from_the_real_shape() -> None:
    """terminal_reason api_error, api_error usage_limit_reached, a rejected rate_limit_event: the reset time
    is in the event and in the synthetic assistant message's api_error_params."""
    state = state_of("usage-limit.jsonl")
    [result] = results_of("usage-limit.jsonl")
    assert result["terminal_reason"] == "api_error" and result["api_error"] == "usage_limit_reached"
    outcome = classify(state, exit_code=1)
    assert outcome.error_type is ErrorType.CAPACITY_REACHED
    assert outcome.reset_time == dt.datetime.fromtimestamp(2_000_000_000, dt.UTC)
    assert "resets at 2033-05-18T03:33:20+00:00" in outcome.message


@pytest.mark.parametrize("where", ["rate_limit_event", "api_error_params"])
def test_the_reset_time_is_read_from_either_place(where: str) -> None:
    kept = [
        e
        for e in events_of("usage-limit.jsonl")
        if (e["type"] != "rate_limit_event" or where == "rate_limit_event")
        and (e["type"] != "assistant" or where == "api_error_params")
    ]
    state = StreamState()
    for event in kept:
        state.feed(event)
    outcome = classify(state, exit_code=1)
    assert outcome.error_type is ErrorType.CAPACITY_REACHED and outcome.reset_time is not None
    assert int(outcome.reset_time.timestamp()) == 2_000_000_000


def test_api_error_words_alone_classify() -> None:
    for word, expected in (
        ("usage_limit_reached", ErrorType.CAPACITY_REACHED),
        ("permission_error", ErrorType.AUTH_EXPIRED),
    ):
        state = StreamState()
        state.feed({"type": "result", "subtype": "success", "is_error": True, "api_error": word, "result": "x"})
        assert classify(state, exit_code=1).error_type is expected, word


def test_max_turns_fixture_keeps_the_subagent_lines_and_usage() -> None:
    state = state_of("max-turns-with-subagent.jsonl")
    nested = [e for e in events_of("max-turns-with-subagent.jsonl") if e.get("parent_tool_use_id")]
    assert nested, "the subagent's events carry parent_tool_use_id"
    usage = usage_of(state)
    [result] = results_of("max-turns-with-subagent.jsonl")
    assert usage is not None and usage.turns == result["num_turns"] == 4
    assert usage.cost_usd == result["total_cost_usd"]


def test_background_subagents_give_several_results_whose_usage_adds_up() -> None:
    """A background subagent's notification is a turn of its own: a second result event. Turns and tokens
    add up, the cost is the session's running total (the same in both)."""
    state = state_of("background-subagent.jsonl")
    first, second = results_of("background-subagent.jsonl")
    assert (first["result_index"], second["result_index"]) == (0, 1)
    usage = usage_of(state)
    assert usage is not None
    assert usage.turns == first["num_turns"] + second["num_turns"] == 3
    assert usage.input_tokens == first["usage"]["input_tokens"] + second["usage"]["input_tokens"]
    assert usage.cost_usd == second["total_cost_usd"] == first["total_cost_usd"]
    assert classify(state, exit_code=0).ok
    assert result_text(state) == "The survey is done."


def test_structured_output_fixture() -> None:
    state = state_of("structured-output.jsonl")
    assert classify(state, exit_code=0).ok
    assert structured_output(state) == {"repo": "acme/gadgets", "reason": "the task names the gadgets service"}


def test_success_subtype_with_is_error_is_a_failure() -> None:
    state = StreamState()
    state.feed({"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 500 boom"})
    outcome = classify(state, exit_code=1)
    assert outcome.error_type is ErrorType.EXIT_CODE and "API Error: 500" in outcome.message


def test_success_result_with_nonzero_exit_is_a_failure() -> None:
    state = StreamState()
    state.feed({"type": "result", "subtype": "success", "is_error": False, "result": "done"})
    assert classify(state, exit_code=3).error_type is ErrorType.EXIT_CODE


def test_no_result_is_exit_code_with_stderr_tail() -> None:
    outcome = classify(StreamState(), exit_code=2, stderr_tail="Traceback...\nTypeError: fake crash\n")
    assert outcome.error_type is ErrorType.EXIT_CODE
    assert "code 2" in outcome.message and "TypeError: fake crash" in outcome.message


def test_login_text_on_stderr_is_auth_expired() -> None:
    outcome = classify(StreamState(), exit_code=1, stderr_tail="Invalid API key · Please run /login\n")
    assert outcome.error_type is ErrorType.AUTH_EXPIRED


@pytest.mark.parametrize("fixture", ["success.jsonl", "auth-expired.jsonl", "usage-limit.jsonl"])
def test_our_deadline_and_cancel_come_first(fixture: str) -> None:
    state = state_of(fixture)
    assert classify(state, exit_code=143, timed_out=True).error_type is ErrorType.TIMEOUT
    assert classify(state, exit_code=143, cancelled=True).error_type is ErrorType.CANCELLED


def test_auth_before_capacity() -> None:
    state = state_of("usage-limit.jsonl")
    state.feed({"type": "assistant", "message": {"content": []}, "error": "authentication_failed"})
    assert classify(state, exit_code=1).error_type is ErrorType.AUTH_EXPIRED


def test_unknown_events_and_garbage_are_kept_not_fatal() -> None:
    state = StreamState()
    assert state.feed_line('{"type": "brand_new", "subtype": "whatever"}') == {
        "type": "brand_new",
        "subtype": "whatever",
    }
    assert state.feed_line("not json at all") is None
    assert state.feed_line("[1, 2]") is None
    assert state.events == 1


def test_structured_output_prefers_the_field_then_the_text() -> None:
    state = StreamState()
    state.feed(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "structured_output": {"repo": "a/b"},
            "result": json.dumps({"repo": "c/d"}),
        }
    )
    assert structured_output(state) == {"repo": "a/b"}
    state.feed({"type": "result", "subtype": "success", "is_error": False, "result": 'Sure: {"repo": "c/d"}'})
    assert structured_output(state) == {"repo": "c/d"}


def test_usage_sums_runs() -> None:
    a, b = usage_of(state_of("success.jsonl")), usage_of(state_of("max-turns-with-subagent.jsonl"))
    total = add_usage(a, b)
    assert a is not None and b is not None and total is not None
    assert total.turns == 9 and total.cost_usd == pytest.approx((a.cost_usd or 0) + (b.cost_usd or 0))
    assert add_usage(None, b) == b
