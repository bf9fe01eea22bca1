"""SQLite under the data directory, used from asyncio.

One connection, one worker thread: statements run in order, the event loop never waits on disk, and
every write is a committed transaction before the awaiting caller continues (WAL, synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_SIDE_FILES = ("-wal", "-shm", "-journal")


class Database:
    def __init__(self, path: Path, schema: Iterable[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{path.stem}")
        self._conn = self._pool.submit(self._open, path, list(schema)).result()

    @staticmethod
    def _open(path: Path, schema: list[str]) -> sqlite3.Connection:
        # SQLite creates the -wal and -shm files with the database file's mode: make that 0600 before the
        # first connection, and tighten files an older version left readable to others.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        for file in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                file.chmod(0o600)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        for statement in schema:
            conn.execute(statement)
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, self._conn)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T], *, fsync: bool = True) -> T:
        """Run ``fn(conn)`` inside BEGIN IMMEDIATE ... COMMIT: all of it lands, or none.

        ``fsync=False`` (high-rate appends such as transcript lines): the commit survives the process being
        killed, as every commit does in WAL mode, but waits for no disk flush; the next flushed commit
        carries it to the disk too.
        """

        def wrapped(conn: sqlite3.Connection) -> T:
            conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if not fsync:
                conn.execute("PRAGMA synchronous=FULL")
            return result

        return await self.run(wrapped)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; returns the number of changed rows."""
        return await self.run(lambda conn: conn.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return await self.run(lambda conn: conn.execute(sql, params).fetchone())

    def close(self) -> None:
        self._pool.submit(self._conn.close).result()
        self._pool.shutdown(wait=True)
