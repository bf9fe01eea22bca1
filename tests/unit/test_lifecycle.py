"""The shared lifecycle: one spelling of every reason, the outcome rules, the queue, the list query."""

from __future__ import annotations

import datetime as dt

import pytest

from ccr.core import lifecycle, queue
from ccr.core.lifecycle import Reason
from ccr.core.model import AuthTarget, Changes, ErrorType, JobResult, Phase, TaskSpec, TaskStatus
from ccr.core.store import BadQuery, TaskQuery, TaskRecord, page

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPEC = TaskSpec(prompt="do it", repo="o/r")


def accepted() -> TaskStatus:
    return lifecycle.accept(TaskStatus(), SPEC, branch="claude/t", repo=None, generation=1, now=NOW)


def running() -> TaskStatus:
    return lifecycle.started(accepted(), pod_name=None, start_time=NOW, generation=1, now=NOW)


def result(**fields: object) -> JobResult:
    base: dict[str, object] = {"status": "Succeeded", "prUrl": "https://gh/o/r/pull/1", "branch": "claude/t"}
    return JobResult.model_validate({**base, **fields})


def test_accept_queues_on_the_branch_with_conditions_at_the_generation() -> None:
    s = accepted()
    assert (s.phase, s.reason, s.branch, s.repo) == (Phase.QUEUED, Reason.WAITING_FOR_SLOT, "claude/t", "o/r")
    assert {c.type: (c.status, c.reason) for c in s.conditions} == {
        "Accepted": ("True", "Validated"),
        "Started": ("False", "WaitingForSlot"),
    }
    assert all(c.observed_generation == 1 for c in s.conditions) and s.observed_generation == 1


def test_success_needs_the_pull_request_and_a_clean_exit() -> None:
    ok = lifecycle.finished(running(), result(), exit_code=0, generation=1, now=NOW)
    assert (ok.phase, ok.reason, ok.error_type, ok.message) == (Phase.SUCCEEDED, "Succeeded", None, None)
    assert {c.type: c.status for c in ok.conditions}["PullRequestOpened"] == "True"
    no_pr = lifecycle.finished(running(), result(prUrl=None), exit_code=0, generation=1, now=NOW)
    assert (no_pr.phase, no_pr.error_type) == (Phase.FAILED, ErrorType.EXIT_CODE)
    bad_exit = lifecycle.finished(running(), result(), exit_code=2, generation=1, now=NOW)
    assert (bad_exit.phase, bad_exit.error_type) == (Phase.FAILED, ErrorType.EXIT_CODE)
    none = lifecycle.finished(running(), None, exit_code=0, generation=1, now=NOW)
    assert none.phase is Phase.FAILED and "without reporting a result" in (none.message or "")


@pytest.mark.parametrize(
    ("fields", "phase", "error", "reason"),
    [
        ({"status": "Failed", "errorType": "push_failed"}, Phase.FAILED, ErrorType.PUSH_FAILED, "PushFailed"),
        ({"status": "Failed"}, Phase.FAILED, ErrorType.EXIT_CODE, "ExitCode"),
        ({"status": "Cancelled"}, Phase.CANCELLED, ErrorType.CANCELLED, "Cancelled"),
        ({"status": "Running"}, Phase.FAILED, ErrorType.EXIT_CODE, "ExitCode"),  # a result that is no end
        ({"status": "Failed", "errorType": "auth_expired"}, Phase.FAILED, ErrorType.AUTH_EXPIRED, "AuthExpired"),
    ],
)
def test_failures_keep_their_class_with_one_spelling(
    fields: dict[str, object], phase: Phase, error: ErrorType, reason: str
) -> None:
    s = lifecycle.finished(running(), result(**fields), exit_code=1, generation=2, now=NOW)
    assert (s.phase, s.error_type, s.reason) == (phase, error, reason)
    complete = next(c for c in s.conditions if c.type == "Complete")
    assert (complete.status, complete.reason, complete.observed_generation) == ("False", reason, 2)


