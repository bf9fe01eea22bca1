"""A real `ccr serve` (local mode, fake claude, fake GitHub) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.fake_github import FakeGitHub
from tests.server import ADMIN, CcrServer

REPO = "acme/widgets"
CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server_env(job_env: dict[str, str], fake_github: FakeGitHub) -> dict[str, str]:
    fake_github.add_repo(REPO, files={"README.md": "# widgets\n"})
    env = {k: v for k, v in job_env.items() if k not in ("CCR_WORKDIR", "CCR_TERMINATION_LOG")}
    return {**env, "CCR_CANCEL_GRACE_SECONDS": "3", "CCR_MAX_CONCURRENT": "2"}


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[CcrServer]:
    srv = CcrServer(tmp_path / "data", env=server_env).start()
    yield srv
    srv.stop()


@pytest.fixture
def context(browser: Any, server: CcrServer) -> Iterator[Any]:
    """Closed before the server stops, so no open stream holds its shutdown up."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    pg = context.new_page()
    pg.on("dialog", lambda dialog: dialog.accept())  # the confirm() before cancel/revoke
    pg.on("pageerror", lambda error: print(f"page error: {error}"))
    pg.on("console", lambda message: print(f"console {message.type}: {message.text}"))
    return pg


def set_up_admin(page: Any, server: CcrServer) -> None:
    """Create the admin through the setup page; the browser ends logged in, on the task list."""
    page.goto(server.url + "/")
    page.wait_for_url("**/setup")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")


@pytest.fixture
def logged_in(page: Any, server: CcrServer) -> Any:
    set_up_admin(page, server)
    return page


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
