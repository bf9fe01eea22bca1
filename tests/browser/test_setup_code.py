"""The setup page of a server reachable from the network asks for the setup code it printed to its log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import screenshot
from tests.server import ADMIN, CcrServer

pytestmark = pytest.mark.browser


@pytest.fixture
def lan_server(tmp_path: Path) -> Iterator[CcrServer]:
    srv = CcrServer(tmp_path / "data", env={"CCR_CLAUDE_BIN": "false"}, host="0.0.0.0").start()
    yield srv
    srv.stop()


def test_the_first_account_needs_the_code_from_the_log(browser: Any, lan_server: CcrServer) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(lan_server.url + "/")
        page.wait_for_url("**/setup")
        assert "printed to its log" in page.inner_text("#setup-code-help")
        page.fill("input[name=setup_code]", "not-the-code")
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        page.click("button[type=submit]")
        assert "setup code is missing or wrong" in page.inner_text(".error")
        assert page.is_visible("input[name=setup_code]")  # the page asks again

        code = lan_server.setup_code()
        assert code
        page.fill("input[name=setup_code]", code)
        page.fill("input[name=username]", ADMIN[0])
        page.fill("input[name=password]", ADMIN[1])
        screenshot(page, "setup-code")
        page.click("button[type=submit]")
        page.wait_for_url(lan_server.url + "/")
        assert page.is_visible("#logout")
    finally:
        context.close()
