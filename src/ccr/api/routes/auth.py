"""Setup, login and logout: JSON for scripts, forms (then a redirect) for the dashboard."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from ccr.api.auth import PASSWORD_MAX, PASSWORD_MIN, USERNAME_PATTERN, LoginThrottle
from ccr.api.deps import SESSION_COOKIE, AuthDep, SessionUser, SettingsDep, same_origin
from ccr.core.model import problems
from ccr.core.settings import Settings

router = APIRouter(tags=["auth"])
C = TypeVar("C", bound="Credentials")


class Credentials(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class SetupRequest(Credentials):
    setup_code: str | None = Field(default=None, max_length=100, description="printed in the server log")


def _wants_html(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )


async def _body(request: Request, model: type[C]) -> C:
    """The body as JSON or as a form; a clear 422 either way."""
    try:
        data: Any = dict(await request.form()) if _wants_html(request) else await request.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested 100,000 deep
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body must be JSON or a form") from None
    if request.headers.get("origin") and not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems(exc)) from None


async def credentials(request: Request) -> Credentials:
    return await _body(request, Credentials)


CredentialsDep = Annotated[Credentials, Depends(credentials)]


def _client(request: Request) -> str:
    """The client's address: the peer's, or what a trusted proxy says (uvicorn has applied CCR_TRUSTED_PROXIES)."""
    return request.client.host if request.client else "?"


def _exists() -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, "the admin account exists already; log in instead")


def _throttled(wait: int, what: str) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"too many {what}; try later", {"Retry-After": str(wait)})


def _secure(request: Request, settings: Settings) -> bool:
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    return request.url.scheme == "https"  # X-Forwarded-Proto counts only from a trusted proxy (uvicorn's)


def _logged_in(request: Request, settings: Settings, cookie: str, username: str) -> Response:
    response: Response = (
        RedirectResponse("/", status.HTTP_303_SEE_OTHER)
        if _wants_html(request)
        else JSONResponse({"ok": True, "username": username})
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings),
        path="/",
    )
    return response


SETUP_DONE_DELAY = 0.5  # seconds

_WRONG_CODE = "the setup code is missing or wrong: the server printed it to its log when it started"
_login_throttle = LoginThrottle()
_setup_throttle = LoginThrottle()  # wrong setup codes


@router.post("/setup", summary="Create the admin account (only once)")
async def setup(request: Request, auth: AuthDep, settings: SettingsDep) -> Response:
    """``{"username", "password"}``, plus ``"setup_code"`` (printed in the server's log) when the server
    listens beyond loopback. Once the admin exists: 409, before the body is read or anything is hashed, and
    only after a pause, so a client looping on it costs the server next to nothing."""
    if auth.has_admin:
        await asyncio.sleep(SETUP_DONE_DELAY)
        raise _exists()
    body = await _body(request, SetupRequest)
    client = _client(request)
    if auth.setup_code is not None:
        if wait := _setup_throttle.attempt(client):
            raise _throttled(wait, "wrong setup codes")
        if not auth.setup_code_matches(body.setup_code):
            raise HTTPException(status.HTTP_403_FORBIDDEN, _WRONG_CODE)
    if not await auth.create_admin(body.username, body.password):
        raise _exists()
    _setup_throttle.succeeded(client)
    return _logged_in(request, settings, await auth.new_session(body.username), body.username)


@router.post("/login", summary="Log in; sets the session cookie")
async def login(request: Request, body: CredentialsDep, auth: AuthDep, settings: SettingsDep) -> Response:
    client = _client(request)
    if wait := _login_throttle.attempt(client):
        raise _throttled(wait, "failed logins")
    if not await auth.check_password(body.username, body.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    _login_throttle.succeeded(client)
    return _logged_in(request, settings, await auth.new_session(body.username), body.username)


@router.post("/logout", summary="End the session (server-side)")
async def logout(request: Request, user: SessionUser, auth: AuthDep) -> Response:
    await auth.end_session(request.cookies.get(SESSION_COOKIE))
    response: Response = (
        RedirectResponse("/login", status.HTTP_303_SEE_OTHER) if _wants_html(request) else JSONResponse({"ok": True})
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
