"""The decisions, pure: given what a task asks for and what its Job and pods are, what should its status
be, and what must be done? No I/O and no clock (``now`` is passed in), so every case is a unit test.

Level-based: ``decide`` looks only at the current state, never at which event arrived, so calling it
again (timer, restart, a Job event, a pod event) is always safe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ccr.core.model import (
    ConditionType,
    ErrorType,
    JobResult,
    Phase,
    TaskSpec,
    TaskStatus,
    branch_for,
    set_condition,
)
from ccr.core.redact import Redactor
from ccr.operator.views import JobView, PodView, TaskView

_REDACTOR = Redactor()  # token shapes only: the operator never holds the secret values themselves
MESSAGE_MAX = 1024
# After a cancel, the pods get the pipeline's grace period; past this extra margin we stop waiting.
CANCEL_WAIT_MARGIN_SECONDS = 60
JOB_LOST = "the Job was deleted before the task finished"


def redact(text: str | None) -> str | None:
    if text is None:
        return None
    out = _REDACTOR.redact(text)
    return out if len(out) <= MESSAGE_MAX else out[: MESSAGE_MAX - 1] + "…"


class Action(enum.StrEnum):
    ADMIT = "admit"  # a candidate for a slot: the queue decides
    DELETE_JOB = "delete-job"
    VERIFY_JOB_GONE = "verify-job-gone"  # the index has no Job but status names one: GET before concluding
    FETCH_LOG = "fetch-log"  # finished without a termination message: read the last log line


@dataclasses.dataclass(frozen=True)
class Transition:
    """A Kubernetes Event to post: Normal or Warning."""

    warning: bool
    reason: str
    message: str


@dataclasses.dataclass
class Decision:
    status: TaskStatus
    actions: set[Action] = dataclasses.field(default_factory=set)
    events: list[Transition] = dataclasses.field(default_factory=list)
    log_pod: str | None = None  # for FETCH_LOG


def parse_spec(spec: Mapping[str, Any]) -> tuple[TaskSpec | None, str | None]:
    """The validated spec, or a short reason (never the offending input: it may be a 256 KB prompt)."""
    try:
        return TaskSpec.model_validate(dict(spec)), None
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_input=False, include_url=False)[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ())) or "spec"
            parts.append(f"spec.{loc}: {err.get('msg', 'invalid')}")
        return None, "; ".join(parts)


def parse_result(text: str | None) -> JobResult | None:
    """The pipeline's result from a termination message or log tail: the last JSON line that is one."""
    if not text:
        return None
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if data.get("type", "ccr") != "ccr" or data.get("event", "result") != "result":
            continue
        if "status" not in data:
            continue
        try:
            return JobResult.model_validate(data)
        except ValidationError:
            continue
    return None


def current_status(task: TaskView) -> TaskStatus:
    try:
        return TaskStatus.model_validate(dict(task.status))
    except ValidationError:
        return TaskStatus()  # somebody wrote garbage into status: we own it, start over


def latest_pod(pods: Iterable[PodView]) -> PodView | None:
    ordered = sorted(pods, key=lambda p: (p.created, p.name))
    return ordered[-1] if ordered else None


