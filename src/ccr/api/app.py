"""The FastAPI application: REST API and dashboard over one task store, local or Kubernetes."""

from __future__ import annotations

import contextlib
import logging
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from ccr import __version__
from ccr.api import errors
from ccr.api.auth import AuthStore
from ccr.api.guard import Guard, HostPolicy, is_loopback
from ccr.api.routes import auth, health, sessions, tasks, tokens, usage
from ccr.core.settings import Backend, Settings, get_settings
from ccr.core.store import TaskStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # a 256 KB prompt, JSON-escaped, fits with room to spare
# What the server keeps in the data directory besides its top-level files (databases, session_secret).
_PRIVATE_DIRS = ("tasks", "work", "transcripts")


def private_data_dir(data_dir: Path) -> None:
    """Create the data directory private to the server's user (0700, its files 0600), and make one that an
    older version left readable to others private too: another local user could read the password hash from
    ``auth.db-wal`` or every task's prompt from ``ccr.db``. What lies deeper is behind these 0700 directories."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = [(data_dir, 0o700)] + [(data_dir / name, 0o700) for name in _PRIVATE_DIRS]
    targets += [(entry, 0o600) for entry in data_dir.iterdir() if entry.is_file()]
    for path, mode in targets:
        with contextlib.suppress(FileNotFoundError):
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or not stat.S_IMODE(info.st_mode) & ~mode:
                continue  # a link is not ours to follow; a private path stays as it is
            try:
                path.chmod(mode)
            except PermissionError:  # e.g. a volume root owned by root, shared through fsGroup
                log.warning("cannot make %s private (mode %o): not our own", path, stat.S_IMODE(info.st_mode))


def build_store(settings: Settings) -> TaskStore:
    if settings.backend is Backend.KUBERNETES:
        from ccr.kube.store import KubeStore

        return KubeStore(settings)
    from ccr.local.backend import LocalBackend

    return LocalBackend(settings)


def create_app(
    settings: Settings | None = None,
    store: TaskStore | None = None,
    extensions: Sequence[Callable[[FastAPI], None]] = (),
) -> FastAPI:
    """The REST API over one task store; ``extensions`` add to it (``ccr.app`` mounts the dashboard)."""
    settings = settings or get_settings()
    private_data_dir(settings.data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store or build_store(settings)
        app.state.auth = AuthStore(
            settings.data_dir,
            settings.session_secret.get_secret_value() if settings.session_secret else None,
            settings.session_max_age_seconds,
            # Beyond loopback, anyone on the network could reach a fresh server before its owner does.
            require_setup_code=not is_loopback(settings.host),
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
        max_body_size=MAX_BODY_BYTES,  # 413 above it, counted as read: chunked bodies too, never buffered whole
    )
    app.state.settings = settings

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(tokens.router)
    app.include_router(tasks.router)
    app.include_router(usage.router)
    app.include_router(sessions.router)
    errors.install(app)
    for extend in extensions:  # the dashboard (``ccr.app``): mounted before the middleware stack is built
        extend(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default echoes the input back: a 200 KB prompt, or a secret pasted by mistake. Not here.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    # The guard goes outside Starlette's ServerErrorMiddleware (``add_middleware`` would put it inside), so a
    # 500 carries the security headers too. Built here, once everything is registered.
    hosts = HostPolicy.for_server(settings.host, settings.allowed_hosts)
    app.middleware_stack = Guard(app.build_middleware_stack(), hosts, lambda: not app.state.auth.has_admin)
    return app
