"""The task-store interface: what the API and dashboard need, whatever runs the tasks.

Two implementations stand behind it: ``ccr.local.store`` (SQLite + local executor, ``ccr serve``'s
default) and ``ccr.kube.store`` (ClaudeTask objects watched from the cluster, pod logs, an archive).
The API never starts work itself: it creates tasks, asks to cancel them and reads them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Protocol

from pydantic import BaseModel

from ccr.core.model import Phase, TaskSpec, TaskStatus


class TaskRecord(BaseModel):
    id: str
    spec: TaskSpec
    status: TaskStatus
    created: dt.datetime
    generation: int = 1
    revision: str = ""  # changes whenever anything in the record changes (resourceVersion in Kubernetes)


class TranscriptLine(BaseModel):
    """One line of a task's output: a JSON event as the job printed it (already redacted)."""

    seq: int  # 1-based, dense: the line's position in the transcript, used as SSE event id
    line: str


class TaskNotFound(LookupError):
    pass


class TaskStore(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord: ...

    async def get(self, task_id: str) -> TaskRecord:
        """Raises TaskNotFound."""
        ...

    async def list(self, limit: int | None = None) -> builtins.list[TaskRecord]:
        """Newest first."""
        ...

    async def cancel(self, task_id: str) -> TaskRecord:
        """Ask for cancellation (idempotent; a finished task is returned unchanged)."""
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
