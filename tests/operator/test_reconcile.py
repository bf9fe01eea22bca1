"""The pure decisions: status from task + Job + pods, and the queue."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ccr.core.model import ErrorType, Phase
from ccr.operator.reconcile import Action, Facts, Limits, decide, parse_result, status_patch
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


def job(
    finished: str | None = None, reason: str | None = None, name: str = "t1", created: str = "2026-01-01T00:00:00Z"
) -> JobView:
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
        created=created,
    )


def pod(
    phase: str = "Running", term: Terminated | None = None, name: str = "t1", waiting: str | None = None
) -> PodView:
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
        waiting_reason=waiting,
        terminated=term,
        disrupted=False,
        waiting_message=f"Back-off pulling image {waiting}" if waiting else None,
    )


def test_new_task_is_queued_and_asks_for_a_slot() -> None:
    d = decide(task(), None, [], NOW)
    assert d.status.phase == Phase.QUEUED and d.status.reason == "WaitingForSlot"
    assert Action.ADMIT in d.actions
    assert d.status.branch == "claude/t1"
    # the queue found its branch busy: it says for which task it waits
    d = decide(task(status=d.status.dump()), None, [], NOW, Facts(waiting_for="t0"))
    assert d.status.reason == "WaitingForTask" and "t0" in (d.status.message or "")


def test_invalid_spec_fails_once_without_echoing_the_input() -> None:
    d = decide(task(repo="not a repo!!", prompt="x" * 10), None, [], NOW)
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.INVALID
    assert "spec.repo" in (d.status.message or "") and "not a repo" not in (d.status.message or "")
    again = decide(task(status=d.status.dump(), repo="not a repo!!"), None, [], NOW)
    assert status_patch(d.status.dump(), again.status) is None and not again.actions


def test_running_then_succeeded_from_termination_message() -> None:
    d = decide(task(status={"phase": "Queued"}), job(), [pod()], NOW)
    assert d.status.phase == Phase.RUNNING and d.status.pod_name == "ccr-t1-abc" and d.status.start_time
    assert [e.reason for e in d.events] == ["Running"]
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
        Facts(log_text=""),
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
    d = decide(t, None, [], NOW, Facts(job_gone=True))
    assert d.status.phase == Phase.FAILED and "deleted" in (d.status.message or "")


def test_parse_result_takes_the_last_result_line() -> None:
    assert parse_result("x\n" + json.dumps(RESULT) + "\n") is not None
    assert parse_result('{"type":"assistant"}') is None
    assert parse_result(None) is None


def test_a_pod_that_cannot_start_is_pending_with_its_reason_then_start_failed() -> None:
    running = task(status={"phase": "Queued"})
    d = decide(running, job(), [pod("Pending", waiting="ImagePullBackOff")], NOW)
    assert d.status.phase == Phase.PENDING and d.status.reason == "ImagePullBackOff"
    assert "Back-off pulling image" in (d.status.message or "") and d.events[0].warning
    late = NOW + dt.timedelta(seconds=601)  # past the default start deadline (the Job was created at NOW)
    d = decide(task(status=d.status.dump()), job(), [pod("Pending", waiting="ImagePullBackOff")], late)
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.START_FAILED
    assert "ImagePullBackOff" in (d.status.message or "") and Action.DELETE_JOB in d.actions
    # a normal start (ContainerCreating) is Running/Starting, and the task's own deadline wins
    d = decide(task(status={"phase": "Queued"}, startTimeoutSeconds=30), job(), [pod("Pending")], NOW)
    assert (d.status.phase, d.status.reason) == (Phase.RUNNING, "Starting")
    d = decide(task(status=d.status.dump(), startTimeoutSeconds=30), job(), [pod("Pending")], NOW + dt.timedelta(31))
    assert d.status.error_type == ErrorType.START_FAILED


def test_outcome_rules_no_result_and_success_without_a_pr_fail() -> None:
    no_result = Terminated(0, "Completed", "", None)
    d = decide(
        task(status={"phase": "Running"}), job("Complete"), [pod("Succeeded", no_result)], NOW, Facts(log_text="")
    )
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.EXIT_CODE
    assert "without reporting a result" in (d.status.message or "")
    no_pr = Terminated(0, "Completed", json.dumps({**RESULT, "prUrl": None}), None)
    d = decide(task(status={"phase": "Running"}), job("Complete"), [pod("Succeeded", no_pr)], NOW)
    assert d.status.phase == Phase.FAILED and "without a pull request" in (d.status.message or "")
    bad_exit = Terminated(3, "Error", json.dumps(RESULT), None)
    d = decide(task(status={"phase": "Running"}), job("Failed"), [pod("Failed", bad_exit)], NOW)
    assert d.status.phase == Phase.FAILED and d.status.error_type == ErrorType.EXIT_CODE
    pushed = Terminated(1, "Error", json.dumps({**RESULT, "status": "Failed", "errorType": "push_failed"}), None)
    d = decide(task(status={"phase": "Running"}), job("Failed"), [pod("Failed", pushed)], NOW)
    assert d.status.error_type == ErrorType.PUSH_FAILED and d.status.reason == "PushFailed"


def test_a_follow_up_takes_the_branch_of_the_task_it_follows() -> None:
    first = task("first", status={"phase": "Running", "branch": "claude/first", "repo": "o/r"})
    d = decide(task("second", followUpOf="first"), None, [], NOW, Facts(earlier=first))
    assert d.status.branch == "claude/first" and d.status.repo == "o/r" and d.status.phase == Phase.QUEUED
    # a follow-up of a follow-up: the branch of the whole thread
    d = decide(
        task("third", followUpOf="second", status={}),
        None,
        [],
        NOW,
        Facts(earlier=task("second", status=d.status.dump(), followUpOf="first")),
    )
    assert d.status.branch == "claude/first"
    # the task it follows is not in the index (yet): no decision; after a while, refused
    young = task("fourth", followUpOf="nope")
    assert decide(young, None, [], NOW).status.phase == Phase.PENDING
    d = decide(young, None, [], NOW + dt.timedelta(minutes=5))
    assert d.status.error_type == ErrorType.INVALID and "nope" in (d.status.message or "")
    # it follows a follow-up that is not accepted itself yet: wait
    pending = task("second", followUpOf="first")
    assert (
        decide(task("fifth", followUpOf="second"), None, [], NOW, Facts(earlier=pending)).status.phase == Phase.PENDING
    )


def test_limits_come_from_the_operator_settings() -> None:
    d = decide(
        task(status={"phase": "Running"}),
        job("Failed", "DeadlineExceeded"),
        [],
        NOW,
        Facts(limits=Limits(default_timeout_seconds=120)),
    )
    assert d.status.error_type == ErrorType.TIMEOUT and "120s" in (d.status.message or "")
