"""A real `ccr serve` in a subprocess, on a free port, for tests that speak HTTP to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN = ("admin", "correct horse battery")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CcrServer:
    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None, host: str = "127.0.0.1"
    ) -> None:
        """``host`` is the bind address; clients always connect through 127.0.0.1 (``url``)."""
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.env.pop("CCR_BACKEND", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self) -> CcrServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ccr",
                "serve",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ccr serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"ccr serve did not answer in 30 s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the server only (as a crash would); its children get their death signal."""
        assert self.process
        self.process.kill()
        self.process.wait()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def setup_code(self) -> str | None:
        """The first-run setup code the server printed to its log (only beyond loopback)."""
        for line in reversed(self.log.read_text().splitlines()):  # the latest start's
            if line.startswith("{") and "setup_code" in line:
                return str(json.loads(line)["setup_code"])
        return None

    def admin_session(self) -> httpx.Client:
        """A client logged in as the admin (set up on first use), sending the Origin a browser would."""
        client = self.client(headers={"Origin": self.url})
        setup = {"username": ADMIN[0], "password": ADMIN[1], "setup_code": self.setup_code()}
        response = client.post("/setup", json=setup)
        if response.status_code == 409:
            response = client.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        response.raise_for_status()
        return client

    def token(self) -> str:
        session = self.admin_session()
        try:
            response = session.post("/token/generate")
            response.raise_for_status()
            return str(response.json()["token"])
        finally:
            session.close()
