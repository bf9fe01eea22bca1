"""The JSON the REST API answers with: the original runner's field names, plus ours beside them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ccr.core.model import ErrorType, Phase, Usage
from ccr.core.store import TaskRecord


class TaskView(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # The original runner's fields, names unchanged.
    id: str
    status: str  # queued | running | completed | failed | cancelled
    prompt: str
    started: str | None
    finished: str | None
    pr_url: str | None
    error: str | None
    errorType: ErrorType | None
    startedAt: str | None  # the names the original's integrations read (clawdbot SKILL.md)
    completedAt: str | None
    # Ours.
    phase: Phase
    created: str
    repo: str | None
    branch: str | None
    model: str | None
    priority: int
    cancel_requested: bool
    session_id: str | None
    reset_time: str | None
    usage: Usage | None
    follow_up_of: str | None

    @classmethod
    def of(cls, task: TaskRecord) -> TaskView:
        s = task.status
        failed = s.phase in (Phase.FAILED, Phase.CANCELLED)
        return cls(
            id=task.id,
            status=s.phase.api_status,
            prompt=task.spec.prompt,
            started=_iso(s.start_time),
            finished=_iso(s.completion_time),
            pr_url=s.pr_url,
            error=s.message if failed else None,
            errorType=s.error_type,
            startedAt=_iso(s.start_time),
            completedAt=_iso(s.completion_time),
            phase=s.phase,
            created=task.created.isoformat(),
            repo=s.repo or task.spec.repo,
            branch=s.branch,
            model=task.spec.model,
            priority=task.spec.priority,
            cancel_requested=task.spec.cancel,
            session_id=s.session_id,
            reset_time=_iso(s.reset_time),
            usage=s.usage,
            follow_up_of=task.spec.follow_up_of,
        )


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
        data = TaskView.of(task).model_dump_json().encode()
        self._cache[task.id] = (task.revision, data)
        return data

    def many(self, tasks: list[TaskRecord]) -> bytes:
        body = b"[" + b",".join(self.one(task) for task in tasks) + b"]"
        if len(self._cache) > 2 * len(tasks) + 100:  # forget tasks that are gone
            keep = {task.id for task in tasks}
            self._cache = {k: v for k, v in self._cache.items() if k in keep}
        return body
