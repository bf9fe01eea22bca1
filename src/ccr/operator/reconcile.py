"""The operator's decisions, pure: given what a task asks for and what its Job and pods are, what should
its status be, and what must be done? No I/O and no clock (``now`` is passed in), so every case is a unit
test. The statuses themselves are the shared lifecycle's (``ccr.core.lifecycle``, the same transitions the
local executor makes): this module maps the facts of Jobs and pods onto them.

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

from ccr.core import lifecycle
from ccr.core.lifecycle import START_PROBLEMS, Transition
from ccr.core.model import (
    START_TIMEOUT_DEFAULT_SECONDS,
    TIMEOUT_DEFAULT_SECONDS,
    ConditionType,
    ErrorType,
    JobResult,
    Phase,
    TaskSpec,
    TaskStatus,
)
from ccr.operator.views import JobView, PodView, TaskView

# After a cancel, the pods get the pipeline's grace period; past this extra margin we stop waiting.
CANCEL_WAIT_MARGIN_SECONDS = 60
JOB_LOST = "the Job was deleted before the task finished"
# A followUpOf naming no task (yet: the index may lag a moment behind kubectl apply) is refused after this.
FOLLOW_UP_WAIT_SECONDS = 30


class Action(enum.StrEnum):
    ADMIT = "admit"  # a candidate for a slot: the queue decides
    DELETE_JOB = "delete-job"
    VERIFY_JOB_GONE = "verify-job-gone"  # the index has no Job but status names one: GET before concluding
    FETCH_LOG = "fetch-log"  # finished without a termination message: read the last log line


@dataclasses.dataclass(frozen=True)
class Limits:
    """The operator's settings that ``decide`` applies (``OperatorSettings`` holds the configured ones)."""

    cancel_grace_seconds: int = 20
    start_timeout_seconds: int = START_TIMEOUT_DEFAULT_SECONDS
    default_timeout_seconds: int = TIMEOUT_DEFAULT_SECONDS


@dataclasses.dataclass(frozen=True)
class Facts:
    """What ``decide`` knows besides the task, its Job and pods."""

    earlier: TaskView | None = None  # the task named by spec.followUpOf (None: none, or not in the index)
    waiting_for: str | None = None  # the queue found this task's branch held by that running task
    limits: Limits = Limits()
    job_gone: bool = False  # the Job was looked up directly and does not exist (not just missing from the cache)
    log_text: str | None = None  # the tail of the pod's log, read after FETCH_LOG ("" if unreadable)


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


def decide(
    task: TaskView,
    job: JobView | None,
    pods: Sequence[PodView],
    now: dt.datetime,
    facts: Facts = Facts(),
) -> Decision:
    """The status the task should have and the actions to take, from the facts only."""
    old = current_status(task)
    actions: set[Action] = set()
    d = Decision(_decide(task, old, job, pods, now, facts, actions), actions)
    if Action.FETCH_LOG in actions:
        pod = latest_pod(p for p in pods if p.task_uid in ("", task.uid))
        d.log_pod = pod.name if pod else None
    event = lifecycle.transition(old, d.status)
    if event is not None:
        d.events.append(event)
    return d


