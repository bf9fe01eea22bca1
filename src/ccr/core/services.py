"""The task services: submit, follow up, retry, cancel. One place for what they mean.

Every way in calls these: the REST API, the dashboard, the GitHub triggers (and, through the API, the CLI).
They take a :class:`~ccr.core.store.TaskStore` and raise domain errors that each adapter translates
(``TaskNotFound`` -> 404, :class:`Conflict` -> 409, :class:`Invalid` -> 422). In cluster mode a follow-up
can also arrive as a ClaudeTask with ``followUpOf`` written by ``kubectl apply``: the operator resolves it
with the same lifecycle rules (``ccr.core.lifecycle.thread_branch``).
"""

from __future__ import annotations

import enum
import secrets

from ccr.core.model import PROMPT_MAX_BYTES, ErrorType, TaskSpec
from ccr.core.store import TaskNotFound, TaskRecord, TaskStore

__all__ = ["Conflict", "Invalid", "RetryMode", "TaskNotFound", "cancel", "follow_up", "retry", "submit"]

# What a retry does by default after each failure class: continue the branch and PR where the work stopped
# (it was pushed), or start over.
CONTINUE_AFTER = frozenset({ErrorType.CAPACITY_REACHED, ErrorType.TIMEOUT, ErrorType.CANCELLED})
CONTINUE_PREFIX = (
    "Continue this task where the previous run stopped; its work so far is on this branch and in the pull request.\n\n"
)


class Conflict(Exception):
    """The task is not in a state that allows this (e.g. a retry of a running task)."""


class Invalid(ValueError):
    """The request names something that cannot be (e.g. a follow-up of a task that does not exist)."""


class RetryMode(enum.StrEnum):
    FRESH = "fresh"  # a new task with the same spec: a new branch and pull request (unless it follows one)
    CONTINUE = "continue"  # a follow-up with the same prompt: the same branch and pull request


def new_task_id() -> str:
    return secrets.token_hex(6)


async def submit(store: TaskStore, spec: TaskSpec) -> TaskRecord:
    """A new task. A follow-up (``follow_up_of``) continues the earlier task's repository, branch and PR,
    one run at a time: if the earlier one still runs, this one waits for it."""
    spec = spec.model_copy(update={"cancel": False})
    if spec.follow_up_of is not None:
        try:
            earlier = await store.get(spec.follow_up_of)
        except TaskNotFound:
            raise Invalid(f"followUpOf: there is no task {spec.follow_up_of!r}") from None
        spec = spec.model_copy(update={"repo": spec.repo or earlier.status.repo or earlier.spec.repo})
    return await store.create(new_task_id(), spec)


async def follow_up(store: TaskStore, task_id: str, prompt: str) -> TaskRecord:
    """A new prompt on an earlier task's branch and pull request, with its settings (model, limits)."""
    earlier = await store.get(task_id)
    spec = TaskSpec.model_validate(
        {
            **earlier.spec.model_dump(exclude={"prompt", "cancel", "follow_up_of"}),
            "prompt": prompt,
            "follow_up_of": task_id,
        }
    )
    return await submit(store, spec)


def default_retry_mode_of(error_type: ErrorType | None) -> RetryMode:
    """Continue where a run was stopped from outside (limit, deadline, cancel); start over otherwise."""
    return RetryMode.CONTINUE if error_type in CONTINUE_AFTER else RetryMode.FRESH


async def retry(store: TaskStore, task_id: str, mode: RetryMode | None = None) -> TaskRecord:
    """Run a finished task again: continue its branch and PR, or start fresh (see :class:`RetryMode`)."""
    earlier = await store.get(task_id)
    if not earlier.status.phase.terminal:
        raise Conflict("the task has not finished yet; cancel it first")
    if (mode or default_retry_mode_of(earlier.status.error_type)) is RetryMode.CONTINUE:
        prompt = CONTINUE_PREFIX + earlier.spec.prompt
        if len(prompt.encode()) > PROMPT_MAX_BYTES:
            prompt = earlier.spec.prompt
        return await follow_up(store, task_id, prompt)
    return await submit(store, earlier.spec)


async def cancel(store: TaskStore, task_id: str) -> TaskRecord:
    """Cancel a queued or running task (its work so far is pushed); a finished one is returned as it is."""
    return await store.cancel(task_id)
