"""git, run as a subprocess with the token supplied by a credential helper.

The helper is a shell function in the clone's config that prints ``$GITHUB_TOKEN`` from the environment of
whoever runs git (the pipeline, or Claude pushing its own commits): the token's value is never in a URL,
a remote, a config file or a log line.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ccr.core.model import Changes

TOKEN_ENV = "GITHUB_TOKEN"
# Prints username and the token read from the environment at the moment git asks; answers only `get`.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=${' + TOKEN_ENV + '}"; }; f'
)
GIT_TIMEOUT = 600.0


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @classmethod
    def from_github_user(cls, user: Mapping[str, object]) -> Identity:
        login = str(user.get("login") or "claude-code-runner")
        name = str(user.get("name") or login)
        uid = user.get("id")
        email = f"{uid}+{login}@users.noreply.github.com" if uid else f"{login}@users.noreply.github.com"
        return cls(name=name, email=email)


def clone_config(server_url: str, identity: Identity) -> dict[str, str]:
    """Config written into the new clone: our helper only for the GitHub server (the empty helper first
    drops any inherited one), never a prompt, and the commit identity."""
    return {
        "credential.helper": "",
        f"credential.{server_url.rstrip('/')}.helper": CREDENTIAL_HELPER,
        "user.name": identity.name,
        "user.email": identity.email,
        "push.autoSetupRemote": "true",
    }


def clone_url(server_url: str, repo: str) -> str:
    return f"{server_url.rstrip('/')}/{repo}.git"


def git_env(base: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_DIR", "GIT_WORK_TREE")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C"})
    return env


class Git:
    """git commands in one working tree."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.env = git_env(env)

    def run(self, *args: str, timeout: float = GIT_TIMEOUT, cwd: Path | None = None) -> str:
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=cwd or self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            # The server's own words (branch protection, hooks) come as "remote:" lines before the summary.
            remote = [line for line in detail[:-3] if line.startswith("remote:")][-3:]
            raise GitError(f"git {args[0]} failed ({proc.returncode}): {' '.join(remote + detail[-3:])}")
        return proc.stdout

    def clone(self, url: str, config: Mapping[str, str], base_branch: str | None, timeout: float) -> None:
        """Objects only (no checkout yet, see :meth:`start_checkout`), and blobless: history's file
        contents are fetched on demand, so a big repository's start costs its tip, not its past."""
        args = ["clone", "--quiet", "--no-tags", "--no-checkout", "--filter=blob:none"]
        for key, value in config.items():
            args += ["--config", f"{key}={value}"]
        if base_branch:
            args += ["--branch", base_branch]
        self.cwd.parent.mkdir(parents=True, exist_ok=True)
        self.run(*args, url, str(self.cwd), timeout=timeout, cwd=self.cwd.parent)

    def has_remote_branch(self, branch: str) -> bool:
        try:
            self.run("rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}")
        except GitError:
            return False
        return True

    def checkout_remote_branch(self, branch: str, timeout: float) -> None:
        self.run("checkout", "--quiet", "-B", branch, f"refs/remotes/origin/{branch}", timeout=timeout)
        self.run("branch", "--quiet", f"--set-upstream-to=origin/{branch}", branch)

    def create_start_commit(self, branch: str, message: str) -> None:
        """``branch`` = an empty commit on top of HEAD, and HEAD on it. Needs no working tree, so the
        checkout can run meanwhile."""
        sha = self.run("commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", message).strip()
        self.run("update-ref", f"refs/heads/{branch}", sha)
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    def start_checkout(self, timeout: float) -> Checkout:
        """Populate the index and working tree of HEAD in the background (the clone has none yet)."""
        return Checkout(self, timeout)

    def push_branch(self, branch: str, timeout: float) -> None:
        """Push ``branch`` (not HEAD: the working tree may still be filling) and track it."""
        self.run(
            "push", "--quiet", "--set-upstream", "origin", f"refs/heads/{branch}:refs/heads/{branch}", timeout=timeout
        )

    def push(self, branch: str, timeout: float) -> None:
        self.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", timeout=timeout)

    def is_dirty(self) -> bool:
        return bool(self.run("status", "--porcelain", "--untracked-files=all").strip())

    def unpushed(self, branch: str) -> int:
        """Commits on HEAD that origin/<branch> (as last seen) lacks; -1 when that is unknown."""
        try:
            return int(self.run("rev-list", "--count", f"refs/remotes/origin/{branch}..HEAD").strip())
        except (GitError, ValueError):
            return -1

    def commit_all(self, message: str) -> None:
        self.run("add", "--all")
        self.run("commit", "--quiet", "--no-verify", "-m", message)

    def head(self) -> str:
        return self.run("rev-parse", "HEAD").strip()

    def changes_since(self, rev: str) -> Changes:
        """The commits HEAD has on top of ``rev`` and their diff stat (binary files count as changed)."""
        commits = int(self.run("rev-list", "--count", f"{rev}..HEAD").strip() or 0)
        files = additions = deletions = 0
        for line in self.run("diff", "--numstat", "--no-renames", rev, "HEAD").splitlines():
            added, deleted, _path = line.split("\t", 2)
            files += 1
            additions += int(added) if added.isdigit() else 0
            deletions += int(deleted) if deleted.isdigit() else 0
        return Changes(commits=commits, files_changed=files, additions=additions, deletions=deletions)


class Checkout:
    """A ``git checkout --force`` of HEAD running in a thread; :meth:`wait` re-raises its failure."""

    def __init__(self, git: Git, timeout: float) -> None:
        self._error: GitError | None = None
        self._thread = threading.Thread(target=self._run, args=(git, timeout), name="git-checkout", daemon=True)
        self._thread.start()

    def _run(self, git: Git, timeout: float) -> None:
        try:
            git.run("checkout", "--quiet", "--force", timeout=timeout)
        except GitError as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def fresh_workdir(root: Path | None, repo: str) -> Path:
    """Where the clone goes: <root>/<name> (root from CCR_WORKDIR or a new temp dir)."""
    base = root if root is not None else Path(tempfile.mkdtemp(prefix="ccr-job-"))
    base.mkdir(parents=True, exist_ok=True)
    target = base / repo.split("/")[-1]
    suffix = 1
    while target.exists():
        suffix += 1
        target = base / f"{repo.split('/')[-1]}-{suffix}"
    return target
