"""The task-store interface: what the API and dashboard need, whatever runs the tasks.

Two implementations stand behind it: ``ccr.local.store`` (SQLite + local executor, ``ccr serve``'s
default) and ``ccr.kube.store`` (ClaudeTask objects watched from the cluster, pod logs, an archive).
The API never starts work itself: it creates tasks, asks to cancel them and reads them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from pydantic import BaseModel

from ccr.core.model import Phase, TaskSpec, TaskStatus

LIST_CAP = 10_000  # GET /tasks without paging parameters answers at most this many (the original's shape)
PAGE_DEFAULT = 50  # a page when the client pages (limit or before given) but names no limit


class TaskRecord(BaseModel):
    id: str
    spec: TaskSpec
    status: TaskStatus
    created: dt.datetime  # sub-second where the backend knows it: the queue's order among equal priorities
    generation: int = 1
    revision: str = ""  # changes whenever anything in the record changes (resourceVersion in Kubernetes)


class BadQuery(ValueError):
    """A list query that cannot be answered (an unknown cursor)."""


@dataclasses.dataclass(frozen=True)
class TaskQuery:
    """Filters and a cursor for the task list; every field optional."""

    statuses: frozenset[Phase] = frozenset()  # any of these phases
    repo: str | None = None  # owner/name, case-insensitive
    text: str | None = None  # a substring of the prompt, case-insensitive
    before: str | None = None  # the id of the last task of the previous page
    limit: int = LIST_CAP

    def matches(self, task: TaskRecord) -> bool:
        if self.statuses and task.status.phase not in self.statuses:
            return False
        if self.repo and (task.status.repo or task.spec.repo or "").lower() != self.repo.lower():
            return False
        return not self.text or self.text.lower() in task.spec.prompt.lower()


def page(newest_first: Sequence[TaskRecord], query: TaskQuery) -> tuple[list[TaskRecord], bool]:
    """The tasks of one page (newest first) and whether more follow. Raises BadQuery for an unknown cursor."""
    start = 0
    if query.before is not None:
        index = next((i for i, t in enumerate(newest_first) if t.id == query.before), None)
        if index is None:
            raise BadQuery(f"unknown cursor: no task {query.before!r} (it may have been deleted)")
        start = index + 1
    found: list[TaskRecord] = []
    for task in newest_first[start:]:
        if query.matches(task):
            if len(found) == query.limit:
                return found, True
            found.append(task)
    return found, False


class TranscriptLine(BaseModel):
    """One line of a task's output: a JSON event as the job printed it (already redacted)."""

    seq: int  # 1-based, dense: the line's position in the transcript, used as SSE event id
    line: str


class TaskNotFound(LookupError):
    pass


class TaskStore(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord:
        """Store a new task (its spec already checked by ``ccr.core.services``)."""
        ...

    async def get(self, task_id: str) -> TaskRecord:
        """Raises TaskNotFound."""
        ...

    async def list(self) -> builtins.list[TaskRecord]:
        """Every task, newest first (both stores hold them in memory: filtering is ``page``'s)."""
        ...

    async def cancel(self, task_id: str) -> TaskRecord:
        """Ask for cancellation (idempotent; a finished task is returned unchanged). Raises TaskNotFound."""
        ...

    async def counts(self) -> dict[Phase, int]: ...

    async def transcript(self, task_id: str, after: int = 0, limit: int | None = None) -> builtins.list[TranscriptLine]:
        """The lines stored so far with seq > after (the first ``limit`` of them)."""
        ...

    def follow(self, task_id: str, after: int = 0) -> AsyncIterator[TranscriptLine]:
        """Lines with seq > after, then live ones, ending once the task is finished and all are out."""
        ...

    async def wait_changed(self, version: int, timeout: float) -> int:
        """Wait until any task changed after ``version`` (or the timeout); return the current version."""
        ...


class ChangeSignal:
    """A version counter that wakes waiters on every change: cheap live updates without polling storage."""

    def __init__(self) -> None:
        self.version = 0
        self._cond = asyncio.Condition()

    async def bump(self) -> None:
        async with self._cond:
            self.version += 1
            self._cond.notify_all()

    async def wait(self, version: int, timeout: float) -> int:
        async with self._cond:
            if self.version == version:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait_for(lambda: self.version != version), timeout)
            return self.version
