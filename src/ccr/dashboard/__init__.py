"""The dashboard: server-rendered pages over the same store and auth the REST API uses.

``ccr.app.create_app`` (the composition root) mounts it on the API with :func:`mount`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    from ccr.dashboard import routes

    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(routes.LoginRequired, routes.login_required)
    app.add_exception_handler(HTTPException, routes.browser_errors)
