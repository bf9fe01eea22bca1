"""Tasks: the original runner's endpoints (submit, status, logs, list) plus cancel, retry, follow-up, events.

Thin adapters: a request model in, one call of ``ccr.core.services`` (or a store read), a ``TaskView`` out.
The services' domain errors become 404/409/422 in ``ccr.api.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from ccr.api.deps import StoreDep, current_user
from ccr.api.views import TaskView, ViewCache, parse_statuses
from ccr.core import services
from ccr.core.model import Prompt, TaskSpec
from ccr.core.store import LIST_CAP, PAGE_DEFAULT, TaskQuery, page

router = APIRouter(tags=["tasks"], dependencies=[Depends(current_user)])

LINE_MAX = 10**18 - 1  # transcript line numbers: SQLite integers (below 2**63), at most 18 digits
_views = ViewCache()


class FollowUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: services.RetryMode | None = None  # default: continue after capacity_reached, timeout, cancelled


def _json(body: bytes, **headers: str) -> Response:
    return Response(body, media_type="application/json", headers=headers)


@router.post("/task", summary="Submit a task", response_model=TaskView)
async def create_task(spec: Annotated[TaskSpec, Body()], store: StoreDep) -> Response:
    return _json(_views.one(await services.submit(store, spec)))


@router.get("/task/{task_id}", summary="A task's status", response_model=TaskView)
async def get_task(task_id: str, store: StoreDep) -> Response:
    return _json(_views.one(await store.get(task_id)))


@router.get(
    "/tasks",
    summary="Tasks, newest first: filtered, and paged with a cursor",
    response_model=list[TaskView],
    description=f"Without `limit` and `before` the answer holds every matching task up to {LIST_CAP} (the "
    f"original runner's shape). With either, a page of `limit` tasks (default {PAGE_DEFAULT}); a `Link` header "
    '`<...?before=ID&limit=N>; rel="next"` points at the next page while there is one.',
)
async def list_tasks(
    request: Request,
    store: StoreDep,
    status_: Annotated[
        str | None, Query(alias="status", max_length=200, description="queued,running,completed,failed,...")
    ] = None,
    repo: Annotated[str | None, Query(max_length=200, description="owner/name")] = None,
    q: Annotated[str | None, Query(max_length=1000, description="text in the prompt")] = None,
    before: Annotated[str | None, Query(max_length=253, description="the last id of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1, le=LIST_CAP)] = None,
) -> Response:
    try:
        statuses = parse_statuses(status_)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    paged = limit is not None or before is not None
    size = (limit or PAGE_DEFAULT) if paged else LIST_CAP
    query = TaskQuery(statuses=statuses, repo=repo, text=q, before=before, limit=size)
    tasks, more = page(await store.list(), query)
    headers = {}
    if more and tasks:
        following = request.url.include_query_params(before=tasks[-1].id, limit=size)
        headers["Link"] = f'<{following}>; rel="next"'
    return _json(_views.many(tasks), **headers)


@router.post("/task/{task_id}/cancel", summary="Cancel a queued or running task", response_model=TaskView)
async def cancel_task(task_id: str, store: StoreDep) -> Response:
    return _json(_views.one(await services.cancel(store, task_id)))


@router.post(
    "/task/{task_id}/retry",
    summary="Run a finished task again: continue its branch and PR, or start fresh",
    response_model=TaskView,
)
async def retry_task(task_id: str, store: StoreDep, body: Annotated[Retry | None, Body()] = None) -> Response:
    mode = body.mode if body is not None else None
    return _json(_views.one(await services.retry(store, task_id, mode)))


@router.post(
    "/task/{task_id}/followup",
    summary="Continue a task's branch and pull request with a new prompt",
    response_model=TaskView,
)
async def follow_up(task_id: str, store: StoreDep, body: Annotated[FollowUp, Body()]) -> Response:
    return _json(_views.one(await services.follow_up(store, task_id, body.prompt)))


@router.get(
    "/task/{task_id}/logs",
    summary="The transcript, one JSON event a line; streamed while the task runs",
    response_class=StreamingResponse,
)
async def task_logs(
    task_id: str, store: StoreDep, follow: bool = True, after: Annotated[int, Query(ge=0, le=LINE_MAX)] = 0
) -> StreamingResponse:
    await store.get(task_id)

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
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,18}$")] = None,
    after: Annotated[int, Query(ge=0, le=LINE_MAX)] = 0,
) -> StreamingResponse:
    await store.get(task_id)
    start = int(last_event_id) if last_event_id is not None else after

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