def _decide(
    task: TaskView,
    old: TaskStatus,
    job: JobView | None,
    pods: Sequence[PodView],
    now: dt.datetime,
    facts: Facts,
    actions: set[Action],
) -> TaskStatus:
    gen = task.generation
    own_job = job if job is not None and job.task_uid in ("", task.uid) else None
    own_pods = [p for p in pods if p.task_uid in ("", task.uid)]

    if old.phase.terminal:
        # Terminal is sticky. Only make sure nothing of ours still runs (e.g. Failed/invalid after a race).
        if own_job is not None and own_job.finished is None and not own_job.deleting:
            actions.add(Action.DELETE_JOB)
        return old

    spec, invalid = parse_spec(task.spec)
    if spec is None:
        if own_job is not None and not own_job.deleting:
            actions.add(Action.DELETE_JOB)
        return lifecycle.reject(old, invalid or "invalid spec", generation=gen, now=now)

    status = old
    if old.phase is Phase.PENDING and lifecycle.condition(old, ConditionType.ACCEPTED) is None:
        accepted = _accept(task, spec, old, facts.earlier, now)
        if accepted is None:  # the task it follows is not (yet) known or accepted: look again later
            if spec.cancel and own_job is None:
                return lifecycle.cancelled(old, "cancelled before it started", generation=gen, now=now)
            return old
        if accepted.phase.terminal:
            return accepted
        status = accepted
    elif status.branch is None and spec.follow_up_of is None:
        status = status.model_copy(update={"branch": lifecycle.thread_branch(task.name)})  # a status from 0.1

    if spec.cancel and (own_job is None or own_job.finished is None):
        return _decide_cancel(status, own_job, own_pods, now, facts.limits.cancel_grace_seconds, gen, actions)

    if own_job is None:
        if job is not None:
            return status  # a Job of a previous task with the same name is still being collected: wait
        if status.job_name and status.phase in (Phase.RUNNING, Phase.PENDING):
            if not facts.job_gone:
                actions.add(Action.VERIFY_JOB_GONE)
                return status
            pod = latest_pod(own_pods)
            result = parse_result(pod.terminated.message) if pod and pod.terminated else None
            if result is not None:
                code = pod.terminated.exit_code if pod and pod.terminated else None
                return lifecycle.finished(status, result, exit_code=code, generation=gen, now=now)
            return lifecycle.failed(status, ErrorType.EXIT_CODE, JOB_LOST, generation=gen, now=now)
        holder = facts.waiting_for
        reason = lifecycle.Reason.WAITING_FOR_TASK if holder else lifecycle.Reason.WAITING_FOR_SLOT
        message = f"waiting for task {holder} (same branch) to finish" if holder else None
        if status.phase is not Phase.QUEUED or status.reason != reason or status.message != message:
            status = lifecycle.queue(status, reason, message, generation=gen, now=now)
        actions.add(Action.ADMIT)
        return status

    if own_job.deleting:
        return status  # going away (by someone else); the next look decides
    status = status.model_copy(update={"job_name": own_job.name})
    pod = latest_pod(own_pods)

    if own_job.finished is None:
        if pod is not None and pod.phase in ("Running", "Succeeded", "Failed"):
            start = _ts(pod.start_time) or now
            return lifecycle.started(status, pod_name=pod.name, start_time=start, generation=gen, now=now)
        problem = _start_problem(pod)
        deadline = spec.start_timeout_seconds or facts.limits.start_timeout_seconds
        since = _ts(own_job.created) or now
        if (now - since).total_seconds() > deadline:
            actions.add(Action.DELETE_JOB)
            why = f": {problem[0]}: {problem[1]}".rstrip(": ") if problem else ""
            text = f"the job did not start within {deadline}s{why}"
            return lifecycle.failed(status, ErrorType.START_FAILED, text, generation=gen, now=now)
        if pod is not None:
            status = status.model_copy(update={"pod_name": pod.name})
        if problem is not None:
            return lifecycle.start_blocked(status, problem[0], problem[1], generation=gen, now=now)
        return lifecycle.launching(status, job_name=own_job.name, generation=gen, now=now)

    # The Job finished: the result comes from the termination message, else the log's last line.
    result = None
    exit_code = 0 if own_job.finished == "Complete" else 1
    if pod is not None:
        status = status.model_copy(update={"pod_name": pod.name})
        if pod.terminated is not None:
            exit_code = pod.terminated.exit_code
            result = parse_result(pod.terminated.message)
        if result is None and facts.log_text is None and pod.terminated is not None:
            actions.add(Action.FETCH_LOG)
            return status
        if result is None:
            result = parse_result(facts.log_text)
    began = status.start_time or _ts(pod.start_time if pod else None) or _ts(own_job.start_time)
    status = status.model_copy(update={"start_time": began})
    finished_at = _ts(own_job.completion_time) or (_ts(pod.terminated.finished_at) if pod and pod.terminated else None)
    when = finished_at or now
    if own_job.finished == "Failed" and own_job.reason == "DeadlineExceeded":
        timeout = spec.timeout_seconds or facts.limits.default_timeout_seconds
        text = f"the task ran past its deadline of {timeout}s"
        return lifecycle.failed(status, ErrorType.TIMEOUT, text, result=result, generation=gen, now=when)
    if result is None and own_job.finished == "Failed" and (pod is None or pod.disrupted or pod.reason == "Evicted"):
        return lifecycle.failed(status, ErrorType.EXIT_CODE, _failure_text(own_job, pod), generation=gen, now=when)
    return lifecycle.finished(status, result, exit_code=exit_code, generation=gen, now=when)


