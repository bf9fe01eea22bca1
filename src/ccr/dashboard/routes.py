"""Dashboard pages and their form posts.

Every page is rendered on the server (Jinja2, autoescaped). Every mutation is a POST form carrying the
session's CSRF token, answered by a 303 redirect. Live parts are server-rendered fragments that the page
long-polls (``store.wait_changed``) only while it is visible; the transcript is the one part drawn in the
browser, from ``/task/{id}/events``, by ``static/transcript.js``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from ccr.api.auth import DEFAULT_TOKEN_NAME, PASSWORD_MIN, AuthStore
from ccr.api.deps import SESSION_COOKIE, AuthDep, SessionUser, StoreDep
from ccr.api.views import TaskView
from ccr.core import services
from ccr.core.advice import ADVICE, AUTH_ADVICE
from ccr.core.advice import advice as advice_text
from ccr.core.model import Phase, TaskSpec, problems
from ccr.core.store import TaskNotFound, TaskRecord, TaskStore
from ccr.core.units import usd

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

LONG_POLL_SECONDS = 20.0
PROMPT_EXCERPT = 90
# Tokens generated but not yet shown: session hash -> token. Shown once by the next GET, then gone.
_fresh_tokens: dict[str, str] = {}
FRESH_TOKENS_MAX = 100


class LoginRequired(Exception):
    pass


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    key: str  # a hash of the cookie: identifies the session without holding it


async def page_session(request: Request, auth: AuthDep) -> Session:
    cookie = request.cookies.get(SESSION_COOKIE)
    user = await auth.session_user(cookie)
    if user is None or cookie is None:
        raise LoginRequired
    return Session(user, auth.csrf_token(cookie), hashlib.sha256(cookie.encode()).hexdigest())


PageSession = Annotated[Session, Depends(page_session)]


async def login_required(request: Request, exc: Exception) -> Response:
    target = "/login" if request.app.state.auth.has_admin else "/setup"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


def _browser_form(request: Request) -> bool:
    return request.method == "POST" and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )


async def browser_errors(request: Request, exc: Exception) -> Response:
    """A failed form post from a page answers with a page; scripts keep getting the API's JSON."""
    assert isinstance(exc, HTTPException)
    if not _browser_form(request) or "text/html" not in request.headers.get("accept", ""):
        return await http_exception_handler(request, exc)
    detail = str(exc.detail)
    path = request.url.path
    if path == "/login":
        return _render(request, "login.html", {"error": detail}, exc.status_code, exc.headers)
    if path == "/setup":
        if exc.status_code == status.HTTP_409_CONFLICT:
            return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
        context = _setup_context(request.app.state.auth) | {"error": detail}
        return _render(request, "setup.html", context, exc.status_code, exc.headers)
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    return _render(request, "error.html", {"error": detail, "code": exc.status_code}, exc.status_code)


def _render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status.HTTP_303_SEE_OTHER)


# --- template helpers ---------------------------------------------------------------------------------
def safe_url(value: str | None) -> str | None:
    """Only http(s) links reach an href: a javascript: URL in a status field stays text."""
    if value and value.lower().startswith(("https://", "http://")):
        return value
    return None


