"""pytest fixtures for the test doubles (fake Anthropic API, fake GitHub, fake claude) and the real CLI."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.claude_cli import real_claude_bin
from tests.doubles.fake_anthropic import FakeAnthropic, cli_env
from tests.doubles.fake_github import FakeGitHub
from tests.doubles.jobrun import REPO_ROOT
from tests.server import CcrServer

FAKE_CLAUDE = Path(__file__).resolve().parent / "fake_claude.py"


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A started fake GitHub whose token is a random value that matches no token shape (so only the
    exact-value redaction can hide it)."""
    gh = FakeGitHub(token=f"fake-gh-token-{secrets.token_hex(16)}").start()
    try:
        yield gh
        # Whatever the test did: no task ever tried to write to a repository's default branch.
        assert gh.default_branch_pushes() == [], f"pushes to a default branch: {gh.default_branch_pushes()}"
    finally:
        gh.stop()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A started fake of the Anthropic Messages API; tests give it their conversation with ``.script()``."""
    fake = FakeAnthropic().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def claude_bin() -> Path:
    """The real Claude Code CLI (pinned in scripts/versions.env): a failure under CI=true when missing."""
    return real_claude_bin()


@pytest.fixture
def fake_claude_bin() -> Path:
    if not os.access(FAKE_CLAUDE, os.X_OK):
        FAKE_CLAUDE.chmod(0o755)
    return FAKE_CLAUDE


@pytest.fixture
def job_env(fake_github: FakeGitHub, fake_claude_bin: Path, tmp_path: Path) -> dict[str, str]:
    """The environment for ``python -m ccr.job`` against the doubles. A fresh, minimal environment (not
    the test runner's), HOME and the work dir under tmp_path; CCR_ALLOW_ROOT because tests run as root."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT / "src") + os.pathsep + str(REPO_ROOT),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_API_URL": fake_github.api_url,
        "GITHUB_SERVER_URL": fake_github.server_url,
        "CLAUDE_CODE_OAUTH_TOKEN": f"fake-oauth-{secrets.token_hex(20)}",
        "CCR_CLAUDE_BIN": str(fake_claude_bin),
        "CCR_WORKDIR": str(tmp_path / "work"),
        "CCR_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "CCR_CANCEL_GRACE_SECONDS": "5",
        "CCR_ALLOW_ROOT": "1",
        "FAKE_CLAUDE_LOG": str(tmp_path / "fake-claude.log"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@pytest.fixture
def real_job_env(job_env: dict[str, str], fake_anthropic: FakeAnthropic, claude_bin: Path) -> dict[str, str]:
    """``job_env`` with the REAL Claude Code CLI pointed at the fake Anthropic API (its URL, the switches that
    keep the CLI off the internet, IS_SANDBOX=1 because tests run as root; see fake_anthropic's docstring).
    The retry bound is the pipeline's default (CCR_CLAUDE_MAX_RETRIES unset)."""
    env = {k: v for k, v in job_env.items() if k != "FAKE_CLAUDE_LOG"}
    return {**env, **cli_env(fake_anthropic), "CCR_CLAUDE_BIN": str(claude_bin)}


@pytest.fixture
def real_local_env(local_env: dict[str, str], fake_anthropic: FakeAnthropic, claude_bin: Path) -> dict[str, str]:
    """``local_env`` (tests/conftest.py: `ccr serve` against the doubles) with the real CLI, as real_job_env."""
    env = {k: v for k, v in local_env.items() if k != "FAKE_CLAUDE_LOG"}
    return {**env, **cli_env(fake_anthropic), "CCR_CLAUDE_BIN": str(claude_bin)}


@pytest.fixture
def real_local_server(tmp_path: Path, real_local_env: dict[str, str]) -> Iterator[CcrServer]:
    """A `ccr serve` in local mode whose tasks run the real pipeline with the real CLI against the doubles."""
    srv = CcrServer(tmp_path / "data", env=real_local_env).start()
    yield srv
    srv.stop()