def _accept(
    task: TaskView, spec: TaskSpec, old: TaskStatus, earlier: TaskView | None, now: dt.datetime
) -> TaskStatus | None:
    """Queued on its branch; a follow-up on the branch of the task it follows (None: not decidable yet)."""
    if spec.follow_up_of is None:
        branch = lifecycle.thread_branch(task.name)
        return lifecycle.accept(old, spec, branch=branch, repo=spec.repo, generation=task.generation, now=now)
    if earlier is None:
        age = (now - (_ts(task.created) or now)).total_seconds()
        if age < FOLLOW_UP_WAIT_SECONDS:
            return None
        problem = f"followUpOf: there is no task {spec.follow_up_of!r} in namespace {task.namespace}"
        return lifecycle.reject(old, problem, generation=task.generation, now=now)
    first = current_status(earlier)
    if first.branch is None and earlier.spec.get("followUpOf"):
        return None  # it follows yet another task and is not accepted itself yet
    branch = lifecycle.thread_branch(task.name, earlier.name, first.branch)
    repo = spec.repo or first.repo or earlier.spec.get("repo")
    return lifecycle.accept(old, spec, branch=branch, repo=repo, generation=task.generation, now=now)


def _start_problem(pod: PodView | None) -> tuple[str, str] | None:
    """(reason, message) when the pod will not start by itself: an image pull, a config error, no node."""
    if pod is None:
        return None
    if pod.waiting_reason in START_PROBLEMS:
        return pod.waiting_reason or "", pod.waiting_message or ""
    if pod.unschedulable is not None:
        return "Unschedulable", pod.unschedulable
    return None


def _decide_cancel(
    status: TaskStatus,
    job: JobView | None,
    pods: Sequence[PodView],
    now: dt.datetime,
    grace: int,
    gen: int,
    actions: set[Action],
) -> TaskStatus:
    alive = [p for p in pods if p.terminated is None and p.phase not in ("Succeeded", "Failed")]
    if job is not None and not job.deleting:
        actions.add(Action.DELETE_JOB)
    if job is None and (not alive or status.phase in (Phase.PENDING, Phase.QUEUED)):
        pod = latest_pod(pods)
        result = parse_result(pod.terminated.message) if pod and pod.terminated else None
        return lifecycle.cancelled(status, "cancelled on request", result=result, generation=gen, now=now)
    since = lifecycle.condition(status, ConditionType.COMPLETE)
    if since is not None and since.reason == lifecycle.Reason.CANCELLING:
        if (now - since.last_transition_time).total_seconds() > grace + CANCEL_WAIT_MARGIN_SECONDS:
            text = "cancelled on request (its pods were slow to stop)"
            return lifecycle.cancelled(status, text, generation=gen, now=now)
        return status
    return lifecycle.cancelling(status, generation=gen, now=now)


def _failure_text(job: JobView, pod: PodView | None) -> str:
    if pod is not None:
        return f"the pod was evicted or disrupted: {pod.message or pod.reason or 'no reason given'}"
    return f"the Job failed: {job.reason or 'unknown reason'}: {job.message or ''}".rstrip(": ")


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


__all__ = [
    "Action",
    "Decision",
    "Facts",
    "Limits",
    "Transition",
    "decide",
    "parse_result",
    "parse_spec",
    "status_patch",
]
