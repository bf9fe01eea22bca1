"""What every request meets before any route, as plain ASGI middleware.

Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware costs about 40% of a small
request. The guard sits outermost, outside Starlette's own ServerErrorMiddleware, so a 500 leaves with the
same security headers as every other answer.

- **Host allowlist** against DNS rebinding: a page on ``evil.example`` whose name is re-pointed at this
  server makes the browser send ``Host: evil.example``. Such a request is refused with 400 before it
  reaches a route (it could otherwise claim the admin account of a fresh server, or read the API with the
  victim's cookie). IP literals always pass: a browser sends one only to the address it connected to, which
  no DNS answer can change.
- **The first-run redirect**: before the admin exists, pages redirect to ``/setup``.
- **Security headers** on every answer: the CSP (a looser one for ``/docs``, whose Swagger UI starts with an
  inline script), nosniff, no framing, no referrer to other sites. A 413 also closes the connection, so a
  client that keeps sending is cut off instead of drained.

The body limit itself is FastAPI's own ``max_body_size`` (also for chunked bodies: bytes are counted as they
are read, never buffered beyond the limit); see :func:`ccr.api.app.create_app`.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Swagger UI (served from the package, no CDN) starts itself with an inline script.
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
# Paths a browser may open before the admin exists.
OPEN_PATHS = ("/setup", "/health", "/static/", "/docs", "/openapi.json", "/metrics")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(bind: str) -> bool:
    """Does a server bound to ``bind`` listen on loopback only? (``0.0.0.0``, ``::``, a LAN address: no.)"""
    if bind.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, treat it as reachable from outside


def host_name(header: str) -> str:
    """The name of a Host header, without port, brackets or a trailing dot, lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, _, port = value.rpartition(":")
    if name and port.isdigit():
        value = name
    return value.rstrip(".")


@dataclass(frozen=True)
class HostPolicy:
    """Which Host headers this server answers to."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()  # ".example.com" for "*.example.com"
    any_host: bool = False  # "*": the check is off

    @classmethod
    def for_server(cls, bind: str, allowed: str) -> HostPolicy:
        """Loopback names; the machine's own names when bound beyond loopback; then what the user lists."""
        names = set(LOOPBACK_NAMES)
        if not is_loopback(bind):
            hostname = socket.gethostname().lower()
            short = hostname.split(".")[0]
            names |= {hostname, short, f"{short}.local"}  # .local: mDNS (Avahi, Bonjour) on a home LAN
            names.add(host_name(bind))
        suffixes: list[str] = []
        any_host = False
        for item in (part.strip().lower() for part in allowed.split(",")):
            if item == "*":
                any_host = True
            elif item.startswith("*."):
                suffixes.append(item[1:].rstrip("."))
            elif item:
                names.add(host_name(item))
        return cls(frozenset(n for n in names if n), tuple(suffixes), any_host)

    def allows(self, header: str | None) -> bool:
        if self.any_host or not header:  # no Host at all: not a browser (they always send one)
            return True
        name = host_name(header)
        if name in self.names or name.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


class Guard:
    def __init__(self, app: ASGIApp, hosts: HostPolicy, needs_setup: Callable[[], bool]) -> None:
        self.app = app
        self.hosts = hosts
        self.needs_setup = needs_setup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path.startswith("/docs") else CSP

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", csp)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if message["status"] == 413:  # stop reading what is left of a body we refused
                    headers["connection"] = "close"
            await send(message)

        request = Headers(scope=scope)
        if not self.hosts.allows(request.get("host")):
            log.warning("refused a request for a host not in CCR_ALLOWED_HOSTS", extra={"host": request["host"][:100]})
            detail = "this server does not answer to that host name; add it to CCR_ALLOWED_HOSTS"
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, secured)
            return
        if (
            scope["method"] == "GET"
            and "text/html" in request.get("accept", "")
            and not path.startswith(OPEN_PATHS)
            and self.needs_setup()
        ):
            await RedirectResponse("/setup", 303)(scope, receive, secured)
            return
        await self.app(scope, receive, secured)
