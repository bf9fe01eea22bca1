"""Where the real Claude Code CLI for the tests is: the pinned version from scripts/versions.env, installed by
scripts/claude-cli.sh (``make test`` runs it and exports CCR_TEST_CLAUDE_BIN)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.fake_anthropic import FakeAnthropic, cli_env

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_ENV = REPO_ROOT / "scripts" / "versions.env"
# Shaped like a `claude setup-token` token; random enough for the redaction tests' exact-value matching.
TEST_OAUTH_TOKEN = "sk-ant-oat01-fake-" + "0123456789abcdef" * 4
INSTALL_HINT = "run `bash scripts/claude-cli.sh` (make test does) or set CCR_TEST_CLAUDE_BIN"


def pinned_versions() -> dict[str, str]:
    """scripts/versions.env as a dict (KEY=VALUE lines, # comments)."""
    pins: dict[str, str] = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def pinned_version() -> str:
    return pinned_versions()["CLAUDE_CODE_VERSION"]


def cached_claude_bin() -> Path:
    """Where scripts/claude-cli.sh puts the pinned version (its default cache)."""
    root = Path(os.environ.get("CCR_CLAUDE_CACHE") or Path.home() / ".cache" / "ccr" / "claude")
    return root / pinned_version() / "bin" / "claude"


def real_claude_bin() -> Path:
    """The real CLI's path. Missing: a failure under CI=true (it must never be skipped there), else a skip."""
    explicit = os.environ.get("CCR_TEST_CLAUDE_BIN")
    path = Path(explicit) if explicit else cached_claude_bin()
    if os.access(path, os.X_OK):
        return path
    reason = f"the real Claude Code CLI is not at {path}: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class CliRun:
    """One finished ``claude -p --output-format stream-json`` run."""

    returncode: int
    events: list[dict[str, Any]]
    stdout: str
    stderr: str
    seconds: float

    def of_type(self, kind: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind and (subtype is None or e.get("subtype") == subtype)]

    @property
    def result(self) -> dict[str, Any]:
        results = self.of_type("result")
        assert results, f"no result event (exit {self.returncode}); stderr: {self.stderr[-2000:]}"
        return results[-1]


def print_argv(claude: Path, *extra: str, skip_permissions: bool = True) -> list[str]:
    bypass = ["--dangerously-skip-permissions"] if skip_permissions else []
    return [str(claude), "-p", "--output-format", "stream-json", "--verbose", *bypass, *extra]


def run_cli(
    claude: Path,
    fake: FakeAnthropic,
    prompt: str,
    *,
    cwd: Path,
    home: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    skip_permissions: bool = True,
    timeout: float = 120,
) -> CliRun:
    """The real CLI against ``fake`` with a minimal environment (no variable of the test runner leaks in),
    the prompt on stdin as the pipeline passes it."""
    full = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CLAUDE_CODE_OAUTH_TOKEN": TEST_OAUTH_TOKEN,
        **cli_env(fake),
        **(env or {}),
    }
    started = time.monotonic()
    proc = subprocess.run(
        print_argv(claude, *args, skip_permissions=skip_permissions),
        input=prompt,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=timeout,
        check=False,
    )
    events = []
    for line in proc.stdout.splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return CliRun(proc.returncode, events, proc.stdout, proc.stderr, time.monotonic() - started)
