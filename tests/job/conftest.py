"""Fixtures for the job pipeline tests: a fake GitHub with one repository and helpers to inspect runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.fake_github import FakeGitHub

REPO = "acme/widgets"


@pytest.fixture
def repo(fake_github: FakeGitHub) -> str:
    fake_github.add_repo(
        REPO, files={"README.md": "# widgets\n", "src/app.py": "print('hi')\n"}, description="The widget service"
    )
    return REPO


def fake_log(env: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env["FAKE_CLAUDE_LOG"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
