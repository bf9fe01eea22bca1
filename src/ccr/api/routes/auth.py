"""Setup, login and logout: JSON for scripts, forms (then a redirect) for the dashboard."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from ccr.api.auth import PASSWORD_MAX, PASSWORD_MIN, USERNAME_PATTERN, LoginThrottle
from ccr.api.deps import SESSION_COOKIE, AuthDep, SessionUser, SettingsDep, same_origin
from ccr.core.model import problems
from ccr.core.settings import Settings

router = APIRouter(tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)

    @field_validator("username")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


def _wants_html(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    )


async def credentials(request: Request) -> Credentials:
    """The body as JSON or as a form; a clear 422 either way."""
    try:
        data: Any = dict(await request.form()) if _wants_html(request) else await request.json()
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body must be JSON or a form") from None
    if request.headers.get("origin") and not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    try:
        return Credentials.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems(exc)) from None


CredentialsDep = Annotated[Credentials, Depends(credentials)]


def _secure(request: Request, settings: Settings) -> bool:
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    forwarded = (
        request.headers.get("x-forwarded-proto")
        if request.client and request.client.host in (settings.trusted_proxies.split(","))
        else None
    )
    return (forwarded or request.url.scheme) == "https"


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


@router.post("/setup", summary="Create the admin account (only once)")
async def setup(request: Request, body: CredentialsDep, auth: AuthDep, settings: SettingsDep) -> Response:
    if not await auth.create_admin(body.username, body.password):
        raise HTTPException(status.HTTP_409_CONFLICT, "the admin account exists already; log in instead")
    return _logged_in(request, settings, await auth.new_session(body.username), body.username)


_throttle = LoginThrottle()


@router.post("/login", summary="Log in; sets the session cookie")
async def login(request: Request, body: CredentialsDep, auth: AuthDep, settings: SettingsDep) -> Response:
    client = request.client.host if request.client else "?"
    wait = _throttle.retry_after(client)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try later",
            headers={"Retry-After": str(wait)},
        )
    if not await auth.check_password(body.username, body.password):
        _throttle.failed(client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    _throttle.succeeded(client)
    return _logged_in(request, settings, await auth.new_session(body.username), body.username)


@router.post("/logout", summary="End the session (server-side)")
async def logout(request: Request, user: SessionUser, auth: AuthDep) -> Response:
    await auth.end_session(request.cookies.get(SESSION_COOKIE))
    response: Response = (
        RedirectResponse("/login", status.HTTP_303_SEE_OTHER) if _wants_html(request) else JSONResponse({"ok": True})
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
