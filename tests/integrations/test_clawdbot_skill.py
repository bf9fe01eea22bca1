"""The clawdbot skill's example commands, run as written against a real `ccr serve`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.doubles.fake_github import FakeGitHub
from tests.server import CcrServer

SKILL = Path(__file__).resolve().parents[2] / "integrations" / "clawdbot" / "SKILL.md"


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", SKILL.read_text(), flags=re.S)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="the skill's examples use curl and jq")
def test_skill_examples_run_against_the_app(local_server: CcrServer, fake_github: FakeGitHub) -> None:
    blocks = bash_blocks()
    assert len(blocks) >= 4
    # The examples as one session: submit, wait, stream, read, other actions (retry, follow-up, health).
    script = "set -euo pipefail\n" + "\n".join(blocks) + '\necho "FINAL ${TASK_ID}"\n'
    env = {"CLAUDE_RUNNER_URL": local_server.url, "CLAUDE_RUNNER_TOKEN": local_server.token(), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    out = run.stdout
    task_id = re.search(r"submitted (\w+)", out).group(1)
    assert "task completed" in out
    assert f'"pr_url": "{fake_github.pulls(REPO)[0]["html_url"]}"' in out
    assert '"event":"result"' in out.replace(" ", "")
    assert f"{task_id} completed" in out
    assert '{"ok":true,' in out
    with local_server.client(headers={"Authorization": f"Bearer {env['CLAUDE_RUNNER_TOKEN']}"}) as client:
        tasks = client.get("/tasks").json()
    follow_up = next(t for t in tasks if t["follow_up_of"] == task_id)
    assert follow_up["prompt"] == "Also add a test for the empty email case" and follow_up["repo"] == REPO
    assert len(tasks) == 3  # the original, its retry and its follow-up
