"""The data directory is the server user's alone (issue 10, item 7), on a real `ccr serve` that has run a task."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from tests.conftest import REPO
from tests.server import CcrServer

PRIVATE_FILES = ("auth.db", "auth.db-wal", "auth.db-shm", "ccr.db", "ccr.db-wal", "ccr.db-shm", "session_secret")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def ran_a_task(srv: CcrServer) -> str:
    client = srv.admin_session()
    try:
        task = client.post("/task", json={"prompt": "fix the README", "repo": REPO}).json()["id"]
        deadline = time.monotonic() + 120
        while client.get(f"/task/{task}").json()["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, "the task did not finish"
            time.sleep(0.2)
        assert client.get(f"/task/{task}").json()["status"] == "completed"
    finally:
        client.close()
    return str(task)


def assert_private(data: Path, task: str) -> None:
    assert mode(data) == 0o700
    for name in PRIVATE_FILES:  # the -wal/-shm files exist while the server runs
        assert mode(data / name) == 0o600, name
    for name in ("tasks", "work", f"tasks/{task}"):
        assert mode(data / name) == 0o700, name
    assert mode(data / "tasks" / task / "spec.json") == 0o600
    shared = [p for p in data.rglob("*") if not p.is_symlink() and mode(p) & 0o077]
    assert shared == [], f"readable or writable by others: {shared[:5]}"


def test_the_data_directory_is_private_after_a_task(local_server: CcrServer) -> None:
    task = ran_a_task(local_server)
    assert_private(local_server.data_dir, task)


def test_an_older_data_directory_is_made_private_at_start(tmp_path: Path, local_env: dict[str, str]) -> None:
    """What an older version left (0755 directories, 0644 databases and WAL): private again after a restart."""
    data = tmp_path / "data"
    srv = CcrServer(data, env=local_env).start()
    task = ran_a_task(srv)
    srv.kill()  # killed, as a crash would: its -wal and -shm files stay behind
    assert (data / "auth.db-wal").exists() and (data / "ccr.db-shm").exists()
    for path in [data, *data.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    srv = CcrServer(data, env=local_env).start()
    try:
        assert mode(data) == 0o700
        for name in PRIVATE_FILES:
            assert mode(data / name) == 0o600, name
        for name in ("tasks", "work"):
            assert mode(data / name) == 0o700, name
        client = srv.admin_session()  # and it still works, with what the killed server wrote
        assert client.get(f"/task/{task}").json()["status"] == "completed"
        client.close()
    finally:
        srv.stop()
