"""The FastAPI application: REST API and dashboard over one task store, local or Kubernetes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline

from ccr import __version__
from ccr.api import errors
from ccr.api.auth import AuthStore
from ccr.api.routes import auth, health, tasks, tokens
from ccr.core.settings import Backend, Settings, get_settings
from ccr.core.store import TaskStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # a 256 KB prompt, JSON-escaped, fits with room to spare
# Paths a browser may open before the admin exists.
_OPEN_PATHS = ("/setup", "/health", "/static/", "/docs", "/openapi.json", "/metrics")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI (served from the package, no CDN) starts itself with an inline script.
_DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def build_store(settings: Settings) -> TaskStore:
    if settings.backend is Backend.KUBERNETES:
        from ccr.kube.store import KubeStore

        return KubeStore(settings)
    from ccr.local.backend import LocalBackend

    return LocalBackend(settings)


def create_app(settings: Settings | None = None, store: TaskStore | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store or build_store(settings)
        app.state.auth = AuthStore(
            settings.data_dir,
            settings.session_secret.get_secret_value() if settings.session_secret else None,
            settings.session_max_age_seconds,
        )
        await app.state.auth.start()
        await app.state.store.start()
        try:
            yield
        finally:
            await app.state.store.stop()
            app.state.auth.close()

    app = FastAPIOffline(
        title="claude-code-runner",
        version=__version__,
        description="Submit coding tasks to Claude Code; each becomes a draft pull request. "
        "Authenticate with `Authorization: Bearer ccr_...` (make one on the dashboard's token page).",
        lifespan=lifespan,
    )
    app.state.settings = settings

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(tokens.router)
    app.include_router(tasks.router)
    errors.install(app)
    with contextlib.suppress(ImportError):
        from ccr.dashboard import mount

        mount(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default echoes the input back: a 200 KB prompt, or a secret pasted by mistake. Not here.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        path = request.url.path
        if (
            request.method == "GET"
            and not request.app.state.auth.has_admin
            and not path.startswith(_OPEN_PATHS)
            and "text/html" in request.headers.get("accept", "")
        ):
            return RedirectResponse("/setup", status.HTTP_303_SEE_OTHER)
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _DOCS_CSP if path.startswith("/docs") else CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app
