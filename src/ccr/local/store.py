"""The local task store: tasks, statuses and transcripts in SQLite under the data directory."""

from __future__ import annotations

import builtins
import collections
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ccr.core import lifecycle
from ccr.core.db import Database
from ccr.core.events import ccr_line
from ccr.core.model import ErrorType, JobResult, Phase, TaskSpec, TaskStatus, now
from ccr.core.store import ChangeSignal, TaskNotFound, TaskRecord, TranscriptLine

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tasks (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        priority INTEGER NOT NULL,
        phase TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        generation INTEGER NOT NULL DEFAULT 1
    )""",
    """CREATE TABLE IF NOT EXISTS transcript (
        task_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (task_id, seq)
    ) WITHOUT ROWID""",
]

_COLUMNS = "id, created, spec, status, generation"
FOLLOW_PAGE = 2000  # lines read per query while following a transcript


def _spec(text: str) -> TaskSpec:
    data = json.loads(text)
    data.pop("branch", None)  # a user field before 0.2 (follow-ups): the status keeps the branch
    return TaskSpec.model_validate(data)


def _record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        created=dt.datetime.fromisoformat(row["created"]),
        spec=_spec(row["spec"]),
        status=TaskStatus.model_validate_json(row["status"]),
        generation=row["generation"],
    )


class LocalStore:
    """Implements ``ccr.core.store.TaskStore``; the executor drives the status methods below it.

    Every task is also held in memory (reads never touch the disk); every change is written to SQLite
    first, and the memory copy follows only once the write committed.
    """

    def __init__(self, data_dir: Path) -> None:
        self.db = Database(data_dir / "ccr.db", SCHEMA)
        self.changes = ChangeSignal()  # any task changed
        self.lines = ChangeSignal()  # any transcript grew
        self._tasks: dict[str, TaskRecord] = {}  # in creation order

    async def start(self) -> None:
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM tasks ORDER BY n")
        self._tasks = {row["id"]: _record(row).model_copy(update={"revision": "0"}) for row in rows}
        await self.recover()

    async def stop(self) -> None:
        self.db.close()

    async def _save(self, task: TaskRecord, *, new: bool = False) -> TaskRecord:
        task = task.model_copy(update={"revision": str(self.changes.version + 1)})
        if new:
            sql = "INSERT INTO tasks (id, created, priority, phase, spec, status) VALUES (?, ?, ?, ?, ?, ?)"
            params: tuple[object, ...] = (
                task.id,
                task.created.isoformat(),
                task.spec.priority,
                task.status.phase.value,
                _json(task.spec),
                _json(task.status),
            )
        else:
            sql = "UPDATE tasks SET spec = ?, status = ?, phase = ?, generation = ? WHERE id = ?"
            params = (_json(task.spec), _json(task.status), task.status.phase.value, task.generation, task.id)
        await self.db.execute(sql, params)
        self._tasks[task.id] = task
        await self.changes.bump()
        return task

    # --- TaskStore -------------------------------------------------------------------------------
    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord:
        earlier = self._tasks.get(spec.follow_up_of) if spec.follow_up_of else None
        if spec.follow_up_of and earlier is None:
            raise TaskNotFound(spec.follow_up_of)
        branch = lifecycle.thread_branch(
            task_id, earlier.id if earlier else None, earlier.status.branch if earlier else None
        )
        status = lifecycle.accept(TaskStatus(), spec, branch=branch, repo=spec.repo, generation=1, now=now())
        created = dt.datetime.now(dt.UTC)  # to the microsecond: the queue's order among equal priorities
        return await self._save(TaskRecord(id=task_id, spec=spec, status=status, created=created), new=True)

    async def get(self, task_id: str) -> TaskRecord:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    async def list(self) -> builtins.list[TaskRecord]:
        return list(reversed(self._tasks.values()))

    async def cancel(self, task_id: str) -> TaskRecord:
        """Mark the spec cancelled; a queued task ends at once, a running one when its process stops."""
        task = await self.get(task_id)
        if task.status.phase.terminal or task.spec.cancel:
            return task
        generation = task.generation + 1
        if task.status.phase in (Phase.PENDING, Phase.QUEUED):
            status = lifecycle.cancelled(task.status, "cancelled before it started", generation=generation, now=now())
        else:
            status = lifecycle.cancelling(task.status, generation=generation, now=now())
        spec = task.spec.model_copy(update={"cancel": True})
        return await self._save(task.model_copy(update={"spec": spec, "status": status, "generation": generation}))

    async def counts(self) -> dict[Phase, int]:
        found = collections.Counter(task.status.phase for task in self._tasks.values())
        return {phase: found.get(phase, 0) for phase in Phase}

    async def transcript(self, task_id: str, after: int = 0, limit: int | None = None) -> builtins.list[TranscriptLine]:
        rows = await self.db.fetchall(
            "SELECT seq, line FROM transcript WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (task_id, after, -1 if limit is None else limit),
        )
        return [TranscriptLine(seq=row["seq"], line=row["line"]) for row in rows]

    async def follow(self, task_id: str, after: int = 0) -> AsyncIterator[TranscriptLine]:
        while True:
            version = self.lines.version
            task = await self.get(task_id)  # read the phase before the lines: no line is missed at the end
            lines = await self.transcript(task_id, after, limit=FOLLOW_PAGE)
            for line in lines:
                yield line
                after = line.seq
            if len(lines) == FOLLOW_PAGE:
                continue  # more is stored already: the first lines of a long transcript go out at once
            if task.status.phase.terminal:
                return
            if not lines:
                await self.lines.wait(version, timeout=5.0)

    async def wait_changed(self, version: int, timeout: float) -> int:
        return await self.changes.wait(version, timeout)

    # --- used by the local executor: each status change is one lifecycle transition -------------------
    def peek(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def queued(self) -> builtins.list[TaskRecord]:
        return [t for t in self._tasks.values() if t.status.phase is Phase.QUEUED]

    async def set_status(self, task_id: str, status: TaskStatus) -> TaskStatus:
        task = await self.get(task_id)
        if status != task.status:
            await self._save(task.model_copy(update={"status": status}))
        return status

    async def transition(self, task_id: str, step: Callable[..., TaskStatus], *args: Any, **kwargs: Any) -> TaskStatus:
        """Apply ``lifecycle.<step>(status, *args, **kwargs, generation=..., now=...)`` and store the result."""
        task = await self.get(task_id)
        return await self.set_status(task_id, step(task.status, *args, generation=task.generation, now=now(), **kwargs))

    async def append(self, task_id: str, lines: builtins.list[str]) -> int:
        """Append lines to the transcript in one transaction; returns the last seq."""

        def insert(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(seq) FROM transcript WHERE task_id = ?", (task_id,)).fetchone()
            start = (row[0] or 0) + 1
            conn.executemany(
                "INSERT INTO transcript (task_id, seq, line) VALUES (?, ?, ?)",
                [(task_id, start + i, line) for i, line in enumerate(lines)],
            )
            return start + len(lines) - 1

        last = await self.db.transaction(insert, fsync=False)  # many per second; safe from a crash
        await self.lines.bump()
        return last

    async def finish(self, task_id: str, result: JobResult | None, exit_code: int | None) -> TaskStatus:
        return await self.transition(task_id, lifecycle.finished, result, exit_code=exit_code)

    async def recover(self) -> None:
        """At start-up, no task may stay Running: its process died with the previous server."""
        for task in [t for t in self._tasks.values() if t.status.phase in (Phase.RUNNING, Phase.PENDING)]:
            message = "the server stopped while this task was running; its work so far is on the branch"
            await self.append(task.id, [_marker_line(Phase.FAILED, message)])
            await self.transition(task.id, lifecycle.failed, ErrorType.EXIT_CODE, message)


def _marker_line(phase: Phase, message: str) -> str:
    return ccr_line("status", phase=phase.value, message=message)


def _json(model: TaskSpec | TaskStatus) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)