def test_auth_failures_name_their_target() -> None:
    claude = lifecycle.finished(
        running(), result(status="Failed", errorType="auth_expired"), exit_code=1, generation=1, now=NOW
    )
    assert claude.auth_target is AuthTarget.CLAUDE  # Claude's is the default when the run names none
    github = result(status="Failed", errorType="auth_expired", authTarget="github")
    assert lifecycle.finished(running(), github, exit_code=1, generation=1, now=NOW).auth_target is AuthTarget.GITHUB
    other = lifecycle.finished(
        running(), result(status="Failed", authTarget="github"), exit_code=1, generation=1, now=NOW
    )
    assert other.auth_target is None  # only auth_expired has a target


def test_changes_usage_and_the_pr_survive_a_failure_seen_by_the_backend() -> None:
    reported = result(changes={"commits": 2, "filesChanged": 3, "additions": 10, "deletions": 4})
    s = lifecycle.failed(running(), ErrorType.TIMEOUT, "past its deadline", result=reported, generation=1, now=NOW)
    assert s.changes == Changes(commits=2, files_changed=3, additions=10, deletions=4)
    assert s.pr_url and s.phase is Phase.FAILED and s.error_type is ErrorType.TIMEOUT
    assert s.changes.summary() == "2 commits, 3 files (+10 -4)" and Changes().summary() == "no commits"


def test_pending_with_a_start_problem_then_started() -> None:
    s = lifecycle.launching(accepted(), job_name="ccr-t", generation=1, now=NOW)
    assert (s.phase, s.reason) == (Phase.RUNNING, Reason.STARTING)
    blocked = lifecycle.start_blocked(s, "ImagePullBackOff", "Back-off pulling image x", generation=1, now=NOW)
    assert (blocked.phase, blocked.reason) == (Phase.PENDING, "ImagePullBackOff")
    assert blocked.message == "ImagePullBackOff: Back-off pulling image x"
    event = lifecycle.transition(s, blocked)
    assert event is not None and event.warning and event.reason == "ImagePullBackOff"
    back = lifecycle.started(blocked, pod_name="p", start_time=NOW, generation=1, now=NOW)
    assert (back.phase, back.reason, back.message) == (Phase.RUNNING, Reason.RUNNING, None)


def test_messages_are_redacted_and_bounded() -> None:
    s = lifecycle.failed(
        running(), ErrorType.EXIT_CODE, "leaked ghp_" + "a" * 30 + " " + "x" * 5000, generation=1, now=NOW
    )
    assert "ghp_" not in (s.message or "") and len(s.message or "") <= lifecycle.MESSAGE_MAX


def test_thread_branch() -> None:
    assert lifecycle.thread_branch("t1") == "claude/t1"
    assert lifecycle.thread_branch("t2", "t1", None) == "claude/t1"
    assert lifecycle.thread_branch("t3", "t2", "claude/t1") == "claude/t1"


def entry(name: str, priority: int = 0, lane: str | None = None, created: str = "") -> queue.Entry:
    return queue.Entry(name, name, priority, created or name, lane)


def test_queue_order_limit_and_one_run_per_branch() -> None:
    a, bb, c, d = entry("a", lane="b"), entry("bb", 5, lane="b"), entry("c"), entry("d", -1)
    admission = queue.admit([a, bb, c, d], [], 2)
    assert [e.name for e in admission.start] == ["bb", "c"] and admission.blocked == {"a": bb}
    admission = queue.admit([a, c, d], [entry("x", lane="b")], 2)
    assert [e.name for e in admission.start] == ["c"] and admission.blocked["a"].name == "x"
    assert queue.admit([a], [entry("x"), entry("y")], 2).start == []
    # two follow-ups of one branch at once: the earlier submitted starts, the other waits for it
    first, second = entry("f2", lane="claude/t", created="1"), entry("f1", lane="claude/t", created="2")
    admission = queue.admit([second, first], [], 5)
    assert admission.start == [first] and admission.blocked == {"f1": first}


def record(task_id: str, prompt: str, phase: Phase, repo: str | None = None) -> TaskRecord:
    return TaskRecord(id=task_id, spec=TaskSpec(prompt=prompt), status=TaskStatus(phase=phase, repo=repo), created=NOW)


