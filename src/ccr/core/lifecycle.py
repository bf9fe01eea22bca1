"""The task lifecycle, pure and shared: every status a task can have, and how it gets there.

Both backends call these functions and store what they return: the local store and executor (``ccr serve``)
and the operator (``ccr.operator.reconcile``). A backend decides *when* something happened (a process
started, a pod ran, a result arrived, a deadline passed); this module decides what the status *becomes*:
phase, ``reason`` (one CamelCase word, one spelling per meaning), ``message``, the conditions and the
outcome rules. No I/O and no clock: the time comes in as ``now``.

Outcome rules (README, "How a task ends"), the same in both backends:

- ``Succeeded`` only when the run reported success AND its work is on the remote branch (the pipeline
  reports ``push_failed`` when the safety-net push failed) AND the pull request exists;
- a failed run keeps the errorType it reported (``exit_code`` when it names none); a cancelled one is
  ``Cancelled``; a "success" with a non-zero exit status is ``exit_code``;
- a job that ends without a result is ``Failed`` (``exit_code``), whatever its exit status; what it reported
  while it ran (``progress``: the repository, branch and PR) is kept.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
from collections.abc import Iterable, Sequence

from ccr.core.model import (
    MAX_RESUMES_DEFAULT,
    AuthTarget,
    Condition,
    ConditionType,
    ErrorType,
    JobInput,
    JobResult,
    Outcome,
    Phase,
    TaskSpec,
    TaskStatus,
    branch_for,
)
from ccr.core.redact import Redactor

MESSAGE_MAX = 1024
_REDACTOR = Redactor()  # token shapes: the backends redact their own secret values before this


class Reason(enum.StrEnum):
    """``status.reason`` and the conditions' reasons that are not an errorType's (``ErrorType.reason``)."""

    VALIDATED = "Validated"
    INVALID_SPEC = "InvalidSpec"
    WAITING_FOR_SLOT = "WaitingForSlot"  # every slot (CCR_MAX_CONCURRENT) is taken
    WAITING_FOR_TASK = "WaitingForTask"  # another run of the same branch is running: one at a time
    STARTING = "Starting"  # the process or Job exists; the pipeline is not running yet
    RUNNING = "Running"
    CANCELLING = "Cancelling"
    SUCCEEDED = "Succeeded"
    PR_OPENED = "PullRequestOpened"
    USAGE_LIMIT = "UsageLimit"  # Paused until the subscription's window resets; Queued: held back until then
    OVERLOADED = "Overloaded"  # Paused for a short backoff after an overloaded or failing API
    RESUMING = "Resuming"  # Queued again after a pause: first in line


# Waiting reasons of a container that mean "this will not start by itself" (the rest, such as
# ContainerCreating, are the normal way to Running).
START_PROBLEMS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
        "Unschedulable",
    }
)


@dataclasses.dataclass(frozen=True)
class Transition:
    """What changed, for a Kubernetes Event or a log line: Normal or Warning."""

    warning: bool
    reason: str
    message: str


def clip(text: str | None) -> str | None:
    """A message as it may be stored: token shapes redacted, at most MESSAGE_MAX characters."""
    if not text:
        return None
    out = _REDACTOR.redact(text)
    return out if len(out) <= MESSAGE_MAX else out[: MESSAGE_MAX - 1] + "…"


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[Condition]:
    """``conditions`` with ``type_`` set; lastTransitionTime moves only when the status word changes."""
    word = "Unknown" if status is None else ("True" if status else "False")
    out: list[Condition] = []
    since = now
    for c in conditions:
        if c.type == type_:
            since = c.last_transition_time if c.status == word else now
        else:
            out.append(c)
    out.append(
        Condition(
            type=type_,
            status=word,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=generation,
        )
    )
    return out


def condition(status: TaskStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


class _Step:
    """One transition being built: the new status, with conditions at the task's generation."""

    def __init__(self, status: TaskStatus, generation: int | None, now: dt.datetime) -> None:
        self.status = status.model_copy(deep=True)
        self.status.observed_generation = generation
        self.generation = generation
        self.now = now

    def cond(self, type_: str, ok: bool | None, reason: str, message: str | None = "") -> None:
        self.status.conditions = set_condition(
            self.status.conditions, type_, ok, reason, clip(message) or "", self.generation, self.now
        )

    def phase(self, phase: Phase, reason: str, message: str | None = None) -> TaskStatus:
        self.status.phase = phase
        self.status.reason = reason
        self.status.message = clip(message)
        return self.status


# --- before the run --------------------------------------------------------------------------------------


