"""The task services' domain errors as HTTP answers, for every route (the routes just let them rise)."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from ccr.core.services import Conflict, Invalid
from ccr.core.store import BadQuery, TaskNotFound

ANSWERS: dict[type[Exception], int] = {
    TaskNotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Invalid: status.HTTP_422_UNPROCESSABLE_CONTENT,
    BadQuery: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


async def _answer(request: Request, exc: Exception) -> JSONResponse:
    code = ANSWERS[type(exc)]
    # A 404 names no id: the path already holds it, and echoing input is how reflected content starts.
    detail = "no such task" if isinstance(exc, TaskNotFound) else str(exc)
    return JSONResponse({"detail": detail}, status_code=code)


def install(app: FastAPI) -> None:
    for kind in ANSWERS:
        app.add_exception_handler(kind, _answer)
