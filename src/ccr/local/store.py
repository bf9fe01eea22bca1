"""The local task store: tasks, statuses and transcripts in SQLite under the data directory."""

from __future__ import annotations

import builtins
import collections
import datetime as dt
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from ccr.core.db import Database
from ccr.core.events import ccr_line
from ccr.core.model import (
    ConditionType,
    ErrorType,
    JobResult,
    Outcome,
    Phase,
    TaskSpec,
    TaskStatus,
    now,
    set_condition,
)
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


def _record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        created=dt.datetime.fromisoformat(row["created"]),
        spec=TaskSpec.model_validate_json(row["spec"]),
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
        status = TaskStatus(
            phase=Phase.QUEUED,
            repo=spec.repo,
            conditions=set_condition([], ConditionType.ACCEPTED, True, "Validated", "spec accepted", 1),
        )
        return await self._save(TaskRecord(id=task_id, spec=spec, status=status, created=now()), new=True)

    async def get(self, task_id: str) -> TaskRecord:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFound(task_id) from None

    async def list(self, limit: int | None = None) -> builtins.list[TaskRecord]:
        newest_first = reversed(self._tasks.values())
        return list(newest_first if limit is None else itertools.islice(newest_first, limit))

    async def cancel(self, task_id: str) -> TaskRecord:
        """Mark the spec cancelled; a queued task ends at once, a running one when its process stops."""
        task = await self.get(task_id)
        if task.status.phase.terminal or task.spec.cancel:
            return task
        status = task.status
        if status.phase in (Phase.PENDING, Phase.QUEUED):
            status = _finished(status, Phase.CANCELLED, ErrorType.CANCELLED, "cancelled before it started")
        spec = task.spec.model_copy(update={"cancel": True})
        return await self._save(
            task.model_copy(update={"spec": spec, "status": status, "generation": task.generation + 1})
        )

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

    # --- used by the local executor ----------------------------------------------------------------
    async def next_queued(self, exclude: set[str]) -> TaskRecord | None:
        """The queued task to start next: highest priority, then the earliest submitted."""
        queued = (t for t in self._tasks.values() if t.status.phase is Phase.QUEUED and t.id not in exclude)
        best: TaskRecord | None = None
        for task in queued:  # creation order: on equal priority the first one stays
            if best is None or task.spec.priority > best.spec.priority:
                best = task
        return best

    async def set_status(self, task_id: str, status: TaskStatus) -> None:
        await self._save((await self.get(task_id)).model_copy(update={"status": status}))

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

    async def finish(self, task_id: str, result: JobResult) -> TaskStatus:
        task = await self.get(task_id)
        found = {name: value for name in Outcome.model_fields if (value := getattr(result, name)) is not None}
        status = _finished(task.status.model_copy(update=found), result.status, result.error_type, result.message)
        await self.set_status(task_id, status)
        return status

    async def recover(self) -> None:
        """At start-up, no task may stay Running: its process died with the previous server."""
        for task in [t for t in self._tasks.values() if t.status.phase is Phase.RUNNING]:
            message = "the server stopped while this task was running; its work so far is on the branch"
            await self.append(task.id, [_marker_line(Phase.FAILED, message)])
            await self.set_status(task.id, _finished(task.status, Phase.FAILED, ErrorType.EXIT_CODE, message))


def _finished(status: TaskStatus, phase: Phase, error: ErrorType | None, message: str | None) -> TaskStatus:
    ok = phase is Phase.SUCCEEDED
    reason = "Succeeded" if ok else (error.value if error else phase.value)
    return status.model_copy(
        update={
            "phase": phase,
            "error_type": error,
            "message": message,
            "completion_time": now(),
            "conditions": set_condition(status.conditions, ConditionType.COMPLETE, ok, reason, message or ""),
        }
    )


def _marker_line(phase: Phase, message: str) -> str:
    return ccr_line("status", phase=phase.value, message=message)


def _json(model: TaskSpec | TaskStatus) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)
