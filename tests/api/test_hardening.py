"""The server under bad input and hostile load, against a real `ccr serve` (issue 10, item 6).

Every bad input gets its documented 4xx, never a 500, with the security headers and without echoing what
was sent; slow or oversized requests are cut off; the server stays small and responsive under floods.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import pytest

from tests.load import MB, Loopers, chunked_upload, latencies, p50, pct, proc_status, reset_peak
from tests.server import ADMIN, CcrServer

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000  # 200 KB, under the body limit: json.loads recurses 100k deep
ODD_ID = 'no-such-task-"><img src=x onerror=alert(1)>'  # no slash: it must reach the route, not miss it
NO_ECHO = ("onerror", "no-such-task")


@dataclass(frozen=True)
class Ready:
    server: CcrServer
    cookie: str
    token: str
    task: str


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CcrServer]:
    """A server nobody has set up (and no case below may set it up)."""
    srv = CcrServer(tmp_path_factory.mktemp("fresh") / "data", env={"CCR_CLAUDE_BIN": "false"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ready]:
    """A server with its admin, a session cookie, a token and one task (claude is `false`: it fails fast)."""
    srv = CcrServer(tmp_path_factory.mktemp("ready") / "data", env={"CCR_CLAUDE_BIN": "false"}).start()
    session = srv.admin_session()
    token = srv.token()
    task = session.post("/task", json={"prompt": "a task to point at", "repo": "acme/widgets"}).json()["id"]
    yield Ready(srv, session.cookies["ccr_session"], token, task)
    session.close()
    srv.stop()


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    expect: int
    on: Literal["fresh", "ready"] = "ready"
    auth: Literal["token", "cookie", None] = None
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes | None = None
    absent: tuple[str, ...] = ()  # must not be in the answer


JSON = {"Content-Type": "application/json"}
CASES = [
    # signatures and tokens from a hostile client: compared as bytes, never a TypeError
    Case(
        "cookie signature with non-ASCII bytes", "GET", "/tasks", 401, headers={"Cookie": b"ccr_session=x.\xc3\xa9\xff"}
    ),
    Case(
        "CSRF token with non-ASCII bytes",
        "POST",
        "/task",
        403,
        auth="cookie",
        headers={**JSON, "X-CSRF-Token": b"\xc3\xa9"},
        body=b'{"prompt": "never stored"}',
    ),
    Case("bearer token with non-ASCII bytes", "GET", "/tasks", 401, headers={"Authorization": b"Bearer ccr_\xc3\xa9"}),
    # bodies that break a naive parser
    Case("100k-deep JSON to /login", "POST", "/login", 422, on="fresh", headers=JSON, body=DEEP_JSON),
    Case("100k-deep JSON to /setup", "POST", "/setup", 422, on="fresh", headers=JSON, body=DEEP_JSON),
    Case("100k-deep JSON to /task", "POST", "/task", 400, auth="token", headers=JSON, body=DEEP_JSON),
    Case(
        "a lone surrogate in a setup password",
        "POST",
        "/setup",
        422,
        on="fresh",
        headers=JSON,
        body=b'{"username": "admin", "password": "\\ud800 and more text"}',
    ),
    Case(
        "a lone surrogate in a login password",
        "POST",
        "/login",
        422,
        on="fresh",
        headers=JSON,
        body=b'{"username": "admin", "password": "\\udfff and more text"}',
    ),
    Case("body over 1 MiB (Content-Length)", "POST", "/task", 413, auth="token", headers=JSON, body=b" " * (2 * MB)),
    # numbers out of range
    Case("Last-Event-ID: ²", "GET", "/task/{task}/events", 422, auth="token", headers={"Last-Event-ID": "²".encode()}),
    Case(
        "Last-Event-ID of 5,000 digits",
        "GET",
        "/task/{task}/events",
        422,
        auth="token",
        headers={"Last-Event-ID": "9" * 5000},
    ),
    Case("?after=10**23 on the logs", "GET", "/task/{task}/logs?after=" + str(10**23), 422, auth="token"),
    Case("?after=10**23 on the events", "GET", "/task/{task}/events?after=" + str(10**23), 422, auth="token"),
    Case("?limit=10**23 on the list", "GET", "/tasks?limit=" + str(10**23), 422, auth="token"),
    # 404s that do not echo what was asked for
    Case("unknown task", "GET", f"/task/{ODD_ID}", 404, auth="token", absent=NO_ECHO),
    Case("cancel of an unknown task", "POST", f"/task/{ODD_ID}/cancel", 404, auth="token", absent=NO_ECHO),
    Case(
        "unknown task page",
        "GET",
        f"/tasks/{ODD_ID}",
        404,
        auth="cookie",
        headers={"Accept": "text/html"},
        absent=NO_ECHO,
    ),
    Case("unknown token", "DELETE", "/tokens/" + ODD_ID, 404, auth="token", absent=NO_ECHO),
    # DNS rebinding: a name that is not this server's
    Case("Host of another site", "GET", "/health", 400, on="fresh", headers={"Host": "rebind.attacker.example"}),
    Case("Host of a rebinding service", "GET", "/tasks", 400, auth="token", headers={"Host": "127.0.0.1.nip.io:7334"}),
    Case(
        "setup through a rebound name",
        "POST",
        "/setup",
        400,
        on="fresh",
        headers={**JSON, "Host": "rebind.attacker.example:7334"},
        body=json.dumps({"username": "mallory", "password": "taken-over-1"}).encode(),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_its_4xx(case: Case, fresh: CcrServer, ready: Ready) -> None:
    server = fresh if case.on == "fresh" else ready.server
    headers: dict[str, str | bytes] = {}
    if case.auth == "token":
        headers["Authorization"] = f"Bearer {ready.token}"
    elif case.auth == "cookie":
        headers["Cookie"] = f"ccr_session={ready.cookie}"
    headers.update(case.headers)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.request(case.method, case.path.format(task=ready.task), headers=headers, content=case.body)
    assert response.status_code == case.expect, response.text[:300]
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    for text in case.absent:
        assert text not in response.text
    assert httpx.get(server.url + "/health").status_code == 200


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(ready: Ready) -> None:
    def body() -> Iterator[bytes]:  # a generator: httpx sends it chunked, with no Content-Length
        for _ in range(64):
            yield b" " * (32 * 1024)

    with ready.server.client(headers={"Authorization": f"Bearer {ready.token}", **JSON}) as client:
        response = client.post("/task", content=body())
    assert response.status_code == 413 and response.headers["connection"] == "close"
    assert "content-security-policy" in response.headers


def test_a_rebound_name_cannot_claim_the_admin_of_a_fresh_server(fresh: CcrServer) -> None:
    with fresh.client() as client:
        evil = {"Host": "rebind.attacker.example", "Origin": "http://rebind.attacker.example"}
        assert (
            client.post("/setup", json={"username": "mallory", "password": "taken-over-1"}, headers=evil).status_code
            == 400
        )
        page = client.get("/setup", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 200  # still waiting for its owner
        for host in ("localhost", f"localhost:{fresh.port}", f"[::1]:{fresh.port}", "192.0.2.77"):
            assert client.get("/health", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_are_the_users_names_and_subdomains(tmp_path: Path) -> None:
    srv = CcrServer(tmp_path / "data", env={"CCR_ALLOWED_HOSTS": "ccr.home.example, *.lan"}).start()
    try:
        with srv.client() as client:
            for host, code in (("ccr.home.example", 200), ("box.lan:7334", 200), ("lan", 400), ("other.example", 400)):
                assert client.get("/health", headers={"Host": host}).status_code == code, host
    finally:
        srv.stop()


def test_a_500_carries_the_security_headers(tmp_path: Path) -> None:
    """A real failure: another process holds auth.db's write lock past the server's 5 s busy timeout."""
    srv = CcrServer(tmp_path / "data", env={"CCR_CLAUDE_BIN": "false"}).start()
    try:
        srv.admin_session().close()
        locker = sqlite3.connect(srv.data_dir / "auth.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            with srv.client() as client:
                response = client.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert response.status_code == 500
        for name in SECURITY_HEADERS:
            assert name in response.headers, name
        with srv.client() as client:  # and the server is fine again once the lock is gone
            assert client.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 200
    finally:
        srv.stop()


# --- load ----------------------------------------------------------------------------------------------
def test_rss_stays_small_through_a_150_mb_chunked_upload(fresh: CcrServer) -> None:
    assert fresh.process
    pid = fresh.process.pid
    before = proc_status(pid, "VmRSS")
    reset_peak(pid)
    upload = chunked_upload(fresh.port, "/login", 150 * MB)
    peak = proc_status(pid, "VmHWM")
    print(f"\n150 MB chunked POST /login: {upload.status} after {upload.sent / MB:.1f} MB")
    print(f"server RSS {before:.1f} MB before, peak {peak:.1f} MB")
    assert upload.status == 413
    assert upload.sent < 20 * MB  # cut off near the 1 MiB limit, not drained
    assert peak < 150
    assert httpx.get(fresh.url + "/health").status_code == 200


def test_health_stays_fast_while_8_clients_loop_on_setup(ready: Ready) -> None:
    body = json.dumps({"username": ADMIN[0], "password": ADMIN[1]}).encode()
    idle = latencies(ready.server.port, "/health", 50)
    with Loopers(ready.server.port, "/setup", body, n=8) as loopers:
        busy = latencies(ready.server.port, "/health", 100)
    print(f"\n/health p50 idle {p50(idle):.1f} ms; with 8 /setup loops p50 {p50(busy):.1f} ms")
    print(f"p95 {pct(busy, 0.95):.1f} ms; /setup answers {loopers.statuses}")
    assert set(loopers.statuses) == {409} and loopers.requests >= 8  # every loop was answered, never a 500
    assert p50(busy) < 20


def test_failed_logins_are_counted_atomically(tmp_path: Path) -> None:
    srv = CcrServer(tmp_path / "data", env={"CCR_CLAUDE_BIN": "false"}).start()
    try:
        srv.admin_session().close()

        def wrong(_: int) -> int:
            with srv.client() as client:
                return client.post("/login", json={"username": ADMIN[0], "password": "wrong password"}).status_code

        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(wrong, range(40)))
        assert codes.count(401) == 5 and codes.count(429) == 35, codes  # 5 passwords evaluated, not more
    finally:
        srv.stop()


@pytest.mark.parametrize("trusted", [False, True], ids=["default", "CCR_TRUSTED_PROXIES=127.0.0.1"])
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path, trusted: bool) -> None:
    env = {"CCR_CLAUDE_BIN": "false", **({"CCR_TRUSTED_PROXIES": "127.0.0.1"} if trusted else {})}
    srv = CcrServer(tmp_path / "data", env=env).start()
    try:
        srv.admin_session().close()
        with srv.client() as client:
            codes = [
                client.post(
                    "/login",
                    json={"username": ADMIN[0], "password": "wrong password"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                ).status_code
                for i in range(6)
            ]
        # untrusted: one client (127.0.0.1) whatever it claims; trusted: six clients behind the proxy
        assert codes == ([401] * 6 if trusted else [401] * 5 + [429])
    finally:
        srv.stop()


# --- slow and oversized requests ----------------------------------------------------------------------------
@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[CcrServer]:
    env = {"CCR_HEADER_TIMEOUT_SECONDS": "1", "CCR_BODY_TIMEOUT_SECONDS": "2"}
    srv = CcrServer(tmp_path / "data", env=env).start()
    yield srv
    srv.stop()


def _answer_and_close(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed it."""
    start, data = time.monotonic(), b""
    sock.settimeout(within)
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - start


