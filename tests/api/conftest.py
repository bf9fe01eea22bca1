from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import CcrServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CcrServer]:
    """A fresh `ccr serve` (no admin yet) whose tasks run nothing real: claude is `false`."""
    srv = CcrServer(tmp_path / "data", env={"CCR_CLAUDE_BIN": "false"}).start()
    yield srv
    srv.stop()
