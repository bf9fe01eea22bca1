"""The server under hostile load: memory through a huge chunked upload, liveness while clients hammer /setup.

Targets (issue 10, item 6): the server's RSS stays under 150 MB through a 150 MB chunked (no Content-Length)
unauthenticated POST /login, and GET /health p50 stays under 20 ms while 8 clients loop on POST /setup
(after the admin exists). Every figure is printed; the exit status is 1 when a target is missed.

    python bench/bench_hardening.py [--upload-mb 150] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.load import MB, Loopers, chunked_upload, latencies, p50, pct, proc_status, reset_peak  # noqa: E402
from tests.server import ADMIN, CcrServer  # noqa: E402

RSS_TARGET_MB = 150
HEALTH_P50_TARGET_MS = 20


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upload-mb", type=int, default=150)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="ccr-bench-")) / "data"
    server = CcrServer(data, env={"CCR_CLAUDE_BIN": "false"}).start()
    missed = []
    try:
        assert server.process
        pid = server.process.pid
        server.admin_session().close()
        time.sleep(1)
        before = proc_status(pid, "VmRSS")
        reset_peak(pid)  # the peak of the upload, not of the Argon2 hash at setup
        upload = chunked_upload(server.port, "/login", args.upload_mb * MB)
        peak = proc_status(pid, "VmHWM")
        print(
            f"chunked POST /login of {args.upload_mb} MB: answer {upload.status} after {upload.sent / MB:.1f} MB "
            f"in {upload.seconds:.2f} s; server RSS {before:.1f} MB before, peak {peak:.1f} MB "
            f"(target < {RSS_TARGET_MB})"
        )
        if peak >= RSS_TARGET_MB:
            missed.append("rss")

        idle = latencies(server.port, "/health", args.samples)
        body = json.dumps({"username": ADMIN[0], "password": ADMIN[1]}).encode()
        with Loopers(server.port, "/setup", body, n=8) as loopers:
            t0 = time.monotonic()
            busy = latencies(server.port, "/health", args.samples)
            seconds = time.monotonic() - t0
        rate = loopers.requests / seconds
        print(f"GET /health idle:               p50 {p50(idle):7.2f} ms  p95 {pct(idle, 0.95):7.2f} ms")
        print(
            f"GET /health, 8 loops on /setup: p50 {p50(busy):7.2f} ms  p95 {pct(busy, 0.95):7.2f} ms "
            f"(target p50 < {HEALTH_P50_TARGET_MS}); /setup answers {dict(sorted(loopers.statuses.items()))}, "
            f"{rate:.0f}/s"
        )
        if p50(busy) >= HEALTH_P50_TARGET_MS:
            missed.append("health")
        print(f"server RSS at the end {proc_status(pid, 'VmRSS'):.1f} MB; load average {os.getloadavg()[0]:.2f}")
    finally:
        server.stop()
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
