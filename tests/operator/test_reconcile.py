"""The pure decisions: status from task + Job + pods, and the queue."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ccr.core.model import ErrorType, Phase, TaskSpec
from ccr.operator.reconcile import (
    Action,
    Slot,
    decide,
    parse_result,
    select_admissions,
    status_patch,
)
from ccr.operator.views import JobView, PodView, TaskView, Terminated

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RESULT = {
    "type": "ccr",
    "event": "result",
    "status": "Succeeded",
    "prUrl": "https://gh/o/r/pull/1",
    "usage": {"costUsd": 0.5, "turns": 3},
}


def task(name: str = "t1", status: dict[str, Any] | None = None, **spec: Any) -> TaskView:
    return TaskView(
        namespace="ns",
        name=name,
        uid=f"uid-{name}",
        generation=1,
        created=f"2026-01-01T00:00:0{len(name)}Z",
        spec={"prompt": "p", **spec},
        status=status or {},
    )


def job(finished: str | None = None, reason: str | None = None, name: str = "t1") -> JobView:
    return JobView(
        namespace="ns",
        name=f"ccr-{name}",
        uid="j",
        task_name=name,
        task_uid=f"uid-{name}",
        finished=finished,
        reason=reason,
        message=None,
        start_time="2026-01-01T00:00:00Z",
        completion_time="2026-01-01T00:01:00Z" if finished else None,
        deleting=False,
        ttl=None,
    )


def pod(phase: str = "Running", term: Terminated | None = None, name: str = "t1") -> PodView:
    return PodView(
        namespace="ns",
        name=f"ccr-{name}-abc",
        task_name=name,
        task_uid=f"uid-{name}",
        created="x",
        phase=phase,
        start_time="2026-01-01T00:00:05Z",
        deleting=False,
        reason=None,
        message=None,
        waiting_reason=None,
        terminated=term,
        disrupted=False,
    )


def test_new_task_is_queued_and_asks_for_a_slot() -> None:
    d = decide(task(), None, [], NOW)
    assert d.status.phase == Phase.QUEUED
    assert Action.ADMIT in d.actions
    assert d.status.branch == "claude/t1"


def test_invalid_spec_fails_once_without_echoing_the_input() -> None:
    d = decide(task(repo="not a repo!!", prompt="x" * 10), None, [], NOW)
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.INVALID
    assert "spec.repo" in (d.status.message or "") and "not a repo" not in (d.status.message or "")
    again = decide(task(status=d.status.dump(), repo="not a repo!!"), None, [], NOW)
    assert status_patch(d.status.dump(), again.status) is None and not again.actions


def test_running_then_succeeded_from_termination_message() -> None:
    d = decide(task(status={"phase": "Queued"}), job(), [pod()], NOW)
    assert d.status.phase == Phase.RUNNING and d.status.pod_name == "ccr-t1-abc" and d.status.start_time
    assert [e.reason for e in d.events] == ["JobCreated", "Started"]
    assert not decide(task(status=d.status.dump()), job(), [pod()], NOW).events
    term = Terminated(0, "Completed", json.dumps(RESULT), "2026-01-01T00:00:59Z")
    d2 = decide(task(status=d.status.dump()), job("Complete"), [pod("Succeeded", term)], NOW)
    s = d2.status
    assert s.phase == Phase.SUCCEEDED and s.pr_url == RESULT["prUrl"]
    assert s.usage is not None and s.usage.cost_usd == 0.5
    assert s.completion_time == dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert {c.type: c.status for c in s.conditions}["Complete"] == "True"
    assert all(c.observed_generation == 1 for c in s.conditions)


def test_auth_expired_and_exit_code() -> None:
    res = {
        **RESULT,
        "status": "Failed",
        "errorType": "auth_expired",
        "message": "Please run /login ghp_" + "a" * 30,
    }
    term = Terminated(1, "Error", "noise\n" + json.dumps(res), None)
    d = decide(task(status={"phase": "Running"}), job("Failed"), [pod("Failed", term)], NOW)
    assert d.status.error_type == ErrorType.AUTH_EXPIRED
    assert "ghp_" not in (d.status.message or "")
    d = decide(
        task(status={"phase": "Running"}),
        job("Failed"),
        [pod("Failed", Terminated(3, "Error", "boom", None))],
        NOW,
    )
    assert Action.FETCH_LOG in d.actions
    d = decide(
        task(status={"phase": "Running"}),
        job("Failed"),
        [pod("Failed", Terminated(3, "Error", "boom", None))],
        NOW,
        log_text="",
    )
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.EXIT_CODE
    assert "code 3" in (d.status.message or "")


def test_deadline_is_timeout() -> None:
    d = decide(task(status={"phase": "Running"}), job("Failed", "DeadlineExceeded"), [], NOW)
    assert d.status.error_type == ErrorType.TIMEOUT


def test_cancel() -> None:
    d = decide(task(status={"phase": "Running"}, cancel=True), job(), [pod()], NOW)
    assert Action.DELETE_JOB in d.actions and d.status.phase == Phase.RUNNING
    d = decide(task(status=d.status.dump(), cancel=True), None, [], NOW)
    assert d.status.phase == Phase.CANCELLED and d.status.error_type == ErrorType.CANCELLED
    d = decide(task(status={"phase": "Queued"}, cancel=True), None, [], NOW)
    assert d.status.phase == Phase.CANCELLED


def test_lost_job_is_verified_then_failed() -> None:
    t = task(status={"phase": "Running", "jobName": "ccr-t1"})
    assert decide(t, None, [], NOW).actions == {Action.VERIFY_JOB_GONE}
    d = decide(t, None, [], NOW, job_gone=True)
    assert d.status.phase == Phase.FAILED and "deleted" in (d.status.message or "")


def test_parse_result_takes_the_last_result_line() -> None:
    assert parse_result("x\n" + json.dumps(RESULT) + "\n") is not None
    assert parse_result('{"type":"assistant"}') is None
    assert parse_result(None) is None


def test_queue_order_limit_and_lanes() -> None:
    a = task("a", repo="o/r", branch="b")
    bb = task("bb", repo="o/r", branch="b", priority=5)
    ccc = task("ccc")
    dddd = task("dddd", priority=-1)

    def specs(*tasks: TaskView) -> list[tuple[TaskView, TaskSpec]]:
        return [(t, TaskSpec.model_validate(dict(t.spec))) for t in tasks]

    chosen = select_admissions(specs(a, bb, ccc, dddd), [], 2)
    assert [t.name for t in chosen] == ["bb", "ccc"]  # a shares bb's lane
    chosen = select_admissions(specs(a, ccc, dddd), [Slot(("ns", "x"), ("o/r", "b"))], 2)
    assert [t.name for t in chosen] == ["ccc"]
    assert select_admissions(specs(a), [Slot(("ns", "x"), None)] * 2, 2) == []
