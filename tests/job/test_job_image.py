"""The job image end to end (opt-in): set CCR_JOB_IMAGE (e.g. localhost/ccr-job:dev, built by
scripts/build-images.sh job) and have podman or docker. The container runs as its own non-root user,
without CCR_ALLOW_ROOT, against the fake GitHub on the host network, with the fake claude mounted in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import REPO_ROOT, spec_json

IMAGE = os.environ.get("CCR_JOB_IMAGE", "")
ENGINE = shutil.which("podman") or shutil.which("docker")

pytestmark = pytest.mark.skipif(not (IMAGE and ENGINE), reason="set CCR_JOB_IMAGE and install podman or docker")


def _run(args: list[str], stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert ENGINE is not None
    runtime = ["--runtime", "runc"] if ENGINE.endswith("podman") and shutil.which("runc") else []
    return subprocess.run(
        [ENGINE, *runtime, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_image_runs_as_non_root_with_its_tools() -> None:
    probe = _run(
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            IMAGE,
            "-c",
            "id -u && claude --version && gh --version && git --version && python3 -c 'import ccr.job'",
        ]
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[0] == "10001"


def test_image_runs_a_task_against_the_fakes(fake_github: FakeGitHub) -> None:
    fake_github.add_repo("acme/widgets", files={"README.md": "# widgets\n"})
    args = [
        "run",
        "--rm",
        "-i",
        "--network",
        "host",
        "--volume",
        f"{REPO_ROOT / 'tests'}:/opt/fake/tests:ro",
        "--env",
        f"GITHUB_TOKEN={fake_github.token}",
        "--env",
        f"GITHUB_API_URL={fake_github.api_url}",
        "--env",
        f"GITHUB_SERVER_URL={fake_github.server_url}",
        "--env",
        "CLAUDE_CODE_OAUTH_TOKEN=fake-oauth-image-test-0123456789",
        "--env",
        "CCR_CLAUDE_BIN=/opt/fake/tests/doubles/fake_claude.py",
        IMAGE,
        "--spec",
        "-",
    ]
    done = _run(args, stdin=spec_json("image-task", prompt="Change it [fake:success]", repo="acme/widgets"))
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines[-1]["status"] == "Succeeded" and lines[-1]["prUrl"]
    assert fake_github.pulls("acme/widgets")[0]["draft"] is True
    assert len(fake_github.branch_commits("acme/widgets", "claude/image-task")) == 4