def _ts(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition_time(status: TaskStatus, type_: str) -> dt.datetime | None:
    for c in status.conditions:
        if c.type == type_:
            return c.last_transition_time
    return None


class _Builder:
    """Accumulates a new status from the old one, with conditions at the task's generation."""

    def __init__(self, task: TaskView, old: TaskStatus) -> None:
        self.task = task
        self.old = old
        self.new = old.model_copy(deep=True)
        self.new.observed_generation = task.generation

    def cond(self, type_: str, ok: bool | None, reason: str, message: str = "") -> None:
        self.new.conditions = set_condition(
            self.new.conditions, type_, ok, reason, redact(message) or "", self.task.generation
        )


def decide(
    task: TaskView,
    job: JobView | None,
    pods: Sequence[PodView],
    now: dt.datetime,
    *,
    job_gone: bool = False,
    log_text: str | None = None,
    cancel_grace_seconds: int = 20,
) -> Decision:
    """The status the task should have and the actions to take, from the facts only.

    ``job_gone``: the Job was looked up directly and does not exist (not just missing from the cache).
    ``log_text``: the tail of the pod's log, read after a ``FETCH_LOG`` action ("" if unreadable).
    """
    old = current_status(task)
    b = _Builder(task, old)
    d = Decision(status=b.new)
    own_job = job if job is not None and job.task_uid in ("", task.uid) else None
    own_pods = [p for p in pods if p.task_uid in ("", task.uid)]

    if old.phase.terminal:
        # Terminal is sticky. Only make sure nothing of ours still runs (e.g. Failed/invalid after a race).
        if own_job is not None and own_job.finished is None and not own_job.deleting:
            d.actions.add(Action.DELETE_JOB)
        return d

    spec, invalid = parse_spec(task.spec)
    if spec is None:
        _finish(b, now, Phase.FAILED, ErrorType.INVALID, invalid or "invalid spec")
        b.cond(ConditionType.ACCEPTED, False, "InvalidSpec", invalid or "")
        if own_job is not None and not own_job.deleting:
            d.actions.add(Action.DELETE_JOB)
        d.events.append(Transition(True, "InvalidSpec", redact(invalid) or ""))
        return d
    if not any(c.type == ConditionType.ACCEPTED for c in old.conditions):
        b.cond(ConditionType.ACCEPTED, True, "Validated", "")
    b.new.repo = b.new.repo or spec.repo
    b.new.branch = b.new.branch or spec.branch or branch_for(task.name)

    if spec.cancel and (own_job is None or own_job.finished is None):
        return _decide_cancel(b, d, own_job, own_pods, now, cancel_grace_seconds)

    if own_job is None:
        if job is not None:
            return d  # a Job of a previous task with the same name is still being collected: wait
        if old.job_name and old.phase == Phase.RUNNING:
            if not job_gone:
                d.actions.add(Action.VERIFY_JOB_GONE)
                return d
            pod = latest_pod(own_pods)
            result = parse_result(pod.terminated.message) if pod and pod.terminated else None
            if result is not None:
                _apply_result(b, result, pod.terminated.exit_code if pod and pod.terminated else 0, now)
            else:
                _finish(b, now, Phase.FAILED, ErrorType.EXIT_CODE, JOB_LOST)
            d.events.append(_terminal_event(b.new))
            return d
        if old.phase != Phase.QUEUED:
            b.new.phase = Phase.QUEUED
            b.cond(ConditionType.STARTED, False, "Queued", "waiting for a free slot")
            d.events.append(Transition(False, "Queued", "waiting for a free slot"))
        d.actions.add(Action.ADMIT)
        return d

    if own_job.deleting:
        return d  # going away (by someone else); the next look decides
    b.new.job_name = own_job.name
    pod = latest_pod(own_pods)

    if own_job.finished is None:
        if b.new.phase != Phase.RUNNING:
            b.new.phase = Phase.RUNNING
            d.events.append(Transition(False, "JobCreated", f"Job {own_job.name} created"))
        if pod is not None and pod.phase in ("Running", "Succeeded", "Failed"):
            if not any(c.type == ConditionType.STARTED and c.status == "True" for c in old.conditions):
                d.events.append(Transition(False, "Started", f"pod {pod.name} is running"))
            b.new.pod_name = pod.name
            b.new.start_time = b.new.start_time or _ts(pod.start_time) or now
            b.cond(ConditionType.STARTED, True, "PodRunning", f"pod {pod.name}")
        elif pod is not None:
            b.new.pod_name = pod.name
            b.cond(ConditionType.STARTED, False, pod.waiting_reason or "PodPending", pod.message or "")
        else:
            b.cond(ConditionType.STARTED, False, "JobCreated", f"Job {own_job.name}")
        return d

    # The Job finished: the result comes from the termination message, else the log's last line.
    result = None
    exit_code = 0 if own_job.finished == "Complete" else 1
    if pod is not None:
        b.new.pod_name = pod.name
        b.new.start_time = b.new.start_time or _ts(pod.start_time)
        if pod.terminated is not None:
            exit_code = pod.terminated.exit_code
            result = parse_result(pod.terminated.message)
        if result is None and log_text is None and pod.terminated is not None:
            d.actions.add(Action.FETCH_LOG)
            d.log_pod = pod.name
            return d
        if result is None:
            result = parse_result(log_text)
    b.new.start_time = b.new.start_time or _ts(own_job.start_time)
    finished_at = _ts(own_job.completion_time) or (_ts(pod.terminated.finished_at) if pod and pod.terminated else None)
    if own_job.finished == "Failed" and own_job.reason == "DeadlineExceeded":
        if result is not None:
            _apply_result(b, result, exit_code, now)
        _finish(
            b,
            finished_at or now,
            Phase.FAILED,
            ErrorType.TIMEOUT,
            f"the task ran past its deadline of {spec.timeout_seconds}s",
        )
    elif result is not None:
        _apply_result(b, result, exit_code, finished_at or now)
    elif own_job.finished == "Complete":
        _finish(b, finished_at or now, Phase.SUCCEEDED, None, "the job succeeded without reporting a result")
    else:
        _finish(b, finished_at or now, Phase.FAILED, ErrorType.EXIT_CODE, _failure_text(own_job, pod))
    d.events.append(_terminal_event(b.new))
    return d


def _decide_cancel(
    b: _Builder, d: Decision, job: JobView | None, pods: Sequence[PodView], now: dt.datetime, grace: int
) -> Decision:
    alive = [p for p in pods if p.terminated is None and p.phase not in ("Succeeded", "Failed")]
    if job is not None and not job.deleting:
        d.actions.add(Action.DELETE_JOB)
    if job is None and (not alive or b.old.phase in (Phase.PENDING, Phase.QUEUED)):
        pod = latest_pod(pods)
        result = parse_result(pod.terminated.message) if pod and pod.terminated else None
        if result is not None and result.usage is not None:
            b.new.usage = result.usage
            b.new.pr_url = b.new.pr_url or result.pr_url
        _finish(b, now, Phase.CANCELLED, ErrorType.CANCELLED, "cancelled on request")
        d.events.append(Transition(False, "Cancelled", "cancelled on request"))
        return d
    since = _condition_time(b.old, ConditionType.COMPLETE)
    if since is not None and (now - since).total_seconds() > grace + CANCEL_WAIT_MARGIN_SECONDS:
        _finish(b, now, Phase.CANCELLED, ErrorType.CANCELLED, "cancelled on request (pods were slow to stop)")
        d.events.append(Transition(True, "Cancelled", "cancelled; pods did not stop within the grace period"))
        return d
    if not any(c.type == ConditionType.COMPLETE and c.reason == "Cancelling" for c in b.old.conditions):
        b.cond(ConditionType.COMPLETE, None, "Cancelling", "stopping the job")
        d.events.append(Transition(False, "Cancelling", "stopping the job"))
    return d


def _failure_text(job: JobView, pod: PodView | None) -> str:
    if pod is not None:
        if pod.disrupted or pod.reason == "Evicted":
            return f"the pod was evicted or disrupted: {pod.message or pod.reason or 'no reason given'}"
        if pod.terminated is not None:
            return f"the job exited with code {pod.terminated.exit_code} ({pod.terminated.reason or 'Error'})"
    return f"the Job failed: {job.reason or 'unknown reason'}: {job.message or ''}".rstrip(": ")


def _apply_result(b: _Builder, result: JobResult, exit_code: int, when: dt.datetime) -> None:
    s = b.new
    s.repo = result.repo or s.repo
    s.branch = result.branch or s.branch
    s.pr_url = result.pr_url or s.pr_url
    s.session_id = result.session_id or s.session_id
    s.usage = result.usage or s.usage
    s.reset_time = result.reset_time
    phase = result.status if result.status.terminal else Phase.FAILED
    error = result.error_type
    if phase == Phase.SUCCEEDED and exit_code != 0:
        phase, error = Phase.FAILED, ErrorType.EXIT_CODE
    if phase == Phase.FAILED and error is None:
        error = ErrorType.EXIT_CODE
    if phase == Phase.CANCELLED:
        error = ErrorType.CANCELLED
    _finish(b, when, phase, error if phase != Phase.SUCCEEDED else None, result.message or "")


def _finish(b: _Builder, when: dt.datetime, phase: Phase, error: ErrorType | None, message: str) -> None:
    s = b.new
    s.phase = phase
    s.error_type = error
    s.message = redact(message) or None
    s.completion_time = s.completion_time or when
    if s.pr_url:
        b.cond(ConditionType.PR_OPENED, True, "PullRequestOpened", s.pr_url)
    reason = phase.value if error is None else "".join(w.capitalize() for w in error.value.split("_"))
    b.cond(ConditionType.COMPLETE, phase == Phase.SUCCEEDED, reason, message)


def _terminal_event(status: TaskStatus) -> Transition:
    if status.phase == Phase.SUCCEEDED:
        text = f"succeeded: {status.pr_url}" if status.pr_url else "succeeded"
        return Transition(False, "Succeeded", text)
    return Transition(
        status.phase != Phase.CANCELLED,
        status.phase.value,
        f"{status.error_type or 'failed'}: {status.message or ''}".rstrip(": "),
    )


def status_patch(old: Mapping[str, Any], new: TaskStatus) -> dict[str, Any] | None:
    """A JSON merge patch turning ``old`` into ``new`` (removed keys become null), or None if equal."""
    target = new.dump()
    if target == dict(old):
        return None
    patch: dict[str, Any] = dict(target)
    for key in old:
        if key not in target:
            patch[key] = None
    return patch


# --- the queue ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slot:
    """What a running (or starting) task occupies."""

    key: tuple[str, str]
    lane: tuple[str, str] | None  # (repo, branch) when known: one running task per lane


def lane_of(task: TaskView, spec: TaskSpec | None) -> tuple[str, str] | None:
    if spec is None or spec.repo is None:
        return None  # the repository is picked at run time, and the branch is the task's own
    return (spec.repo.lower(), spec.branch or branch_for(task.name))


def queue_order(task: TaskView) -> tuple[int, str, str, str]:
    """Higher priority first, then older first; names break ties so the order is total."""
    priority = task.spec.get("priority", 0)
    return (-int(priority) if isinstance(priority, int) else 0, task.created, task.namespace, task.name)


def select_admissions(
    candidates: Iterable[tuple[TaskView, TaskSpec]], running: Iterable[Slot], limit: int
) -> list[TaskView]:
    """Which queued tasks start now: in queue order, while slots are free, skipping busy lanes.

    A task whose lane is busy does not block the ones behind it (it keeps its place for the next round).
    """
    slots = list(running)
    free = limit - len(slots)
    busy = {s.lane for s in slots if s.lane is not None}
    chosen: list[TaskView] = []
    if free <= 0:
        return chosen
    for task, spec in sorted(candidates, key=lambda c: queue_order(c[0])):
        if free <= 0:
            break
        lane = lane_of(task, spec)
        if lane is not None and lane in busy:
            continue
        chosen.append(task)
        free -= 1
        if lane is not None:
            busy.add(lane)
    return chosen


__all__ = [
    "Action",
    "Decision",
    "Slot",
    "Transition",
    "decide",
    "lane_of",
    "parse_result",
    "parse_spec",
    "queue_order",
    "select_admissions",
    "status_patch",
]
