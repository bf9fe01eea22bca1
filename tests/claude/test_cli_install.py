"""scripts/claude-cli.sh: the pinned CLI in a cache outside the repository, idempotent and quick when warm."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.doubles.claude_cli import REPO_ROOT, pinned_version, real_claude_bin

SCRIPT = REPO_ROOT / "scripts" / "claude-cli.sh"


def test_the_installed_cli_is_the_pinned_version() -> None:
    claude = real_claude_bin()
    proc = subprocess.run([str(claude), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{pinned_version()} (Claude Code)"
    assert not claude.resolve().is_relative_to(REPO_ROOT), "the 400 MB binary must live outside the repository"


def test_a_warm_run_prints_the_directory_last_and_takes_well_under_a_second() -> None:
    claude = real_claude_bin()
    if os.environ.get("CCR_TEST_CLAUDE_BIN"):
        # the script's own cache (it may differ from an explicit CCR_TEST_CLAUDE_BIN): make sure it is warm
        subprocess.run(["bash", str(SCRIPT)], check=True, capture_output=True, timeout=600)
    started = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True)
    elapsed = time.monotonic() - started
    last = proc.stdout.strip().splitlines()[-1]
    assert (Path(last) / "claude").is_file()
    assert Path(last).parts[-2] == pinned_version()
    assert "up to date" in proc.stderr
    assert elapsed < 1.0, f"a warm run took {elapsed:.2f} s"
    if not os.environ.get("CCR_TEST_CLAUDE_BIN"):
        assert Path(last) / "claude" == claude


def test_the_script_is_valid_bash_and_reads_the_pin() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert 'source "$HERE/versions.env"' in text and "CLAUDE_CODE_VERSION" in text


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_missing_cli_fails_under_ci_and_is_a_skip_with_a_reason_elsewhere(tmp_path: Path, ci: str) -> None:
    env = {**os.environ, "CI": ci, "CCR_TEST_CLAUDE_BIN": str(tmp_path / "no-claude-here")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_the_installed_cli_is_the_pinned_version",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "the real Claude Code CLI is not at" in proc.stdout
    if ci:
        assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-2000:]
    else:
        assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]