def thread_branch(task_id: str, earlier_id: str | None = None, earlier_branch: str | None = None) -> str:
    """A task works on ``claude/<its id>``; a follow-up on the branch of the task it follows."""
    if earlier_id is None:
        return branch_for(task_id)
    return earlier_branch or branch_for(earlier_id)


def accept(
    status: TaskStatus,
    spec: TaskSpec,
    *,
    branch: str,
    repo: str | None,
    generation: int | None,
    now: dt.datetime,
) -> TaskStatus:
    """A valid spec: the task is Queued on its branch (its repository, when known already)."""
    step = _Step(status, generation, now)
    step.status.branch = branch
    step.status.repo = repo or spec.repo
    step.cond(ConditionType.ACCEPTED, True, Reason.VALIDATED)
    return queue(step.status, Reason.WAITING_FOR_SLOT, None, generation=generation, now=now)


def reject(status: TaskStatus, problem: str, *, generation: int | None, now: dt.datetime) -> TaskStatus:
    """An invalid spec (or a follow-up of a task that does not exist): Failed/invalid, nothing runs."""
    step = _Step(status, generation, now)
    step.cond(ConditionType.ACCEPTED, False, Reason.INVALID_SPEC, problem)
    return _terminal(step, Phase.FAILED, ErrorType.INVALID, problem)


def queue(
    status: TaskStatus, reason: Reason, message: str | None, *, generation: int | None, now: dt.datetime
) -> TaskStatus:
    """Waiting to start: for a slot, or for the run of the same branch that holds it."""
    step = _Step(status, generation, now)
    text = message or ("waiting for a free slot" if reason is Reason.WAITING_FOR_SLOT else "waiting")
    step.cond(ConditionType.STARTED, False, reason, text)
    return step.phase(Phase.QUEUED, reason, text if reason is not Reason.WAITING_FOR_SLOT else None)


def job_input(
    task_id: str, spec: TaskSpec, *, branch: str | None, earlier_repo: str | None, default_timeout: int
) -> JobInput:
    """The task as the pipeline gets it, resolved when it starts: its branch, the repository of the task it
    follows (known once that one ran), the runner's default deadline."""
    update = {"repo": spec.repo or earlier_repo, "timeout_seconds": spec.timeout_seconds or default_timeout}
    return JobInput(id=task_id, spec=spec.model_copy(update=update), branch=branch)


# --- the run -------------------------------------------------------------------------------------------


def launching(status: TaskStatus, *, job_name: str | None, generation: int | None, now: dt.datetime) -> TaskStatus:
    """The process or Job exists and holds a slot; the pipeline has not started yet."""
    step = _Step(status, generation, now)
    step.status.job_name = job_name or step.status.job_name
    step.cond(ConditionType.STARTED, False, Reason.STARTING, f"Job {job_name}" if job_name else "starting")
    return step.phase(Phase.RUNNING, Reason.STARTING)


def start_blocked(
    status: TaskStatus, reason: str, message: str | None, *, generation: int | None, now: dt.datetime
) -> TaskStatus:
    """The job cannot start by itself (an image that cannot be pulled, a pod that cannot be scheduled):
    Pending, the reason and message shown, until it starts after all or its start deadline passes."""
    step = _Step(status, generation, now)
    text = f"{reason}: {message}" if message else reason
    step.cond(ConditionType.STARTED, False, reason, text)
    return step.phase(Phase.PENDING, reason, text)


def started(
    status: TaskStatus,
    *,
    pod_name: str | None,
    start_time: dt.datetime | None,
    generation: int | None,
    now: dt.datetime,
) -> TaskStatus:
    step = _Step(status, generation, now)
    step.status.pod_name = pod_name or step.status.pod_name
    step.status.start_time = step.status.start_time or start_time or now
    step.cond(ConditionType.STARTED, True, Reason.RUNNING, f"pod {pod_name}" if pod_name else "")
    return step.phase(Phase.RUNNING, Reason.RUNNING)


def pr_opened(
    status: TaskStatus,
    *,
    url: str,
    repo: str | None,
    branch: str | None,
    generation: int | None,
    now: dt.datetime,
) -> TaskStatus:
    """The draft PR exists (reported by the pipeline while it runs): its link shows at once."""
    step = _Step(status, generation, now)
    step.status.pr_url = url
    step.status.repo = repo or step.status.repo
    step.status.branch = branch or step.status.branch
    step.cond(ConditionType.PR_OPENED, True, Reason.PR_OPENED, url)
    return step.status