def excerpt(text: str, limit: int = PROMPT_EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def duration(task: TaskView) -> str:
    if not task.started:
        return ""
    start = dt.datetime.fromisoformat(task.started)
    end = dt.datetime.fromisoformat(task.finished) if task.finished else dt.datetime.now(dt.UTC)
    seconds = max(int((end - start).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def cost(task: TaskView) -> str:
    if task.usage is None or task.usage.cost_usd is None:
        return ""
    return usd(task.usage.cost_usd)


def advice(task: TaskView) -> str:
    """What the task's failure means and what to do (``ccr.core.advice``)."""
    reset = dt.datetime.fromisoformat(task.reset_time) if task.reset_time else None
    return advice_text(task.errorType, task.authTarget, reset)


def changes(task: TaskView) -> str:
    return task.changes.summary() if task.changes is not None else ""


# The transcript's result card reads the same advice, embedded in the page as JSON data.
ADVICE_DATA = {"errors": {k.value: v for k, v in ADVICE.items()}, "auth": {k.value: v for k, v in AUTH_ADVICE.items()}}

templates.env.filters["safe_url"] = safe_url
templates.env.filters["excerpt"] = excerpt
templates.env.globals.update(
    duration=duration,
    cost=cost,
    advice=advice,
    changes=changes,
    retry_mode=lambda task: services.default_retry_mode_of(task.errorType),
    ADVICE=ADVICE_DATA,
    Phase=Phase,
)


async def _call(operation: Awaitable[TaskRecord]) -> TaskRecord:
    """A task service from a form: its domain errors as the HTTP errors the error page renders."""
    try:
        return await operation
    except TaskNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such task") from None
    except services.Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except services.Invalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


async def _version(store: TaskStore) -> int:
    """The store's change counter now (a version nobody holds returns at once)."""
    return await store.wait_changed(-1, 0)


async def _list_context(store: TaskStore) -> dict[str, Any]:
    counts = await store.counts()
    tasks = [TaskView.of(t) for t in (await store.list())[:200]]
    return {
        "tasks": tasks,
        "counts": {
            "queued": counts.get(Phase.QUEUED, 0) + counts.get(Phase.PENDING, 0),
            "running": counts.get(Phase.RUNNING, 0),
            "succeeded": counts.get(Phase.SUCCEEDED, 0),
            "failed": counts.get(Phase.FAILED, 0),
            "cancelled": counts.get(Phase.CANCELLED, 0),
        },
    }


async def _left(request: Request) -> None:
    """Returns when the client has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _long_poll(request: Request, store: TaskStore, since: int | None) -> int | None:
    """Wait for a change after ``since``; None when nothing changed within the poll window or the reader left."""
    if since is None:
        return await _version(store)
    changed = asyncio.ensure_future(store.wait_changed(since, LONG_POLL_SECONDS))
    left = asyncio.ensure_future(_left(request))  # a closed tab frees its request at once
    try:
        await asyncio.wait({changed, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (changed, left):
            task.cancel()
    if not changed.done() or changed.cancelled():
        return None
    version = changed.result()
    return None if version == since else version


# --- setup, login -------------------------------------------------------------------------------------
def _setup_context(auth: AuthStore) -> dict[str, Any]:
    return {"password_min": PASSWORD_MIN, "setup_code_required": auth.setup_code is not None}


@router.get("/setup")
async def setup_page(request: Request, auth: AuthDep) -> Response:
    if auth.has_admin:
        return _see_other("/login")
    return _render(request, "setup.html", _setup_context(auth))


@router.get("/login")
async def login_page(request: Request, auth: AuthDep) -> Response:
    if not auth.has_admin:
        return _see_other("/setup")
    if await auth.session_user(request.cookies.get(SESSION_COOKIE)):
        return _see_other("/")
    return _render(request, "login.html", {})


# --- the task list ------------------------------------------------------------------------------------
@router.get("/")
async def task_list(request: Request, session: PageSession, store: StoreDep) -> Response:
    context = await _list_context(store)
    context.update(session=session, version=await _version(store), form={})
    return _render(request, "tasks.html", context)


@router.get("/fragments/tasks")
async def task_list_fragment(request: Request, session: PageSession, store: StoreDep, v: int | None = None) -> Response:
    version = await _long_poll(request, store, v)
    if version is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    context = await _list_context(store)
    context.update(session=session)
    response = _render(request, "_task_table.html", context)
    response.headers["X-Version"] = str(version)
    return response


@router.post("/tasks/submit")
async def submit_form(
    request: Request,
    user: SessionUser,
    store: StoreDep,
    auth: AuthDep,
    prompt: Annotated[str, Form()] = "",
    repo: Annotated[str, Form()] = "",
    model: Annotated[str, Form()] = "",
    max_turns: Annotated[str, Form()] = "",
    timeout_minutes: Annotated[str, Form()] = "",
) -> Response:
    form = {
        "prompt": prompt,
        "repo": repo,
        "model": model,
        "max_turns": max_turns,
        "timeout_minutes": timeout_minutes,
    }
    data: dict[str, Any] = {"prompt": prompt}
    error = None
    try:
        if repo.strip():
            data["repo"] = repo.strip()
        if model.strip():
            data["model"] = model.strip()
        if max_turns.strip():
            data["max_turns"] = int(max_turns)
        if timeout_minutes.strip():
            data["timeout_seconds"] = int(float(timeout_minutes) * 60)
        spec = TaskSpec.model_validate(data)
    except ValueError as exc:
        error = problems(exc) if isinstance(exc, ValidationError) else "max turns and timeout must be numbers"
    if error is not None:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = Session(user, auth.csrf_token(cookie), "")
        context = await _list_context(store)
        context.update(session=session, version=await _version(store), form=form, error=error)
        return _render(request, "tasks.html", context, status.HTTP_422_UNPROCESSABLE_CONTENT)
    task = await _call(services.submit(store, spec))
    return _see_other(f"/tasks/{task.id}")


@router.post("/tasks/{task_id}/cancel")
async def cancel_form(task_id: str, user: SessionUser, store: StoreDep) -> Response:
    await _call(services.cancel(store, task_id))
    return _see_other(f"/tasks/{task_id}")


@router.post("/tasks/{task_id}/retry")
async def retry_form(
    task_id: str, user: SessionUser, store: StoreDep, mode: Annotated[services.RetryMode | None, Form()] = None
) -> Response:
    task = await _call(services.retry(store, task_id, mode))
    return _see_other(f"/tasks/{task.id}")


# --- one task ----------------------------------------------------------------------------------------
async def _task_or_404(request: Request, store: TaskStore, task_id: str) -> TaskView | Response:
    try:
        return TaskView.of(await store.get(task_id))
    except TaskNotFound:
        return _render(request, "error.html", {"error": "no such task", "code": 404}, status_code=404)


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str, session: PageSession, store: StoreDep) -> Response:
    task = await _task_or_404(request, store, task_id)
    if isinstance(task, Response):
        return task
    context = {"task": task, "session": session, "version": await _version(store)}
    return _render(request, "task.html", context)


@router.get("/fragments/tasks/{task_id}")
async def task_head_fragment(
    request: Request, task_id: str, session: PageSession, store: StoreDep, v: int | None = None
) -> Response:
    version = await _long_poll(request, store, v)
    if version is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    task = await _task_or_404(request, store, task_id)
    if isinstance(task, Response):
        return task
    response = _render(request, "_task_head.html", {"task": task, "session": session})
    response.headers["X-Version"] = str(version)
    return response


# --- tokens ------------------------------------------------------------------------------------------
@router.get("/settings/tokens")
async def tokens_page(request: Request, session: PageSession, auth: AuthDep) -> Response:
    fresh = _fresh_tokens.pop(session.key, None)
    context = {"session": session, "tokens": await auth.tokens(), "fresh": fresh}
    return _render(request, "tokens.html", context)


@router.post("/settings/tokens/generate")
async def generate_token_form(request: Request, user: SessionUser, auth: AuthDep) -> Response:
    token = await auth.generate_token(DEFAULT_TOKEN_NAME)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    while len(_fresh_tokens) >= FRESH_TOKENS_MAX:  # never collected (the page was closed): drop the oldest
        _fresh_tokens.pop(next(iter(_fresh_tokens)))
    _fresh_tokens[hashlib.sha256(cookie.encode()).hexdigest()] = token
    return _see_other("/settings/tokens")


@router.post("/settings/tokens/{name}/revoke")
async def revoke_token_form(name: str, user: SessionUser, auth: AuthDep) -> Response:
    if not await auth.revoke_token(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    return _see_other("/settings/tokens")