def test_list_query_filters_and_cursor() -> None:
    tasks = [
        record(
            f"t{i}",
            f"prompt {i}" + (" flaky" if i % 3 == 0 else ""),
            Phase.FAILED if i % 2 else Phase.SUCCEEDED,
            "o/r" if i < 5 else "o/s",
        )
        for i in range(10, 0, -1)
    ]
    found, more = page(tasks, TaskQuery(statuses=frozenset({Phase.FAILED}), repo="O/R", limit=2))
    assert [t.id for t in found] == ["t3", "t1"] and not more
    found, more = page(tasks, TaskQuery(text="FLAKY", limit=2))
    assert [t.id for t in found] == ["t9", "t6"] and more
    found, more = page(tasks, TaskQuery(text="flaky", before="t6", limit=2))
    assert [t.id for t in found] == ["t3"] and not more
    with pytest.raises(BadQuery):
        page(tasks, TaskQuery(before="gone"))


def test_a_result_that_is_only_progress_keeps_the_pr_of_a_killed_job() -> None:
    progress = result(status="Running", message="working")
    s = lifecycle.finished(running(), progress, exit_code=137, generation=1, now=NOW)
    assert (s.phase, s.error_type, s.pr_url) == (Phase.FAILED, ErrorType.EXIT_CODE, "https://gh/o/r/pull/1")
    assert s.message == "the job ended with code 137 without reporting a result"


POLICY = lifecycle.PausePolicy(max_resumes=2, jitter_seconds=30, backoff_seconds=60, backoff_max_seconds=300)


def limited(reset: dt.datetime | None) -> JobResult:
    fields: dict[str, object] = {"status": "Failed", "errorType": "capacity_reached", "message": "limit"}
    if reset is not None:
        fields["resetTime"] = reset.isoformat()
    return result(**fields)


def test_a_usage_limit_pauses_until_the_reset_plus_a_stable_jitter() -> None:
    reset = NOW + dt.timedelta(hours=2)
    s = lifecycle.finished(running(), limited(reset), exit_code=1, generation=1, now=NOW, pause=("t", POLICY))
    assert (s.phase, s.reason, s.error_type, s.completion_time) == (Phase.PAUSED, "UsageLimit", None, None)
    assert s.resume_at is not None and reset <= s.resume_at <= reset + dt.timedelta(seconds=30)
    assert s.pr_url and "resume 1 of 2" in (s.message or "") and not s.phase.terminal
    again = lifecycle.finished(running(), limited(reset), exit_code=1, generation=1, now=NOW, pause=("t", POLICY))
    assert again.resume_at == s.resume_at  # recomputed the same (level-based)
    assert lifecycle.limit_until([s], NOW) == s.resume_at and lifecycle.limit_until([s], s.resume_at) is None
    assert not lifecycle.due(s, NOW) and lifecycle.due(s, s.resume_at)
    back = lifecycle.resume(s, generation=1, now=s.resume_at)
    assert (back.phase, back.reason, back.resumes, back.resume_at) == (Phase.QUEUED, "Resuming", 1, None)
    assert not [c for c in back.conditions if c.type == "Complete"]


def test_resumes_are_bounded_and_an_overload_backs_off_exponentially() -> None:
    status = running()
    waits = []
    for _ in range(POLICY.max_resumes):
        status = lifecycle.finished(status, limited(None), exit_code=1, generation=1, now=NOW, pause=("t", POLICY))
        assert (status.phase, status.reason) == (Phase.PAUSED, "Overloaded")
        assert status.resume_at is not None
        waits.append((status.resume_at - NOW).total_seconds())
        status = lifecycle.resume(status, generation=1, now=status.resume_at)
    assert 60 <= waits[0] <= 90 and 120 <= waits[1] <= 150  # doubled, with the jitter on top
    done = lifecycle.finished(status, limited(None), exit_code=1, generation=1, now=NOW, pause=("t", POLICY))
    assert (done.phase, done.error_type, done.resumes) == (Phase.FAILED, ErrorType.CAPACITY_REACHED, 2)
    other = lifecycle.finished(
        running(), result(status="Failed"), exit_code=1, generation=1, now=NOW, pause=("t", POLICY)
    )
    assert other.phase is Phase.FAILED  # only capacity_reached pauses


def test_the_queue_resumes_paused_tasks_first_and_holds_new_ones_back() -> None:
    fresh, back = entry("new", 5), queue.Entry("old", "old", 0, "z", None, resuming=True)
    admission = queue.admit([fresh, back], [], 1)
    assert admission.start == [back]
    held = queue.admit([fresh, back], [], 5, hold=lambda e: not e.resuming)
    assert held.start == [back] and held.held == [fresh]
