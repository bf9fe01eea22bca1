"""Setup, login, sessions, CSRF, throttling and tokens against a real `ccr serve`."""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
from pathlib import Path

import bcrypt
import httpx

from tests.server import ADMIN, CcrServer


def test_every_page_redirects_to_setup_until_the_admin_exists(server: CcrServer) -> None:
    with server.client(follow_redirects=False) as client:
        for path in ("/", "/tasks", "/login"):
            response = client.get(path, headers={"Accept": "text/html"})
            assert response.status_code == 303, path
            assert response.headers["location"] == "/setup"
        assert client.get("/health").status_code == 200
        assert client.get("/tasks").status_code == 401  # the API itself answers 401, not a page


def test_fifty_concurrent_setups_create_exactly_one_admin(server: CcrServer) -> None:
    def attempt(i: int) -> int:
        with server.client() as client:
            return client.post("/setup", json={"username": f"user{i}", "password": f"password-{i:04d}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(attempt, range(50)))
    assert codes.count(200) == 1
    assert codes.count(409) == 49
    db = sqlite3.connect(server.data_dir / "auth.db")
    assert db.execute("SELECT count(*) FROM admin").fetchone()[0] == 1


def test_setup_validates_and_never_truncates(server: CcrServer) -> None:
    with server.client() as client:
        short = client.post("/setup", json={"username": "admin", "password": "short"})
        assert short.status_code == 422 and "password" in short.text
        long = client.post("/setup", json={"username": "admin", "password": "x" * 1025})
        assert long.status_code == 422
        form = client.post("/setup", data={"username": "admin", "password": "p" * 100}, follow_redirects=False)
        assert form.status_code == 303 and form.headers["location"] == "/"
        cookie = form.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        # 100 characters means 100: the same password cut at 72 (bcrypt's limit) must not log in.
        assert client.post("/login", json={"username": "admin", "password": "p" * 72}).status_code == 401
        assert client.post("/login", json={"username": "admin", "password": "p" * 100}).status_code == 200


def test_secure_cookie_behind_tls_proxy(tmp_path) -> None:
    """X-Forwarded-Proto counts only from a trusted proxy, and no address is trusted by default."""
    untrusting = CcrServer(tmp_path / "plain").start()
    try:
        with untrusting.client() as client:
            response = client.post(
                "/setup", json={"username": ADMIN[0], "password": ADMIN[1]}, headers={"X-Forwarded-Proto": "https"}
            )
            assert response.status_code == 200 and "Secure" not in response.headers["set-cookie"]
    finally:
        untrusting.stop()
    behind_proxy = CcrServer(tmp_path / "proxied", env={"CCR_TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        with behind_proxy.client() as client:
            response = client.post(
                "/setup", json={"username": ADMIN[0], "password": ADMIN[1]}, headers={"X-Forwarded-Proto": "https"}
            )
            assert response.status_code == 200 and "Secure" in response.headers["set-cookie"]
    finally:
        behind_proxy.stop()


def test_logout_revokes_the_session_server_side(server: CcrServer) -> None:
    session = server.admin_session()
    cookie = session.cookies.get("ccr_session")
    assert session.get("/tasks").status_code == 200
    assert session.post("/logout").status_code == 200
    with server.client() as thief:  # the cookie copied before logout no longer works
        thief.cookies.set("ccr_session", cookie)
        assert thief.get("/tasks").status_code == 401


def test_cookie_writes_need_same_origin_or_csrf_token(server: CcrServer) -> None:
    session = server.admin_session()
    cookie = session.cookies.get("ccr_session")
    with server.client() as browser:
        browser.cookies.set("ccr_session", cookie)
        evil = browser.post("/task", json={"prompt": "x"}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        cross = browser.post("/task", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        bare = browser.post("/task", json={"prompt": "x"})  # no Origin, no token: refused
        assert bare.status_code == 403
        assert browser.post("/task", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert json.loads(session.get("/tasks").text).__len__() == 1  # only the same-origin write landed


def test_failed_logins_are_throttled(server: CcrServer) -> None:
    server.admin_session().close()
    with server.client() as client:
        codes = [
            client.post("/login", json={"username": "admin", "password": "wrong-password"}).status_code
            for _ in range(5)
        ]
        assert codes == [401] * 5
        blocked = client.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0


def test_tokens_are_minted_by_sessions_only_and_stored_hashed(server: CcrServer) -> None:
    token = server.token()
    assert token.startswith("ccr_") and len(token) > 30
    auth = {"Authorization": f"Bearer {token}"}
    with server.client() as client:
        assert client.post("/token/generate", headers=auth).status_code == 401  # a token cannot mint tokens
        status = client.get("/token", headers=auth).json()
        assert status["exists"] is True and token not in json.dumps(status) and status["token"].startswith("ccr_")
        assert client.get("/token").status_code == 401
        assert client.delete("/token").status_code == 401
        assert client.get("/tasks", headers={"Authorization": "Bearer ccr_wrong"}).status_code == 401
        stored = (server.data_dir / "auth.db").read_bytes()
        assert token.encode() not in stored
        assert client.delete("/token", headers=auth).json() == {"revoked": True}
        assert client.get("/tasks", headers=auth).status_code == 401


def test_generate_replaces_the_previous_token(server: CcrServer) -> None:
    first, second = server.token(), server.token()
    with server.client() as client:
        assert client.get("/tasks", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        assert client.get("/tasks", headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_original_bcrypt_auth_json_verifies_and_is_upgraded(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    legacy = bcrypt.hashpw(b"old-password-1", bcrypt.gensalt(rounds=4)).decode()
    assert legacy.startswith("$2b$")
    (data / "auth.json").write_text(json.dumps({"username": "olduser", "password_hash": legacy}))
    srv = CcrServer(data).start()
    try:
        with srv.client() as client:
            assert client.post("/setup", json={"username": "x", "password": "password123"}).status_code == 409
            assert client.post("/login", json={"username": "olduser", "password": "old-password-1"}).status_code == 200
        stored = sqlite3.connect(data / "auth.db").execute("SELECT password_hash FROM admin").fetchone()[0]
        assert stored.startswith("$argon2"), "the bcrypt hash is upgraded on login"
        with srv.client() as client:
            assert client.post("/login", json={"username": "olduser", "password": "old-password-1"}).status_code == 200
    finally:
        srv.stop()


def test_session_secret_is_honoured(tmp_path) -> None:
    secret = "a-session-secret-of-enough-length"
    first = CcrServer(tmp_path / "data", env={"SESSION_SECRET": secret}).start()
    cookie = first.admin_session().cookies.get("ccr_session")
    first.stop()
    again = CcrServer(tmp_path / "data", env={"SESSION_SECRET": secret}).start()
    other = None
    try:
        with again.client(cookies={"ccr_session": cookie}) as client:
            assert client.get("/tasks").status_code == 200
        again.stop()
        other = CcrServer(tmp_path / "data", env={"SESSION_SECRET": "another-secret-of-enough-length"}).start()
        with other.client(cookies={"ccr_session": cookie}) as client:
            assert client.get("/tasks").status_code == 401
    finally:
        again.stop()
        if other:
            other.stop()


def test_placeholder_session_secret_is_refused(tmp_path) -> None:
    srv = CcrServer(tmp_path / "data", env={"SESSION_SECRET": "changeme"})
    try:
        srv.start()
        raise AssertionError("the server started with a placeholder secret")
    except RuntimeError as exc:
        assert "SESSION_SECRET" in str(exc)
    finally:
        srv.stop()


def test_openapi_docs_are_served_without_a_cdn(server: CcrServer) -> None:
    with server.client() as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "cdn.jsdelivr" not in docs.text
        paths = client.get("/openapi.json").json()["paths"]
        for path in (
            "/task",
            "/task/{task_id}",
            "/task/{task_id}/logs",
            "/tasks",
            "/health",
            "/token/generate",
            "/token",
            "/task/{task_id}/cancel",
            "/task/{task_id}/retry",
        ):
            assert path in paths
        health = httpx.get(server.url + "/health").json()
        assert health["ok"] is True and health["tasks"] == 0 and health["running"] == 0


# The original runner hashed with bcryptjs 2.4.3 (cost 12, `$2a$`), which keys bcrypt with the first 72 bytes of
# the UTF-8 password. Made with that very library (node, `npm install bcryptjs@2.4.3`):
#   require("bcryptjs").hashSync(LONG_PASSWORD, 12)
# and, with it, compareSync(LONG_PASSWORD.slice(0, 71) + "è tail", hash) is true too: byte 72 of the password
# is the first byte of "é" (0xC3), which "è" shares.
LONG_PASSWORD = "the original runner hashed this passphrase with bcryptjs 2.4.3 .... café au lait, beyond 72 bytes"
BCRYPTJS_HASH = "$2a$12$McbbcnE3IC8et1AyfD3F3u8oR9EO6M.ENm5VC0VKqpGdZitRYMT6G"
SAME_72_BYTES = LONG_PASSWORD[:71] + "è tail"


def _original_runner(data: Path) -> CcrServer:
    data.mkdir(parents=True)
    (data / "auth.json").write_text(json.dumps({"username": "olduser", "passwordHash": BCRYPTJS_HASH}, indent=2))
    return CcrServer(data).start()


def _login(srv: CcrServer, password: str) -> int:
    with srv.client() as client:
        return client.post("/login", json={"username": "olduser", "password": password}).status_code


def _stored_hash(data: Path) -> str:
    return str(sqlite3.connect(data / "auth.db").execute("SELECT password_hash FROM admin").fetchone()[0])


def test_a_legacy_password_over_72_bytes_logs_in_then_only_in_full(tmp_path: Path) -> None:
    assert len(LONG_PASSWORD.encode()) == 98 and LONG_PASSWORD.encode()[71:73] == "é".encode()
    srv = _original_runner(tmp_path / "data")
    try:
        assert _login(srv, LONG_PASSWORD[:60] + " but then another ending") == 401  # differs within 72 bytes
        assert _stored_hash(srv.data_dir) == BCRYPTJS_HASH
        assert _login(srv, LONG_PASSWORD) == 200  # as the original verified it
        assert _stored_hash(srv.data_dir).startswith("$argon2"), "upgraded at that login"
        assert _login(srv, LONG_PASSWORD) == 200
        assert _login(srv, SAME_72_BYTES) == 401  # from now on the whole password counts
        assert _login(srv, LONG_PASSWORD.encode()[:72].decode(errors="ignore")) == 401
    finally:
        srv.stop()


def test_a_legacy_hash_accepts_what_bcryptjs_accepted_until_the_upgrade(tmp_path: Path) -> None:
    """The same 72 bytes verified in the original, so they verify once here; the password given then is kept."""
    srv = _original_runner(tmp_path / "data")
    try:
        assert _login(srv, SAME_72_BYTES) == 200
        assert _stored_hash(srv.data_dir).startswith("$argon2")
        assert _login(srv, SAME_72_BYTES) == 200 and _login(srv, LONG_PASSWORD) == 401
    finally:
        srv.stop()
