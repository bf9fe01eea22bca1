"""``ccr serve``: uvicorn, with what it lacks against slow or oversized requests.

uvicorn has a keep-alive timeout (idle time between requests) and nothing else for request receipt: a client
that sends half a request line and then one byte a minute holds its connection and memory for ever, and
httptools parses a header of any length (uvicorn's ``h11_max_incomplete_event_size`` covers only h11). Its
issue #157 lists the missing ``--timeout-request-start``/``--timeout-request-complete``. So this protocol
adds two deadlines and a size cap:

- the request line and headers must arrive within ``CCR_HEADER_TIMEOUT_SECONDS`` (20) of the connection
  opening or of the request's first byte, and within 64 KiB; else 408 or 431, and the connection closes;
- the body must arrive within ``CCR_BODY_TIMEOUT_SECONDS`` (60) after the headers, else 408 (when nothing
  was answered yet) and the connection closes. Its size is the application's limit (1 MiB, 413).

Forwarded headers (``X-Forwarded-For``/``-Proto``) are believed only from ``CCR_TRUSTED_PROXIES``: none by
default, since any local process could otherwise rotate ``X-Forwarded-For`` past the login throttle.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ccr.core.settings import Settings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; browsers send a few KiB


def _answer(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nx-content-type-options: nosniff\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's head and body, and a cap on the head."""

    header_timeout = 20.0
    body_timeout = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started and not self._in_head
        if not answered:
            self.transport.write(_answer(b"408 Request Timeout", f"the request {what} took too long\n".encode()))
        self.transport.close()

    # --- connection and parser callbacks -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._deadline is None:  # the next request on a kept-alive connection: its head's clock starts
            self._arm(self.header_timeout, "headers")

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response below

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        if self._head_bytes > MAX_HEAD_BYTES:
            self.transport.write(_answer(b"431 Request Header Fields Too Large", b"request headers over 64 KiB\n"))
            self.transport.close()
            return
        super().send_400_response(msg)


class _HeadTooLarge(Exception):
    pass


def serve(settings: Settings, app: FastAPI) -> None:
    """``ccr serve``: ``app`` on uvicorn with the host and port of ``settings``, guarded as above."""

    class Protocol(GuardedHttpProtocol):
        header_timeout = settings.header_timeout_seconds
        body_timeout = settings.body_timeout_seconds

    os.umask(0o077)  # whatever the server (and the tasks it starts) creates is its user's alone
    proxies = settings.trusted_proxies.strip()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        http=Protocol,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
