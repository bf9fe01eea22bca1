"""Load a real `ccr serve` the way a hostile client would, and measure what it costs the server.

Shared by the hardening tests (pass/fail bounds) and `bench/bench_hardening.py` (the numbers).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


def proc_status(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field in MB (``VmRSS`` now, ``VmHWM`` the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Start ``VmHWM`` again from the current RSS (proc(5), clear_refs), so the next peak is the next load's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass(frozen=True)
class Upload:
    status: int | None  # the server's answer, None if it closed without one
    sent: int  # body bytes written before the answer (or the close)
    seconds: float


def chunked_upload(port: int, path: str, total: int, chunk: int = 64 * 1024, host: str = "127.0.0.1") -> Upload:
    """POST ``total`` bytes with ``Transfer-Encoding: chunked`` (no Content-Length), reading the answer as soon
    as the server gives one, as a client that never stops sending would."""
    sock = socket.create_connection((host, port), timeout=60)
    start = time.monotonic()
    sent = 0
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = f"{chunk:x}\r\n".encode() + b"[" * chunk + b"\r\n"
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if writable:
                try:
                    sock.sendall(piece)
                except OSError:  # the server closed the connection: its answer may be waiting
                    break
                sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
        return Upload(_status(sock), sent, time.monotonic() - start)
    finally:
        sock.close()


def _status(sock: socket.socket) -> int | None:
    sock.settimeout(30)
    try:
        head = sock.recv(4096)
    except OSError:
        return None
    if not head.startswith(b"HTTP/1.1 "):
        return None
    return int(head.split(b" ", 2)[1])


def latencies(port: int, path: str, samples: int, interval: float = 0.01) -> list[float]:
    """Milliseconds of ``samples`` GETs of ``path`` on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            out.append((time.perf_counter() - t0) * 1000)
            assert response.status == 200, response.status
            time.sleep(interval)
    finally:
        conn.close()
    return out


class Loopers:
    """``n`` clients, each POSTing ``body`` to ``path`` in a loop on its own keep-alive connection.

    They run in a child process, so their work does not compete with the measuring client for this
    interpreter's lock; ``statuses`` counts the answers once they stopped.
    """

    def __init__(self, port: int, path: str, body: bytes, n: int = 8) -> None:
        self.args = [str(port), path, body.decode(), str(n)]
        self.statuses: dict[int, int] = {}
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> Loopers:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.load", *self.args],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout
        assert self._child.stdout.readline().strip() == "looping"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._child
        out, _ = self._child.communicate("", timeout=120)  # EOF on stdin: stop
        self.statuses = {int(k): v for k, v in json.loads(out).items()}

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _loop(port: int, path: str, body: bytes, stop: threading.Event, statuses: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    while not stop.is_set():
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status = 0
        statuses.append(status)  # list.append is atomic
    conn.close()


def _loopers_main(port: str, path: str, body: str, n: str) -> None:
    stop = threading.Event()
    statuses: list[int] = []
    threads = [
        threading.Thread(target=_loop, args=(int(port), path, body.encode(), stop, statuses)) for _ in range(int(n))
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every loop is under way
    print("looping", flush=True)
    sys.stdin.read()
    stop.set()
    for thread in threads:
        thread.join(60)
    print(json.dumps({str(code): statuses.count(code) for code in set(statuses)}))


def p50(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


if __name__ == "__main__":
    _loopers_main(*sys.argv[1:])