def cancelling(status: TaskStatus, *, generation: int | None, now: dt.datetime) -> TaskStatus:
    """Cancel asked for while the job runs: it gets its grace period to push what it has."""
    step = _Step(status, generation, now)
    step.cond(ConditionType.COMPLETE, None, Reason.CANCELLING, "stopping the job")
    return step.status


# --- the end ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PausePolicy:
    """When a run stopped by the subscription's limit (or an overload) resumes on its own."""

    max_resumes: int = MAX_RESUMES_DEFAULT
    jitter_seconds: int = 30  # spread the resumes of many paused tasks over this after the reset
    backoff_seconds: int = 60  # after an overload: the first pause; it doubles with each one
    backoff_max_seconds: int = 900


def resume_time(
    task_id: str, status: TaskStatus, result: JobResult, policy: PausePolicy, now: dt.datetime
) -> tuple[dt.datetime, Reason] | None:
    """When a ``capacity_reached`` run resumes: at the limit's reset (plus a jitter), or after a capped
    exponential backoff when the API was overloaded (no reset). None: its resumes are used up, it fails.
    The jitter is a hash of the task and its attempt, so recomputing gives the same time (level-based)."""
    resumes = status.resumes or 0
    if result.error_type is not ErrorType.CAPACITY_REACHED or resumes >= policy.max_resumes:
        return None
    digest = hashlib.sha256(f"{task_id}:{resumes}".encode()).digest()
    jitter = dt.timedelta(seconds=int.from_bytes(digest[:4], "big") % (policy.jitter_seconds + 1))
    if result.reset_time is not None:
        return max(result.reset_time, now) + jitter, Reason.USAGE_LIMIT
    backoff = min(policy.backoff_seconds * 2**resumes, policy.backoff_max_seconds)
    return now + dt.timedelta(seconds=backoff) + jitter, Reason.OVERLOADED


def finished(
    status: TaskStatus,
    result: JobResult | None,
    *,
    exit_code: int | None,
    generation: int | None,
    now: dt.datetime,
    pause: tuple[str, PausePolicy] | None = None,
) -> TaskStatus:
    """The job ended: its result (or its absence) and exit status, through the outcome rules. With
    ``pause`` (the task's id and the runner's policy) a run stopped by the usage limit is Paused instead."""
    if pause is not None and result is not None:
        when = resume_time(pause[0], status, result, pause[1], now)
        if when is not None:
            return paused(
                status,
                result,
                resume_at=when[0],
                reason=when[1],
                max_resumes=pause[1].max_resumes,
                generation=generation,
                now=now,
            )
    step = _Step(status, generation, now)
    if result is not None and not result.status.terminal:
        # What the job reported while it ran (the PR it opened), but no end: it was killed or crashed.
        step.status.repo = result.repo or step.status.repo
        step.status.branch = result.branch or step.status.branch
        step.status.pr_url = result.pr_url or step.status.pr_url
        result = None
    if result is None:
        code = f" with code {exit_code}" if exit_code is not None else ""
        return _terminal(step, Phase.FAILED, ErrorType.EXIT_CODE, f"the job ended{code} without reporting a result")
    _copy_outcome(step.status, result)
    phase, error, message = result.status, result.error_type, result.message
    if phase is Phase.SUCCEEDED and exit_code not in (0, None):
        phase, error, message = Phase.FAILED, ErrorType.EXIT_CODE, f"the job reported success but exited {exit_code}"
    elif phase is Phase.SUCCEEDED and not step.status.pr_url:
        phase, error, message = Phase.FAILED, ErrorType.EXIT_CODE, "the job reported success without a pull request"
    elif phase is Phase.CANCELLED:
        error = ErrorType.CANCELLED
    elif phase is not Phase.SUCCEEDED:
        phase, error = Phase.FAILED, error or ErrorType.EXIT_CODE
    return _terminal(step, phase, None if phase is Phase.SUCCEEDED else error, message)


def paused(
    status: TaskStatus,
    result: JobResult,
    *,
    resume_at: dt.datetime,
    reason: Reason,
    max_resumes: int,
    generation: int | None,
    now: dt.datetime,
) -> TaskStatus:
    """Stopped by the limit, its work pushed: it waits (not an end) and resumes at ``resume_at``."""
    step = _Step(status, generation, now)
    _copy_outcome(step.status, result)
    step.status.error_type = None
    step.status.auth_target = None
    step.status.resume_at = resume_at
    attempt = (status.resumes or 0) + 1
    what = "the subscription's usage limit was reached" if reason is Reason.USAGE_LIMIT else "the API was overloaded"
    text = f"{what}; resumes at {resume_at.isoformat()} (resume {attempt} of {max_resumes})"
    step.cond(ConditionType.COMPLETE, None, reason, text)
    return step.phase(Phase.PAUSED, reason, text)


