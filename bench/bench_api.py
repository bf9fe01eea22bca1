"""API benchmark: `ccr serve` in its own process, one keep-alive client connection from this one.

Targets (issue 2): with 1,000 stored tasks, GET /tasks p50 < 10 ms and POST /task p50 < 10 ms (the task is
durably stored before the answer); idle server RSS < 120 MB.

    python bench/bench_api.py [--tasks 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import CcrServer  # noqa: E402

from ccr.core.model import JobResult, Phase, TaskSpec, Usage  # noqa: E402
from ccr.local.store import LocalStore  # noqa: E402


async def seed(data_dir: Path, n: int) -> None:
    """n finished tasks, as a server that has been used for a while holds them."""
    store = LocalStore(data_dir)
    for i in range(n):
        spec = TaskSpec(prompt=f"In acme/widgets, fix bug number {i}: " + "details " * 30, repo="acme/widgets")
        await store.create(f"seed{i:06d}", spec)
        await store.finish(
            f"seed{i:06d}",
            JobResult(
                status=Phase.SUCCEEDED,
                pr_url=f"https://github.com/acme/widgets/pull/{i}",
                usage=Usage(cost_usd=0.05, turns=4, duration_ms=60_000),
            ),
        )
    await store.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ccr-bench-")) / "data"
    asyncio.run(seed(data, args.tasks))
    # Tasks submitted here fail at once in preflight (no credentials): the executor's work stays small.
    server = CcrServer(data, env={"CCR_CLAUDE_BIN": "false", "GITHUB_TOKEN": "", "CCR_MAX_CONCURRENT": "1"}).start()
    try:
        time.sleep(2)
        assert server.process
        idle = rss_mb(server.process.pid)
        token = server.token()
        with server.client(headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(20):
                client.get("/tasks")
            gets = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                response = client.get("/tasks")
                gets.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200 and len(response.json()) >= args.tasks
            posts = []
            for i in range(args.requests):
                t0 = time.perf_counter()
                response = client.post("/task", json={"prompt": f"benchmark task {i}", "repo": "acme/widgets"})
                posts.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
        busy = rss_mb(server.process.pid)
    finally:
        server.stop()
    print(f"stored tasks: {args.tasks}, requests each: {args.requests}, one keep-alive connection")
    print(f"GET /tasks   p50 {statistics.median(gets):6.2f} ms  p90 {pct(gets, 0.9):6.2f} ms  (target p50 < 10)")
    print(f"POST /task   p50 {statistics.median(posts):6.2f} ms  p90 {pct(posts, 0.9):6.2f} ms  (target p50 < 10)")
    print(f"server RSS   idle {idle:6.1f} MB  after the run {busy:6.1f} MB  (target idle < 120)")


if __name__ == "__main__":
    main()
