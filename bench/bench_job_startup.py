"""Time from the job pipeline's start to the worker's first event, for a repository of 10,000 files.

The pipeline runs as a real subprocess against the fake GitHub (git over HTTP through git http-backend)
and the fake claude; the fake claude's own start-up (its process age when it prints its first event) is
subtracted, so what remains is ours: interpreter start, preflight, repo lookup, clone, branch, push, draft PR.
Target: < 2 s.  Usage: python bench/bench_job_startup.py [--files 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.doubles.fake_github import FakeGitHub  # noqa: E402
from tests.doubles.fixtures import FAKE_CLAUDE  # noqa: E402
from tests.doubles.jobrun import JobProcess, spec_json  # noqa: E402

TARGET_SECONDS = 2.0


def write_floor(root: Path, files: dict[str, str]) -> float:
    """Seconds this filesystem needs to create the repository's files at all: no checkout can beat it."""
    t = time.perf_counter()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.sync()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--workdir-root",
        default=None,
        help="where clones go (e.g. /dev/shm to keep a shared disk's write stalls out of the number)",
    )
    args = parser.parse_args()
    files = {f"src/pkg{i // 500:02d}/module_{i:05d}.py": f"VALUE_{i} = {i}\n" * 3 for i in range(args.files)}
    results = []
    floors = []
    with FakeGitHub(token=f"bench-{secrets.token_hex(16)}") as gh:
        t = time.perf_counter()
        gh.add_repo("bench/big", files=files)
        print(f"seeded a repository of {args.files} files in {time.perf_counter() - t:.1f}s")
        for run in range(args.runs):
            with tempfile.TemporaryDirectory(dir=args.workdir_root) as tmp:
                home = Path(tmp) / "home"
                home.mkdir()
                env = {
                    "PATH": os.environ["PATH"],
                    "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
                    "HOME": str(home),
                    "GITHUB_TOKEN": gh.token,
                    "GITHUB_API_URL": gh.api_url,
                    "GITHUB_SERVER_URL": gh.server_url,
                    "CLAUDE_CODE_OAUTH_TOKEN": "bench-oauth-token-value",
                    "CCR_CLAUDE_BIN": str(FAKE_CLAUDE),
                    "CCR_WORKDIR": str(Path(tmp) / "work"),
                    "CCR_ALLOW_ROOT": "1",
                    "CCR_TERMINATION_LOG": str(Path(tmp) / "termination-log"),
                }
                floors.append(write_floor(Path(tmp) / "floor", files))
                started = time.monotonic()
                job = JobProcess.start(spec_json(f"bench-{run}", prompt="bench [fake:success]", repo="bench/big"), env)
                marks: dict[str, float] = {}
                first = job.wait_for(lambda e: e.get("type") == "system" and e.get("subtype") == "init", timeout=120)
                for line in job.lines:
                    if line.event and line.event.get("type") == "ccr":
                        key = line.event.get("step") or line.event.get("phase")
                        marks.setdefault(str(key), line.at - started)
                assert first.event is not None
                fake_own = float(first.event.get("fake_process_age_s", 0.0))
                ours = first.at - started - fake_own
                outcome = job.finish(timeout=120)
                assert outcome.result["status"] == "Succeeded", outcome.stdout[-2000:]
                results.append(ours)
                steps = " ".join(f"{k}={v:.2f}" for k, v in marks.items())
                print(
                    f"run {run + 1}: start -> first worker event {ours:.3f}s (fake claude's own {fake_own:.3f}s "
                    f"excluded) | {steps}"
                )
    median = statistics.median(results)
    floor = statistics.median(floors)
    print(
        f"the same files written by plain Python on this filesystem: median {floor:.3f}s; "
        f"pipeline time above that floor: {median - floor:.3f}s; ratio startup/floor {median / floor:.2f}"
    )
    where = args.workdir_root or tempfile.gettempdir()
    print(
        f"job startup, {args.files} files, clone under {where}: median {median:.3f}s, min {min(results):.3f}s, "
        f"max {max(results):.3f}s (target < {TARGET_SECONDS:.1f}s) -> {'OK' if median < TARGET_SECONDS else 'SLOW'}"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
