"""The local task store: tasks, statuses and transcripts in SQLite under the data directory."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from ccr.core.db import Database
from ccr.core.events import ccr_event
from ccr.core.model import (
    ConditionType,
    ErrorType,
    JobResult,
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
    "CREATE INDEX IF NOT EXISTS tasks_queue ON tasks (phase, priority DESC, n)",
    """CREATE TABLE IF NOT EXISTS transcript (
        task_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (task_id, seq)
    ) WITHOUT ROWID""",
]

_COLUMNS = "id, created, spec, status, generation"


def _record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        created=dt.datetime.fromisoformat(row["created"]),
        spec=TaskSpec.model_validate_json(row["spec"]),
        status=TaskStatus.model_validate_json(row["status"]),
        generation=row["generation"],
    )


class LocalStore:
    """Implements ``ccr.core.store.TaskStore``; the executor drives the status methods below it."""

    def __init__(self, data_dir: Path) -> None:
        self.db = Database(data_dir / "ccr.db", SCHEMA)
        self.changes = ChangeSignal()  # any task changed
        self.lines = ChangeSignal()  # any transcript grew

    async def start(self) -> None:
        await self.recover()

    async def stop(self) -> None:
        self.db.close()

    # --- TaskStore -------------------------------------------------------------------------------
    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord:
        status = TaskStatus(
            phase=Phase.QUEUED,
            repo=spec.repo,
            conditions=set_condition([], ConditionType.ACCEPTED, True, "Validated", "spec accepted", 1),
        )
        created = now()
        await self.db.execute(
            "INSERT INTO tasks (id, created, priority, phase, spec, status) VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, created.isoformat(), spec.priority, status.phase.value, _json(spec), _json(status)),
        )
        await self.changes.bump()
        return TaskRecord(id=task_id, spec=spec, status=status, created=created)

    async def get(self, task_id: str) -> TaskRecord:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        if row is None:
            raise TaskNotFound(task_id)
        return _record(row)

    async def list(self, limit: int | None = None) -> list[TaskRecord]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM tasks ORDER BY n DESC LIMIT ?", (-1 if limit is None else limit,)
        )
        return [_record(row) for row in rows]

    async def cancel(self, task_id: str) -> TaskRecord:
        """Mark the spec cancelled; a queued task ends at once, a running one when its process stops."""
        task = await self.get(task_id)
        if task.status.phase.terminal or task.spec.cancel:
            return task
        spec = task.spec.model_copy(update={"cancel": True})
        status = task.status
        if status.phase in (Phase.PENDING, Phase.QUEUED):
            status = _finished(status, Phase.CANCELLED, ErrorType.CANCELLED, "cancelled before it started")
        await self.db.execute(
            "UPDATE tasks SET spec = ?, status = ?, phase = ?, generation = generation + 1 WHERE id = ?",
            (_json(spec), _json(status), status.phase.value, task_id),
        )
        await self.changes.bump()
        return await self.get(task_id)

    async def counts(self) -> dict[Phase, int]:
        rows = await self.db.fetchall("SELECT phase, count(*) AS c FROM tasks GROUP BY phase")
        found = {Phase(row["phase"]): row["c"] for row in rows}
        return {phase: found.get(phase, 0) for phase in Phase}

    async def transcript(self, task_id: str, after: int = 0) -> list[TranscriptLine]:
        rows = await self.db.fetchall(
            "SELECT seq, line FROM transcript WHERE task_id = ? AND seq > ? ORDER BY seq", (task_id, after)
        )
        return [TranscriptLine(seq=row["seq"], line=row["line"]) for row in rows]

    async def follow(self, task_id: str, after: int = 0) -> AsyncIterator[TranscriptLine]:
        while True:
            version = self.lines.version
            task = await self.get(task_id)  # read the phase before the lines: no line is missed at the end
            lines = await self.transcript(task_id, after)
            for line in lines:
                yield line
                after = line.seq
            if task.status.phase.terminal:
                return
            if not lines:
                await self.lines.wait(version, timeout=5.0)

    async def wait_changed(self, version: int, timeout: float) -> int:
        return await self.changes.wait(version, timeout)

    # --- used by the local executor ----------------------------------------------------------------
    async def next_queued(self, exclude: set[str]) -> TaskRecord | None:
        """The queued task to start next: highest priority, then the earliest submitted."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM tasks WHERE phase = ? ORDER BY priority DESC, n LIMIT ?",
            (Phase.QUEUED.value, len(exclude) + 1),
        )
        return next((_record(row) for row in rows if row["id"] not in exclude), None)

    async def set_status(self, task_id: str, status: TaskStatus) -> None:
        await self.db.execute(
            "UPDATE tasks SET status = ?, phase = ? WHERE id = ?",
            (_json(status), status.phase.value, task_id),
        )
        await self.changes.bump()

    async def append(self, task_id: str, lines: list[str]) -> int:
        """Append lines to the transcript in one transaction; returns the last seq."""

        def insert(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(seq) FROM transcript WHERE task_id = ?", (task_id,)).fetchone()
            start = (row[0] or 0) + 1
            conn.executemany(
                "INSERT INTO transcript (task_id, seq, line) VALUES (?, ?, ?)",
                [(task_id, start + i, line) for i, line in enumerate(lines)],
            )
            return start + len(lines) - 1

        last = await self.db.transaction(insert)
        await self.lines.bump()
        return last

    async def finish(self, task_id: str, result: JobResult) -> TaskStatus:
        task = await self.get(task_id)
        status = task.status.model_copy(
            update={
                "repo": result.repo or task.status.repo,
                "branch": result.branch or task.status.branch,
                "pr_url": result.pr_url or task.status.pr_url,
                "session_id": result.session_id,
                "usage": result.usage,
                "reset_time": result.reset_time,
            }
        )
        status = _finished(status, result.status, result.error_type, result.message)
        await self.set_status(task_id, status)
        return status

    async def recover(self) -> None:
        """At start-up, no task may stay Running: its process died with the previous server."""
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM tasks WHERE phase = ?", (Phase.RUNNING.value,))
        for row in rows:
            task = _record(row)
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
    return ccr_event("status", phase=phase.value, message=message)


def _json(model: TaskSpec | TaskStatus) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)
