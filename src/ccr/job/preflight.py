"""Checks before any Claude turn is spent. Each failure is classified at once.

``invalid``: something is missing or malformed (no credentials, running as root, no claude binary, a HOME
that cannot be written). ``auth_expired``: a credential was presented and refused (GitHub answers 401).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccr.core.model import AuthTarget, ErrorType
from ccr.core.redact import secret_strings
from ccr.job.classify import JobFailure
from ccr.job.config import JobSettings
from ccr.job.github import GitHub, GitHubError

CREDENTIALS_RELATIVE = Path(".claude") / ".credentials.json"
ROOT_MESSAGE = (
    "running as root: the Claude CLI refuses --dangerously-skip-permissions as root; run the job as a "
    "non-root user (the job image uses uid 10001). CCR_ALLOW_ROOT=1 exists for test environments only."
)


@dataclass(frozen=True)
class Preflight:
    home: Path
    github: GitHub  # the REST client, kept for the rest of the run
    user: dict[str, Any]  # the GitHub user the token belongs to
    extra_secrets: tuple[str, ...]  # token values read from a credentials file


def check_user(settings: JobSettings, euid: int) -> None:
    if euid == 0 and not settings.allow_root:
        raise JobFailure(ErrorType.INVALID, ROOT_MESSAGE)


def check_claude_bin(settings: JobSettings) -> None:
    if shutil.which(settings.claude_bin) is None:
        raise JobFailure(ErrorType.INVALID, f"the Claude CLI was not found: {settings.claude_bin!r}")


def install_claude_credentials(settings: JobSettings, home: Path) -> tuple[str, ...]:
    """CLAUDE_CODE_OAUTH_TOKEN wins; else a credentials.json is copied into $HOME (the CLI rewrites it on
    refresh, so it must be writable); else one already in $HOME (a local login) is used."""
    if settings.claude_oauth_token and settings.claude_oauth_token.get_secret_value().strip():
        return ()
    target = home / CREDENTIALS_RELATIVE
    source = settings.claude_credentials_file
    if source is not None:
        data = _read_credentials(source)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.resolve() != target.resolve():
                shutil.copyfile(source, target)
            target.chmod(0o600)
        except OSError as exc:
            raise JobFailure(
                ErrorType.INVALID,
                f"cannot write Claude credentials into HOME ({home}): {exc.strerror or exc}",
            ) from exc
        return tuple(secret_strings(data))
    if target.is_file():
        return tuple(secret_strings(_read_credentials(target)))
    raise JobFailure(
        ErrorType.INVALID,
        "no Claude credentials: set CLAUDE_CODE_OAUTH_TOKEN (from `claude setup-token`) or "
        "CCR_CLAUDE_CREDENTIALS_FILE (a ~/.claude/.credentials.json)",
    )


def check_github(settings: JobSettings) -> tuple[GitHub, dict[str, Any]]:
    """The REST client, proven with one call (``GET /user``: who the token belongs to)."""
    token = settings.github_token.get_secret_value().strip() if settings.github_token else ""
    if not token:
        raise JobFailure(ErrorType.INVALID, "GITHUB_TOKEN is not set")
    github = GitHub(settings.github_api_url, token)
    try:
        return github, github.user()
    except GitHubError as exc:
        github.close()
        if exc.status == 401:
            raise JobFailure(
                ErrorType.AUTH_EXPIRED,
                "GitHub refused GITHUB_TOKEN (401 Bad credentials)",
                auth_target=AuthTarget.GITHUB,
            ) from exc
        raise JobFailure(ErrorType.INVALID, f"GitHub token check failed: {exc}") from exc
    except Exception as exc:  # httpx transport errors: DNS, TLS, connection refused
        github.close()
        raise JobFailure(ErrorType.INVALID, f"cannot reach GitHub at {settings.github_api_url}: {exc}") from exc


def home_dir() -> Path:
    home = Path(os.environ.get("HOME") or "/home/ccr")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobFailure(ErrorType.INVALID, f"HOME ({home}) cannot be created: {exc.strerror or exc}") from exc
    if not os.access(home, os.W_OK):
        raise JobFailure(ErrorType.INVALID, f"HOME ({home}) is not writable")
    return home


def run_preflight(settings: JobSettings) -> Preflight:
    check_user(settings, os.geteuid())
    home = home_dir()
    extra = install_claude_credentials(settings, home)
    check_claude_bin(settings)
    github, user = check_github(settings)
    return Preflight(home=home, github=github, user=user, extra_secrets=extra)


def _read_credentials(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise JobFailure(ErrorType.INVALID, f"cannot read Claude credentials file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise JobFailure(ErrorType.INVALID, f"Claude credentials file {path} is not JSON") from exc