def resume(status: TaskStatus, *, generation: int | None, now: dt.datetime) -> TaskStatus:
    """A paused task whose time has come: queued again, first in line, for its next run."""
    step = _Step(status, generation, now)
    step.status.resumes = (status.resumes or 0) + 1
    step.status.resume_at = None
    step.status.conditions = [c for c in step.status.conditions if c.type != ConditionType.COMPLETE]
    step.cond(ConditionType.STARTED, False, Reason.RESUMING, "resuming after a pause")
    return step.phase(Phase.QUEUED, Reason.RESUMING, f"resuming (resume {step.status.resumes})")


def due(status: TaskStatus, now: dt.datetime) -> bool:
    """A paused task whose resume time has come."""
    return status.phase is Phase.PAUSED and status.resume_at is not None and status.resume_at <= now


def limit_until(statuses: Iterable[TaskStatus], now: dt.datetime) -> dt.datetime | None:
    """While a task is paused by the usage limit and not due yet, the subscription is known to be used up:
    no new task starts into it (the paused ones resume first, at their time)."""
    times = [
        s.resume_at
        for s in statuses
        if s.phase is Phase.PAUSED and s.reason == Reason.USAGE_LIMIT and s.resume_at is not None and s.resume_at > now
    ]
    return max(times, default=None)


def failed(
    status: TaskStatus,
    error: ErrorType,
    message: str,
    *,
    result: JobResult | None = None,
    generation: int | None,
    now: dt.datetime,
) -> TaskStatus:
    """Failed for a reason the backend saw itself (a deadline, a lost Job, a launch that failed, a server
    restart); what a result reported (PR, usage, changes) is kept."""
    step = _Step(status, generation, now)
    if result is not None:
        _copy_outcome(step.status, result)
    return _terminal(step, Phase.FAILED, error, message)


def cancelled(
    status: TaskStatus, message: str, *, result: JobResult | None = None, generation: int | None, now: dt.datetime
) -> TaskStatus:
    step = _Step(status, generation, now)
    if result is not None:
        _copy_outcome(step.status, result)
    return _terminal(step, Phase.CANCELLED, ErrorType.CANCELLED, message)


def _copy_outcome(status: TaskStatus, result: Outcome) -> None:
    """What the run found out, field by field (Outcome's fields): a missing one keeps the old value."""
    for name in Outcome.model_fields:
        value = getattr(result, name)
        if value is not None:
            setattr(status, name, value)
    status.reset_time = result.reset_time  # only the last run's limit matters
    if result.error_type is not ErrorType.AUTH_EXPIRED:
        status.auth_target = None


def _terminal(step: _Step, phase: Phase, error: ErrorType | None, message: str | None) -> TaskStatus:
    s = step.status
    s.error_type = error
    if error is not ErrorType.AUTH_EXPIRED:
        s.auth_target = None
    elif s.auth_target is None:
        s.auth_target = AuthTarget.CLAUDE
    s.completion_time = s.completion_time or step.now
    if s.pr_url:
        step.cond(ConditionType.PR_OPENED, True, Reason.PR_OPENED, s.pr_url)
    reason = Reason.SUCCEEDED.value if error is None else error.reason
    step.cond(ConditionType.COMPLETE, phase is Phase.SUCCEEDED, reason, message)
    return step.phase(phase, reason, message)


def transition(old: TaskStatus, new: TaskStatus) -> Transition | None:
    """The Event worth posting for a change of phase or reason (None when neither changed)."""
    if old.phase is new.phase and old.reason == new.reason:
        return None
    reason = new.reason or new.phase.value
    if new.phase is Phase.SUCCEEDED:
        return Transition(False, reason, f"succeeded: {new.pr_url}" if new.pr_url else "succeeded")
    if new.phase.terminal:
        text = f"{new.error_type or 'failed'}: {new.message or ''}".rstrip(": ")
        return Transition(new.phase is not Phase.CANCELLED, reason, text)
    warning = new.phase is Phase.PENDING and reason in START_PROBLEMS
    return Transition(warning, reason, new.message or _NORMAL.get(reason, reason))


_NORMAL: dict[str, str] = {
    Reason.WAITING_FOR_SLOT: "waiting for a free slot",
    Reason.STARTING: "the job is starting",
    Reason.RUNNING: "the job is running",
}
