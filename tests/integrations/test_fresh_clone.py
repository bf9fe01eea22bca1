"""The README's run command, from a fresh clone of the committed tree, serves the setup page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert block, "the README opens with a sh block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_run_and_test() -> None:
    assert readme_commands() == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci, ".ci/run calls the README's test command"


def test_fresh_clone_make_run_serves_the_setup_page(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], check=True, timeout=120)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "CCR_DATA_DIR": str(tmp_path / "data")}
    env.pop("VIRTUAL_ENV", None)
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        readme_commands()[0].split(), cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 600  # a fresh virtualenv and install come first
        while True:
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "make run did not serve within 10 minutes"
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"}, follow_redirects=True)
                break
            except httpx.TransportError:
                time.sleep(1)
        assert page.status_code == 200 and str(page.url).endswith("/setup")
        assert 'name="password"' in page.text
        assert (clone / ".venv" / "bin" / "ccr").exists()
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)
