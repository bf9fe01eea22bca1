"""Classification of Claude runs, against the stream-json fixtures and the edge cases around them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ccr.core.model import ErrorType
from ccr.job.classify import StreamState, add_usage, classify, structured_output, usage_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream-json"


def state_of(name: str) -> StreamState:
    state = StreamState()
    for line in (FIXTURES / name).read_text().splitlines():
        if line.strip():
            assert state.feed_line(line) is not None
    return state


def test_success_fixture_succeeds_with_usage() -> None:
    state = state_of("success.jsonl")
    outcome = classify(state, exit_code=0)
    assert outcome.ok and outcome.error_type is None
    assert outcome.message == "Fixed the post-login redirect and pushed commit to the draft PR."
    usage = usage_of(state)
    assert usage is not None
    assert (usage.cost_usd, usage.turns, usage.input_tokens, usage.output_tokens) == (0.0612, 3, 26, 245)
    assert (usage.cache_read_tokens, usage.cache_creation_tokens, usage.duration_ms) == (20000, 9800, 48210)
    assert state.session_id == "5b0c9a2e-4f1d-4c6b-9a77-2d3e8f10c001"


def test_allowed_rate_limit_event_is_not_a_failure() -> None:
    state = state_of("success.jsonl")
    assert not state.rate_limit_rejected and state.rejected_reset is None


def test_auth_expired_fixture() -> None:
    outcome = classify(state_of("auth-expired.jsonl"), exit_code=1)
    assert outcome.error_type is ErrorType.AUTH_EXPIRED
    assert "OAuth session expired" in outcome.message


def test_usage_limit_fixture_keeps_reset_time() -> None:
    outcome = classify(state_of("usage-limit.jsonl"), exit_code=1)
    assert outcome.error_type is ErrorType.CAPACITY_REACHED
    assert outcome.reset_time == dt.datetime.fromtimestamp(1788003600, dt.UTC)
    assert outcome.reset_time is not None and int(outcome.reset_time.timestamp()) == 1788003600


def test_max_turns_fixture_is_exit_code_with_reason() -> None:
    state = state_of("max-turns-with-subagent.jsonl")
    outcome = classify(state, exit_code=1)
    assert outcome.error_type is ErrorType.EXIT_CODE
    assert outcome.message.startswith("max_turns")
    assert "Reached maximum number of turns (50)" in outcome.message
    usage = usage_of(state)
    assert usage is not None and usage.cost_usd == 1.234 and usage.turns == 50


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


def test_overloaded_529_is_capacity() -> None:
    state = StreamState()
    state.feed({"type": "result", "subtype": "success", "is_error": True, "api_error_status": 529, "result": "x"})
    outcome = classify(state, exit_code=1)
    assert outcome.error_type is ErrorType.CAPACITY_REACHED and outcome.reset_time is None


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
    assert total is not None and total.turns == 53 and total.cost_usd == pytest.approx(1.2952)
    assert add_usage(None, b) == b
