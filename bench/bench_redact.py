"""Redaction throughput (MB/s) over stream-json-like text: whole lines, and the chunked stream redactor.

Target: >= 50 MB/s.  Usage: python bench/bench_redact.py [--mb 50]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ccr.core.redact import Redactor

TARGET_MB_S = 50.0
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stream-json" / "success.jsonl"


def corpus(megabytes: int) -> list[str]:
    """Lines of the success fixture, one in fifty carrying a secret, up to ``megabytes``."""
    lines = [line + "\n" for line in FIXTURE.read_text().splitlines() if line.strip()]
    secret_line = (
        json.dumps(
            {
                "type": "user",
                "message": {
                    "content": [
                        {
                            "type": "tool_result",
                            "content": "GITHUB_TOKEN=ghp_" + "a" * 36 + " and the session secret value-one-two-three",
                        }
                    ]
                },
            }
        )
        + "\n"
    )
    out, size, i = [], 0, 0
    while size < megabytes * 1_000_000:
        line = secret_line if i % 50 == 49 else lines[i % len(lines)]
        out.append(line)
        size += len(line)
        i += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    redactor = Redactor(
        [
            f"fake-gh-token-{secrets.token_hex(16)}",
            "sk-ant-oat01-" + secrets.token_urlsafe(60),
            "value-one-two-three",
            f"session-{secrets.token_hex(16)}",
        ]
    )
    lines = corpus(args.mb)
    total = sum(len(line) for line in lines) / 1e6

    t = time.perf_counter()
    redacted = [redactor.redact(line) for line in lines]
    per_line = total / (time.perf_counter() - t)
    assert sum("[REDACTED]" in line for line in redacted) == len(lines) // 50

    blob = "".join(lines)
    t = time.perf_counter()
    redactor.redact(blob)
    whole = total / (time.perf_counter() - t)

    stream = redactor.stream()
    t = time.perf_counter()
    out = [stream.feed(blob[i : i + 65536]) for i in range(0, len(blob), 65536)]
    out.append(stream.flush())
    chunked = total / (time.perf_counter() - t)
    assert "".join(out) == redactor.redact(blob)

    worst = min(per_line, whole, chunked)
    print(
        f"redaction over {total:.0f} MB: per line {per_line:.0f} MB/s, one block {whole:.0f} MB/s, "
        f"stream of 64 KiB chunks {chunked:.0f} MB/s (target >= {TARGET_MB_S:.0f}) -> "
        f"{'OK' if worst >= TARGET_MB_S else 'SLOW'}"
    )
    return 0 if worst >= TARGET_MB_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
