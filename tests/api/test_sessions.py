"""The thread sessions the API keeps for cluster mode's job pods: one token opens one thread's session."""

from __future__ import annotations

from pathlib import Path

import httpx

from ccr.core import sessions
from tests.server import CcrServer

KEY = "test-session-key-0123456789abcdef"


def test_a_pod_keeps_and_fetches_its_threads_session_and_nothing_else(tmp_path: Path) -> None:
    server = CcrServer(tmp_path / "data", env={"CCR_SESSION_KEY": KEY}).start()
    try:
        url = f"{server.url}/internal/sessions/ns1/abc123"
        mine = {"Authorization": f"Bearer {sessions.token_for(KEY, 'ns1', 'abc123')}"}
        other = {"Authorization": f"Bearer {sessions.token_for(KEY, 'ns1', 'zzz999')}"}
        body = b'{"type":"user","message":"hello"}\n' * 1000
        assert httpx.get(url, headers=mine).status_code == 404  # nothing kept yet
        assert httpx.put(url, content=body, headers=mine).status_code == 204
        assert httpx.get(url, headers=mine).content == body
        stored = tmp_path / "data" / "sessions" / "ns1" / "abc123.jsonl"
        assert stored.read_bytes() == body and stored.stat().st_mode & 0o777 == 0o600
        wrong = [{}, other, {"Authorization": "Bearer " + "0" * 64}, {"Authorization": "Bearer ²".encode("latin-1")}]
        for headers in wrong:
            assert httpx.get(url, headers=headers).status_code == 401
            assert httpx.put(url, content=b"x", headers=headers).status_code == 401
        assert stored.read_bytes() == body  # untouched
        for bad in ("..%2Fx", "UPPER", "a" * 300):
            assert httpx.get(f"{server.url}/internal/sessions/ns1/{bad}", headers=mine).status_code == 404
        huge = b"x" * (32 * 1024 * 1024 + 1)
        assert httpx.put(url, content=huge, headers=mine, timeout=60).status_code == 413
        assert stored.read_bytes() == body
    finally:
        server.stop()


def test_without_a_session_key_the_routes_are_off(tmp_path: Path) -> None:
    server = CcrServer(tmp_path / "data").start()
    try:
        token = sessions.token_for(KEY, "ns1", "abc123")
        response = httpx.get(f"{server.url}/internal/sessions/ns1/abc123", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 404
    finally:
        server.stop()