def test_half_sent_headers_time_out(impatient: CcrServer) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as idle:  # connects, says nothing
        data, seconds = _answer_and_close(idle, 15)
    assert data.startswith(b"HTTP/1.1 408") and seconds < 10

    with socket.create_connection(("127.0.0.1", impatient.port)) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        start = time.monotonic()
        slow.settimeout(0.2)
        data = b""
        while time.monotonic() - start < 15:  # one more header byte every 0.2 s: still cut at the deadline
            try:
                slow.sendall(b"X")
                data += slow.recv(65536)
                if data:
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        seconds = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408") and seconds < 10


def test_a_half_sent_body_times_out(impatient: CcrServer) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username":'
        )
        data, seconds = _answer_and_close(sock, 15)
    assert data.startswith(b"HTTP/1.1 408") and seconds < 10


def test_headers_over_64_kib_are_refused(impatient: CcrServer) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"a" * (100 * 1024) + b"\r\n\r\n")
        data, _ = _answer_and_close(sock, 15)
    assert data.startswith(b"HTTP/1.1 431")


def test_kept_alive_connections_still_work(impatient: CcrServer) -> None:
    """The header deadline runs per request: an idle pause between requests is the keep-alive's business."""
    with httpx.Client(base_url=impatient.url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
            time.sleep(1.5)  # longer than the 1 s header timeout, shorter than uvicorn's 5 s keep-alive
        assert client.get("/health").status_code == 200


# --- the first-run setup code ---------------------------------------------------------------------------------
@pytest.fixture
def lan_server(tmp_path: Path) -> Iterator[CcrServer]:
    """Bound to 0.0.0.0, as `ccr serve` is by default: reachable from the network, so /setup needs the code."""
    srv = CcrServer(tmp_path / "data", env={"CCR_CLAUDE_BIN": "false"}, host="0.0.0.0").start()
    yield srv
    srv.stop()


def test_setup_beyond_loopback_needs_the_code_from_the_log(lan_server: CcrServer) -> None:
    code = lan_server.setup_code()
    assert code and "setup code" in lan_server.log.read_text()
    credentials = {"username": ADMIN[0], "password": ADMIN[1]}
    with lan_server.client() as client:
        page = client.get("/setup", headers={"Accept": "text/html"})
        assert page.status_code == 200 and 'name="setup_code"' in page.text and code not in page.text
        assert client.post("/setup", json=credentials).status_code == 403
        assert client.post("/setup", json={**credentials, "setup_code": "0000-0000-0000-0000"}).status_code == 403
        assert client.get("/setup", headers={"Accept": "text/html"}, follow_redirects=False).status_code == 200
        assert client.post("/setup", json={**credentials, "setup_code": f" {code} "}).status_code == 200
        assert client.post("/setup", json={**credentials, "setup_code": code}).status_code == 409  # once only
        # the machine's own name reaches it too, as a LAN user would
        hostname = socket.gethostname()
        assert client.get("/health", headers={"Host": f"{hostname}:{lan_server.port}"}).status_code == 200
        assert client.get("/health", headers={"Host": f"{hostname.split('.')[0]}.local"}).status_code == 200


def test_wrong_setup_codes_are_throttled(lan_server: CcrServer) -> None:
    credentials = {"username": ADMIN[0], "password": ADMIN[1]}
    with lan_server.client() as client:
        for i in range(5):
            assert client.post("/setup", json={**credentials, "setup_code": f"guess-{i}"}).status_code == 403
        blocked = client.post("/setup", json={**credentials, "setup_code": lan_server.setup_code()})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


def test_a_loopback_server_needs_no_setup_code(fresh: CcrServer) -> None:
    assert fresh.setup_code() is None
    page = httpx.get(fresh.url + "/setup", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'name="setup_code"' not in page.text
