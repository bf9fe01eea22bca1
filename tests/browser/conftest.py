"""A real `ccr serve` (local mode, fake claude, fake GitHub) and Debian's Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.server import ADMIN, CcrServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():  # a skip, which CI=true turns into a failure (tests/conftest.py)
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CCR_CHROMIUM)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server_env(local_env: dict[str, str]) -> dict[str, str]:
    return {**local_env, "CCR_CANCEL_GRACE_SECONDS": "3", "CCR_MAX_CONCURRENT": "2"}


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
