"""Where the real Claude Code CLI for the tests is: the pinned version from scripts/versions.env, installed by
scripts/claude-cli.sh (``make test`` runs it and exports CCR_TEST_CLAUDE_BIN)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS_ENV = REPO_ROOT / "scripts" / "versions.env"
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
