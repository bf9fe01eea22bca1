"""The thread sessions of cluster mode: job pods fetch the Claude session they continue and keep the one they
had (``ccr.job.session``), authenticated by their thread's token (``ccr.core.sessions``). Local mode's
executor moves the files itself; there the routes answer 404 (no ``CCR_SESSION_KEY``)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, Response

from ccr.api.deps import SettingsDep, bearer
from ccr.core import sessions
from ccr.core.settings import Settings

MAX_SESSION_BYTES = 32 * 1024 * 1024  # the job's CCR_SESSION_MAX_BYTES default: it keeps nothing larger
router = APIRouter(tags=["internal"], include_in_schema=False)


def _file(request: Request, settings: Settings, namespace: str, thread: str) -> Path:
    key = settings.session_key.get_secret_value() if settings.session_key else None
    token = bearer(request)
    if key is None or sessions.thread_of(f"claude/{thread}") is None or not sessions.THREAD_PATTERN.match(namespace):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    if token is None or not sessions.valid(key, namespace, thread, token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required")
    return settings.data_dir / "sessions" / namespace / f"{thread}.jsonl"


@router.get("/internal/sessions/{namespace}/{thread}")
async def get_session(request: Request, namespace: str, thread: str, settings: SettingsDep) -> Response:
    path = _file(request, settings, namespace, thread)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    return FileResponse(path, media_type="application/x-ndjson")


@router.put("/internal/sessions/{namespace}/{thread}", max_body_size=MAX_SESSION_BYTES, status_code=204)
async def put_session(
    request: Request,
    namespace: str,
    thread: str,
    settings: SettingsDep,
) -> Response:
    path = _file(request, settings, namespace, thread)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".uploading")
    with tmp.open("wb") as out:
        os.fchmod(out.fileno(), 0o600)
        async for chunk in request.stream():
            out.write(chunk)
    os.replace(tmp, path)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
