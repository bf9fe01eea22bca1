"""The JSON the REST API answers with: the original runner's field names, plus ours beside them.

One serializer for one task and for the list (``ViewCache``): nested objects (``usage``, ``changes``) are
camelCase everywhere, as the OpenAPI schema says.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ccr.core.lifecycle import START_PROBLEMS
from ccr.core.model import AuthTarget, Changes, ErrorType, Phase, Usage
from ccr.core.store import TaskRecord

# The original runner's status words (and the phase names) a list can be filtered by.
_STATUS_WORDS: dict[str, frozenset[Phase]] = {
    **{phase.api_status: frozenset(p for p in Phase if p.api_status == phase.api_status) for phase in Phase},
    **{phase.value.lower(): frozenset({phase}) for phase in Phase},
}


def parse_statuses(value: str | None) -> frozenset[Phase]:
    """``"failed,cancelled"`` -> those phases; ValueError names what is unknown."""
    if not value:
        return frozenset()
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    unknown = [w for w in words if w not in _STATUS_WORDS]
    if unknown:
        raise ValueError(f"unknown status {unknown[0][:40]!r}; use any of {', '.join(sorted(_STATUS_WORDS))}")
    return frozenset().union(*(_STATUS_WORDS[w] for w in words))


class TaskView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # The original runner's fields, names unchanged.
    id: str
    status: str  # queued | running | completed | failed | cancelled
    prompt: str
    started: str | None
    finished: str | None
    pr_url: str | None
    error: str | None  # why it failed, or why it cannot start
    errorType: ErrorType | None
    authTarget: AuthTarget | None  # auth_expired: github or claude
    startedAt: str | None  # the names the original's integrations read (clawdbot SKILL.md)
    completedAt: str | None
    # Ours.
    phase: Phase
    reason: str | None  # one CamelCase word: why it is in its phase (WaitingForTask, ImagePullBackOff, ...)
    message: str | None  # the sentence behind the reason
    created: str
    repo: str | None
    branch: str | None
    base_branch: str | None
    model: str | None
    priority: int
    cancel_requested: bool
    session_id: str | None
    reset_time: str | None
    usage: Usage | None
    changes: Changes | None
    follow_up_of: str | None

    @classmethod
    def of(cls, task: TaskRecord) -> TaskView:
        s = task.status
        problem = s.phase in (Phase.FAILED, Phase.CANCELLED) or (
            s.phase is Phase.PENDING and s.reason in START_PROBLEMS
        )
        return cls(
            id=task.id,
            status=s.phase.api_status,
            prompt=task.spec.prompt,
            started=_iso(s.start_time),
            finished=_iso(s.completion_time),
            pr_url=s.pr_url,
            error=s.message if problem else None,
            errorType=s.error_type,
            authTarget=s.auth_target,
            startedAt=_iso(s.start_time),
            completedAt=_iso(s.completion_time),
            phase=s.phase,
            reason=s.reason,
            message=s.message,
            created=task.created.isoformat(),
            repo=s.repo or task.spec.repo,
            branch=s.branch,
            base_branch=task.spec.base_branch,
            model=task.spec.model,
            priority=task.spec.priority,
            cancel_requested=task.spec.cancel,
            session_id=s.session_id,
            reset_time=_iso(s.reset_time),
            usage=s.usage,
            changes=s.changes,
            follow_up_of=task.spec.follow_up_of,
        )

    def json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class ViewCache:
    """Serialized TaskView JSON per task, reused while the task's revision stays the same.

    ``GET /tasks`` with thousands of tasks then costs a join, not thousands of model dumps.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, bytes]] = {}

    def one(self, task: TaskRecord) -> bytes:
        hit = self._cache.get(task.id)
        if hit is not None and task.revision and hit[0] == task.revision:
            return hit[1]
        data = TaskView.of(task).json_bytes()
        self._cache[task.id] = (task.revision, data)
        return data

    def many(self, tasks: list[TaskRecord]) -> bytes:
        body = b"[" + b",".join(self.one(task) for task in tasks) + b"]"
        if len(self._cache) > 2 * len(tasks) + 100:  # forget tasks that are gone
            keep = {task.id for task in tasks}
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        return body
