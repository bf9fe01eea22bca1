"""The fake GitHub checks the token as GitHub does, so the pipeline's credential handling is really tested."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.doubles.fake_github import FakeGitHub


def _git(*args: str, cwd: Path | None = None, helper: str | None = None) -> subprocess.CompletedProcess[str]:
    config = ["-c", "credential.helper="] + (["-c", f"credential.helper={helper}"] if helper else [])
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}
    return subprocess.run(["git", *config, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_rest_wants_the_token(fake_github: FakeGitHub) -> None:
    url = fake_github.api_url + "/user"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"token {fake_github.token}"}).json()["login"] == "fake-user"
    assert [r.auth for r in fake_github.request_log()] == ["missing", "wrong", "ok"]


def test_repo_listing_is_paginated_with_link_headers(fake_github: FakeGitHub) -> None:
    fake_github.per_page_cap = 2
    for i in range(5):
        fake_github.add_repo(f"o/r{i}")
    headers = {"Authorization": f"Bearer {fake_github.token}"}
    seen: list[str] = []
    url: str | None = fake_github.api_url + "/user/repos?per_page=100"
    while url:
        response = httpx.get(url, headers=headers)
        seen += [r["full_name"] for r in response.json()]
        url = response.links.get("next", {}).get("url")
    assert seen == [f"o/r{i}" for i in range(5)]


def test_git_over_http_wants_the_token_as_basic_password(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.add_repo("o/r", files={"a.txt": "A"})
    url = f"{fake_github.server_url}/o/r.git"
    assert _git("clone", "-q", url, str(tmp_path / "none")).returncode != 0
    wrong = "!f() { echo username=x-access-token; echo password=wrong; }; f"
    assert _git("clone", "-q", url, str(tmp_path / "wrong"), helper=wrong).returncode != 0
    right = f"!f() {{ echo username=x-access-token; echo password={fake_github.token}; }}; f"
    assert _git("clone", "-q", url, str(tmp_path / "ok"), helper=right).returncode == 0
    assert (tmp_path / "ok" / "a.txt").read_text() == "A"
    work = tmp_path / "ok"
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=work)
    assert _git("push", "-q", "origin", "HEAD:refs/heads/topic", cwd=work, helper=wrong).returncode != 0
    assert _git("push", "-q", "origin", "HEAD:refs/heads/topic", cwd=work, helper=right).returncode == 0
    assert len(fake_github.branch_commits("o/r", "topic")) == 2


def test_pull_requests_need_an_existing_head(fake_github: FakeGitHub) -> None:
    fake_github.add_repo("o/r")
    headers = {"Authorization": f"Bearer {fake_github.token}"}
    response = httpx.post(
        f"{fake_github.api_url}/repos/o/r/pulls",
        headers=headers,
        json={"title": "t", "head": "nope", "base": "main", "draft": True},
    )
    assert response.status_code == 422 and fake_github.pulls("o/r") == []


def test_pushes_to_the_default_branch_are_refused_and_recorded(fake_github: FakeGitHub, tmp_path: Path) -> None:
    """What lets the whole suite assert that no task ever wrote to a default branch (the fixture checks it)."""
    fake_github.add_repo("o/r", files={"a.txt": "A"})
    right = f"!f() {{ echo username=x-access-token; echo password={fake_github.token}; }}; f"
    work = tmp_path / "clone"
    assert _git("clone", "-q", f"{fake_github.server_url}/o/r.git", str(work), helper=right).returncode == 0
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=work)
    refused = _git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=work, helper=right)
    assert refused.returncode != 0 and "default branch" in refused.stderr
    assert fake_github.default_branch_pushes() == ["refs/heads/main"]
    assert len(fake_github.branch_commits("o/r", "main")) == 1
    fake_github.default_push_log.unlink()  # this test tried on purpose; the fixture's check stays for the rest


def test_refuse_pushes_after_pr(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.add_repo("o/r")
    fake_github.refuse_pushes_after_pr("o/r", "protected")
    right = f"!f() {{ echo username=x-access-token; echo password={fake_github.token}; }}; f"
    work = tmp_path / "clone"
    _git("clone", "-q", f"{fake_github.server_url}/o/r.git", str(work), helper=right)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=work)
    assert _git("push", "-q", "origin", "HEAD:refs/heads/topic", cwd=work, helper=right).returncode == 0
    headers = {"Authorization": f"Bearer {fake_github.token}"}
    pr = {"title": "t", "head": "topic", "base": "main", "draft": True}
    assert httpx.post(f"{fake_github.api_url}/repos/o/r/pulls", headers=headers, json=pr).status_code == 201
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "y", cwd=work)
    refused = _git("push", "-q", "origin", "HEAD:refs/heads/topic", cwd=work, helper=right)
    assert refused.returncode != 0 and "protected" in refused.stderr
