"""API tokens: the original's single token (``/token``) and several named ones (``/tokens``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status
from pydantic import BaseModel

from ccr.api.auth import DEFAULT_TOKEN_NAME, TokenInfo
from ccr.api.deps import AuthDep, CurrentUser, SessionUser

router = APIRouter(tags=["tokens"])

TokenName = Annotated[str, Body(embed=True, pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class NewToken(BaseModel):
    token: str
    name: str


class TokenStatus(BaseModel):
    exists: bool
    token: str | None  # masked
    name: str
    created: str | None
    last_used: str | None


@router.post("/token/generate", summary="A new ccr_ token, shown once (replaces the previous one)")
async def generate(user: SessionUser, auth: AuthDep) -> NewToken:
    return NewToken(token=await auth.generate_token(DEFAULT_TOKEN_NAME), name=DEFAULT_TOKEN_NAME)


@router.get("/token", summary="Masked status of the token")
async def token_status(user: CurrentUser, auth: AuthDep) -> TokenStatus:
    return _status(DEFAULT_TOKEN_NAME, {t.name: t for t in await auth.tokens()})


@router.delete("/token", summary="Revoke the token")
async def revoke(user: CurrentUser, auth: AuthDep) -> dict[str, bool]:
    return {"revoked": await auth.revoke_token(DEFAULT_TOKEN_NAME)}


@router.get("/tokens", summary="All named tokens, masked")
async def list_tokens(user: CurrentUser, auth: AuthDep) -> list[TokenStatus]:
    tokens = {t.name: t for t in await auth.tokens()}
    return [_status(name, tokens) for name in tokens]


@router.post("/tokens", summary="A new named token, shown once")
async def create_named(name: TokenName, user: SessionUser, auth: AuthDep) -> NewToken:
    return NewToken(token=await auth.generate_token(name), name=name)


@router.delete("/tokens/{name}", summary="Revoke a named token")
async def revoke_named(name: str, user: CurrentUser, auth: AuthDep) -> dict[str, bool]:
    if not await auth.revoke_token(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such token")
    return {"revoked": True}


def _status(name: str, tokens: dict[str, TokenInfo]) -> TokenStatus:
    info = tokens.get(name)
    if info is None:
        return TokenStatus(exists=False, token=None, name=name, created=None, last_used=None)
    return TokenStatus(exists=True, token=info.masked, name=name, created=info.created, last_used=info.last_used)
