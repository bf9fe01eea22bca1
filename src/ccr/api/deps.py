"""Dependencies the routes declare, so their signatures read as prose."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from ccr.api.auth import AuthStore
from ccr.core.settings import Settings
from ccr.core.store import TaskStore

SESSION_COOKIE = "ccr_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> TaskStore:
    store: TaskStore = request.app.state.store
    return store


def get_auth(request: Request) -> AuthStore:
    auth: AuthStore = request.app.state.auth
    return auth


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[TaskStore, Depends(get_store)]
AuthDep = Annotated[AuthStore, Depends(get_auth)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "authentication required", headers={"WWW-Authenticate": "Bearer"}
)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value else None


def same_origin(request: Request) -> bool:
    """A browser write from our own pages: Sec-Fetch-Site, else Origin against Host."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def session_user(request: Request, auth: AuthDep) -> str | None:
    """The logged-in user of a browser session, with CSRF checked for writes."""
    cookie = request.cookies.get(SESSION_COOKIE)
    user = await auth.session_user(cookie)
    if user is None or cookie is None:
        return None
    if request.method not in _SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER)
        if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            token = str((await request.form()).get("csrf_token") or "")
        valid_token = bool(token) and auth.csrf_matches(str(token), cookie)
        if not (valid_token or same_origin(request)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused (CSRF check)")
    return user


async def current_user(request: Request, auth: AuthDep) -> str:
    """A ``ccr_`` bearer token or a browser session."""
    token = bearer(request)
    if token is not None:
        name = await auth.token_name(token)
        if name is None:
            raise _UNAUTHORIZED
        return f"token:{name}"
    user = await session_user(request, auth)
    if user is None:
        raise _UNAUTHORIZED
    return user


async def session_only(request: Request, auth: AuthDep) -> str:
    """Only a logged-in person, never a token (a token must not mint tokens)."""
    user = await session_user(request, auth)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in to the dashboard first")
    return user


CurrentUser = Annotated[str, Depends(current_user)]
SessionUser = Annotated[str, Depends(session_only)]
