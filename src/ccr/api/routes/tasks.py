"""Tasks: the original runner's endpoints (submit, status, logs, list) plus cancel, retry, events."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse

from ccr.api.deps import StoreDep, current_user
from ccr.api.views import TaskView, ViewCache
from ccr.core.model import TaskSpec
from ccr.core.store import TaskNotFound, TaskRecord, TaskStore

router = APIRouter(tags=["tasks"], dependencies=[Depends(current_user)])


def new_task_id() -> str:
    return secrets.token_hex(6)


async def _get(store: TaskStore, task_id: str) -> TaskRecord:
    try:
        return await store.get(task_id)
    except TaskNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task with id {task_id!r}") from None


async def submit(store: TaskStore, spec: TaskSpec) -> TaskRecord:
    """Create a task; a follow-up continues the earlier task's repository, branch and pull request."""
    if spec.follow_up_of:
        earlier = await _get(store, spec.follow_up_of)
        spec = spec.model_copy(
            update={
                "repo": spec.repo or earlier.status.repo or earlier.spec.repo,
                "branch": spec.branch or earlier.status.branch or earlier.spec.branch,
            }
        )
    return await store.create(new_task_id(), spec.model_copy(update={"cancel": False}))


@router.post("/task", status_code=status.HTTP_200_OK, summary="Submit a task")
async def create_task(spec: Annotated[TaskSpec, Body()], store: StoreDep) -> TaskView:
    return TaskView.of(await submit(store, spec))


@router.get("/task/{task_id}", summary="A task's status")
async def get_task(task_id: str, store: StoreDep) -> TaskView:
    return TaskView.of(await _get(store, task_id))


_views = ViewCache()


@router.get("/tasks", summary="All tasks, newest first", response_model=list[TaskView])
async def list_tasks(store: StoreDep, limit: Annotated[int | None, Query(ge=1, le=10_000)] = None) -> Response:
    return Response(_views.many(await store.list(limit)), media_type="application/json")


@router.post("/task/{task_id}/cancel", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, store: StoreDep) -> TaskView:
    await _get(store, task_id)
    return TaskView.of(await store.cancel(task_id))


@router.post("/task/{task_id}/retry", summary="Run a finished task again, as a new task")
async def retry_task(task_id: str, store: StoreDep) -> TaskView:
    earlier = await _get(store, task_id)
    if not earlier.status.phase.terminal:
        raise HTTPException(status.HTTP_409_CONFLICT, "the task has not finished yet; cancel it first")
    return TaskView.of(await submit(store, earlier.spec))


@router.post("/task/{task_id}/followup", summary="Continue a task's branch and pull request with a new prompt")
async def follow_up(task_id: str, store: StoreDep, prompt: Annotated[str, Body(embed=True, min_length=1)]) -> TaskView:
    earlier = await _get(store, task_id)
    spec = earlier.spec.model_copy(update={"prompt": prompt, "follow_up_of": task_id, "branch": None})
    return TaskView.of(await submit(store, TaskSpec.model_validate(spec.model_dump())))


@router.get(
    "/task/{task_id}/logs",
    summary="The transcript, one JSON event a line; streamed while the task runs",
    response_class=StreamingResponse,
)
async def task_logs(
    task_id: str, store: StoreDep, follow: bool = True, after: Annotated[int, Query(ge=0)] = 0
) -> StreamingResponse:
    await _get(store, task_id)

    async def lines() -> AsyncIterator[str]:
        if follow:
            async for line in store.follow(task_id, after):
                yield line.line + "\n"
        else:
            for line in await store.transcript(task_id, after):
                yield line.line + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get(
    "/task/{task_id}/events",
    summary="The transcript as Server-Sent Events (id = line number; resumes with Last-Event-ID)",
    response_class=StreamingResponse,
)
async def task_events(
    task_id: str,
    store: StoreDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    await _get(store, task_id)
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for line in store.follow(task_id, start):
            yield f"id: {line.seq}\nevent: line\ndata: {line.line}\n\n"
        yield "event: end\ndata: {}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
