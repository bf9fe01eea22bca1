"""Local mode: the SQLite store with the executor behind it, as one ``TaskStore`` for the API."""

from __future__ import annotations

from ccr.core.model import TaskSpec
from ccr.core.settings import Settings
from ccr.core.store import TaskRecord
from ccr.local.executor import LocalExecutor
from ccr.local.store import LocalStore


class LocalBackend(LocalStore):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.data_dir)
        self.executor = LocalExecutor(self, settings)

    async def start(self) -> None:
        await super().start()
        await self.executor.start()

    async def stop(self) -> None:
        await self.executor.stop()
        await super().stop()

    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord:
        task = await super().create(task_id, spec)
        self.executor.wake()
        return task

    async def cancel(self, task_id: str) -> TaskRecord:
        task = await super().cancel(task_id)
        await self.executor.cancel(task_id)
        return task
