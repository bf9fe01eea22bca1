"""Record tests/fixtures/stream-json/*.jsonl from the REAL Claude Code CLI against the fake Anthropic API.

    .venv/bin/python -m tests.doubles.record_fixtures            # all of them
    .venv/bin/python -m tests.doubles.record_fixtures success    # some

Run it after changing the pinned CLI version (scripts/versions.env): tests/job/test_classify.py checks that
every recorded fixture comes from the pinned version. Each fixture is one scripted conversation (below), run
in a fresh git clone with a bare remote (so commits and pushes are real); the paths of the run, the fake's
port and the uid are replaced by stable ones (/workspace/repo, /home/ccr, 10001) so the files do not churn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ccr.job.claude import REPO_SCHEMA, WORKER_RULES
from tests.doubles.claude_cli import cached_claude_bin, run_cli
from tests.doubles.fake_anthropic import (
    FakeAnthropic,
    Reply,
    Text,
    Thinking,
    ToolUse,
    bash,
    forbidden,
    overloaded,
    prompt_too_long,
    rate_limited,
    structured_answer,
    text_reply,
    unauthorized,
    unified_headers,
    usage_limit,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stream-json"
WORKSPACE = "/workspace/repo"
HOME = "/home/ccr"
# Far enough ahead that the CLI treats the limit as current (it drops a rejected state whose reset passed).
RESET = 2_000_000_000  # 2033-05-18T03:33:20Z


def _window_resets() -> tuple[int, int]:
    """Resets inside their windows (the CLI reports a window's reading only then): the next full hour plus
    one for the 5-hour window, three days on for the 7-day one."""
    hour = (int(time.time()) // 3600 + 2) * 3600
    return hour, hour + 3 * 86400


@dataclass
class Recording:
    """One fixture: the scripts the fake plays (``(match, steps)``), the prompt, the CLI's arguments."""

    prompt: str
    scripts: Sequence[tuple[str | None, Sequence[object]]]
    args: Sequence[str] = ("--append-system-prompt", WORKER_RULES)
    env: dict[str, str] = field(default_factory=dict)
    skip_permissions: bool = True
    expect_exit: int = 0
    then: Callable[[str], str] | None = None  # a second prompt for the same session (``--resume``)
    headers: dict[str, str] | None = None  # the subscription headers on every answer (the fake's default: none)


def _recordings(repo: str) -> dict[str, Recording]:
    reset_5h, reset_7d = _window_resets()
    readings = unified_headers(
        "allowed",
        reset=reset_5h,
        claim="five_hour",
        five_hour=0.42,
        five_hour_reset=reset_5h,
        seven_day=0.13,
        seven_day_reset=reset_7d,
    )
    warning = unified_headers(
        "allowed_warning",
        reset=reset_5h,
        claim="five_hour",
        five_hour=0.91,
        five_hour_reset=reset_5h,
        seven_day=0.8,
        seven_day_reset=reset_7d,
        surpassed={"5h": 0.9, "7d": 0.75},
    )
    subagent = ToolUse(
        "Agent",
        {
            "description": "Explore auth module",
            "prompt": "SUBAGENT: find where the login redirect is decided",
            "subagent_type": "Explore",
            "run_in_background": False,
        },
    )
    background = ToolUse(
        "Agent",
        {"description": "Survey the tests", "prompt": "SUBAGENT: list the test files", "subagent_type": "Explore"},
    )
    return {
        "success": Recording(
            "Fix the post-login redirect and add a note",
            [
                (
                    None,
                    [
                        Reply(
                            [
                                Thinking("The redirect is decided in app.py; check the tree first."),
                                Text("I'll check the repository state first."),
                                ToolUse("Bash", {"command": "git status --short && git branch --show-current"}),
                            ],
                            input_tokens=26,
                            output_tokens=80,
                            cache_creation_input_tokens=9800,
                        ),
                        Reply(
                            [
                                ToolUse(
                                    "Edit", {"file_path": f"{repo}/app.py", "old_string": "'/'", "new_string": "next"}
                                )
                            ],
                            input_tokens=12,
                            output_tokens=60,
                            cache_read_input_tokens=9800,
                        ),
                        Reply(
                            [ToolUse("Write", {"file_path": f"{repo}/NOTES.md", "content": "Redirect fixed.\n"})],
                            input_tokens=10,
                            output_tokens=40,
                            cache_read_input_tokens=10100,
                        ),
                        overloaded(times=1),
                        bash("git add -A && git commit -qm 'Fix the post-login redirect' && git push -q"),
                        Reply(
                            [Text("Fixed the post-login redirect and pushed the commit to the draft PR.")],
                            input_tokens=8,
                            output_tokens=25,
                            cache_read_input_tokens=10400,
                            headers=warning,
                        ),
                    ],
                )
            ],
            env={"CLAUDE_CODE_MAX_RETRIES": "3"},
            headers=readings,
        ),
        "auth-expired": Recording(
            "Do the thing", [(None, [unauthorized()])], env={"CLAUDE_CODE_MAX_RETRIES": "1"}, expect_exit=1
        ),
        "forbidden": Recording("Do the thing", [(None, [forbidden()])], expect_exit=1),
        "usage-limit": Recording("Do the thing", [(None, [usage_limit(RESET)])], expect_exit=1),
        "overloaded": Recording(
            "Do the thing", [(None, [overloaded()])], env={"CLAUDE_CODE_MAX_RETRIES": "2"}, expect_exit=1
        ),
        "rate-limited": Recording(
            "Do the thing", [(None, [rate_limited()])], env={"CLAUDE_CODE_MAX_RETRIES": "2"}, expect_exit=1
        ),
        "prompt-too-long": Recording("Do the thing", [(None, [prompt_too_long()])], expect_exit=1),
        "max-turns-with-subagent": Recording(
            "Refactor the auth module",
            [
                (None, [Reply([subagent]), bash("ls"), bash("git log --oneline | head -3"), text_reply("never")]),
                ("SUBAGENT: find", [bash("grep -rn redirect . | head -5"), text_reply("app.py decides it.")]),
            ],
            args=("--append-system-prompt", WORKER_RULES, "--max-turns", "3"),
            expect_exit=1,
        ),
        "background-subagent": Recording(
            "Survey the tests in the background",
            [
                (None, [Reply([background]), text_reply("Started a survey."), text_reply("The survey is done.")]),
                ("SUBAGENT: list", [bash("ls"), text_reply("No test files yet.")]),
            ],
        ),
        "structured-output": Recording(
            "Pick the GitHub repository that the coding task below is about, from the candidates.\n"
            "- acme/widgets: The widget service\n- acme/gadgets: The gadget service\n\nTask:\n<<<\n"
            "Fix the flaky test in the gadgets service\n>>>",
            [(None, [structured_answer({"repo": "acme/gadgets", "reason": "the task names the gadgets service"})])],
            args=("--json-schema", json.dumps(REPO_SCHEMA, separators=(",", ":")), "--max-turns", "3"),
            skip_permissions=False,
        ),
        "compact": Recording(
            "Say hello",
            [(None, [text_reply("Hello."), text_reply("<summary>We said hello.</summary>")])],
            then=lambda session: "/compact",
        ),
        "mcp-failed": Recording(
            "Say hello",
            [(None, [text_reply("Hello.")])],
            args=("--mcp-config", json.dumps({"mcpServers": {"github": {"command": "/bin/false"}}})),
        ),
    }


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _clone(root: Path) -> Path:
    remote, repo = root / "remote.git", root / "repo"
    _git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    _git(root, "clone", "-q", str(remote), str(repo))
    _git(repo, "config", "user.email", "claude@ccr.invalid")
    _git(repo, "config", "user.name", "ccr fixtures")
    (repo / "app.py").write_text("def after_login():\n    return '/'\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "Initial commit")
    _git(repo, "push", "-q", "-u", "origin", "HEAD:main")
    _git(repo, "checkout", "-q", "-b", "claude/task-fixture")
    _git(repo, "push", "-q", "-u", "origin", "claude/task-fixture")
    return repo


def _normalise(text: str, repo: Path, home: Path, fake: FakeAnthropic) -> str:
    project = re.sub(r"[^A-Za-z0-9]", "-", str(repo))
    text = text.replace(str(repo.resolve()), WORKSPACE).replace(str(repo), WORKSPACE)
    text = text.replace(project, "-workspace-repo").replace(str(home), HOME)
    text = text.replace(fake.base_url.removeprefix("http://"), "127.0.0.1:8080")
    text = re.sub(r"/tmp/cc-socks/\d+\.sock", "/tmp/cc-socks/1000.sock", text)
    return re.sub(r"/tmp/claude-\d+/", "/tmp/claude-10001/", text)


def record(name: str, recording: Recording, claude: Path, root: Path) -> Path:
    repo = _clone(root)
    home = root / "home"
    home.mkdir()
    fake = FakeAnthropic().start()
    if recording.headers is not None:
        fake.default_headers = recording.headers
    try:
        for match, steps in recording.scripts:
            fake.script(*steps, match=match)  # type: ignore[arg-type]
        run = run_cli(
            claude,
            fake,
            recording.prompt,
            cwd=repo,
            home=home,
            args=recording.args,
            env=recording.env,
            skip_permissions=recording.skip_permissions,
        )
        stdout = run.stdout
        if recording.then is not None:
            session = run.result["session_id"]
            again = run_cli(claude, fake, recording.then(session), cwd=repo, home=home, args=["--resume", session])
            stdout += again.stdout
        if run.returncode != recording.expect_exit:
            raise SystemExit(f"{name}: claude exited {run.returncode}, expected {recording.expect_exit}\n{run.stderr}")
    finally:
        fake.stop()
    out = FIXTURES / f"{name}.jsonl"
    lines = [line for line in _normalise(stdout, repo, home, fake).splitlines() if line.strip()]
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: Sequence[str]) -> int:
    claude = Path(os.environ.get("CCR_TEST_CLAUDE_BIN") or cached_claude_bin())
    if not os.access(claude, os.X_OK):
        print(f"no claude at {claude}: run scripts/claude-cli.sh", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ccr-fixtures-") as tmp:
        wanted = _recordings(str(Path(tmp) / "x" / "repo"))
        names = list(argv) or list(wanted)
        for name in names:
            root = Path(tmp) / name
            root.mkdir()
            recordings = _recordings(str(root / "repo"))
            path = record(name, recordings[name], claude, root)
            print(f"{path.relative_to(FIXTURES.parents[2])}: {len(path.read_text().splitlines())} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
