"""Fixtures shared by every test tier. Tier-specific fixtures live in each folder's conftest."""

from __future__ import annotations

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
