"""Fixtures shared by every test tier. Tier-specific fixtures live in each folder's conftest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.fake_github import FakeGitHub
from tests.server import CcrServer

pytest_plugins = ["tests.doubles.fixtures"]

REPO = "acme/widgets"


@pytest.fixture
def local_env(job_env: dict[str, str], fake_github: FakeGitHub) -> dict[str, str]:
    """`ccr serve`'s environment for running tasks against the fake claude and the fake GitHub."""
    fake_github.add_repo(REPO, files={"README.md": "# widgets\n"})
    fake_github.add_repo("acme/gadgets", files={"README.md": "# gadgets\n"})
    return {k: v for k, v in job_env.items() if k not in ("CCR_WORKDIR", "CCR_TERMINATION_LOG")}


@pytest.fixture
def local_server(tmp_path: Path, local_env: dict[str, str]) -> Iterator[CcrServer]:
    """A `ccr serve` in local mode whose tasks run the real pipeline against the test doubles."""
    srv = CcrServer(tmp_path / "data", env=local_env).start()
    yield srv
    srv.stop()


# --- CI never skips silently ------------------------------------------------------------------------------
# Under CI=true a skipped test fails the run (a missing Chromium, helm or control plane must not pass as
# "skipped"), except the opt-in tests that need an image built beforehand with `make images`.
OPT_IN_SKIPS = ("set CCR_JOB_IMAGE",)
_ci_skips: list[str] = []


def _note_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and os.environ.get("CI") and not any(s in str(report.longrepr) for s in OPT_IN_SKIPS):
        _ci_skips.append(f"{report.nodeid}: {report.longrepr}")


pytest_runtest_logreport = _note_skip
pytest_collectreport = _note_skip  # a whole module skipped at collection (e.g. no Chromium)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ci_skips:
        print("\nCI=true: these tests were skipped, which CI does not allow:\n  " + "\n  ".join(_ci_skips))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
