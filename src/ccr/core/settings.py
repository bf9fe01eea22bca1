"""Configuration from the environment, in one place.

The original runner's names stay (GITHUB_TOKEN, PORT, SESSION_SECRET); ours start with CCR_. GitHub
Enterprise works through GITHUB_API_URL / GITHUB_SERVER_URL, the names GitHub's own tooling uses.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ccr.core.model import START_TIMEOUT_DEFAULT_SECONDS, TIMEOUT_DEFAULT_SECONDS, TIMEOUT_MAX_SECONDS

# Values that mean "the user copied the example and did not change it".
_PLACEHOLDERS = {"changeme", "change-me", "changethis", "secret", "replace-me", "xxx"}


class Backend(enum.StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


class GitHubEndpoints(BaseSettings):
    """Where GitHub is, under the names every component (and GitHub's own tooling) uses."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    github_api_url: str = Field(default="https://api.github.com", validation_alias="GITHUB_API_URL")
    github_server_url: str = Field(default="https://github.com", validation_alias="GITHUB_SERVER_URL")

    @field_validator("github_api_url", "github_server_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class GitHubSettings(GitHubEndpoints):
    """What both the job pipeline and the API need to reach GitHub: the endpoints and the token."""

    github_token: SecretStr | None = Field(default=None, validation_alias="GITHUB_TOKEN")


class AgentSettings(GitHubSettings):
    """What running a task needs besides GitHub: Claude's executable and credentials, the cancel grace."""

    claude_bin: str = Field(default="claude", validation_alias="CCR_CLAUDE_BIN")
    claude_oauth_token: SecretStr | None = Field(default=None, validation_alias="CLAUDE_CODE_OAUTH_TOKEN")
    claude_credentials_file: Path | None = Field(default=None, validation_alias="CCR_CLAUDE_CREDENTIALS_FILE")
    cancel_grace_seconds: float = Field(default=20.0, ge=0, le=600, validation_alias="CCR_CANCEL_GRACE_SECONDS")


class RunnerSettings(BaseSettings):
    """What both runners of tasks (the local executor and the operator) apply to every task."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    default_timeout_seconds: int = Field(
        default=TIMEOUT_DEFAULT_SECONDS,
        ge=60,
        le=TIMEOUT_MAX_SECONDS,
        validation_alias="CCR_DEFAULT_TIMEOUT_SECONDS",
        description="The deadline of a task whose spec sets no timeoutSeconds.",
    )
    start_timeout_seconds: int = Field(
        default=START_TIMEOUT_DEFAULT_SECONDS,
        ge=10,
        le=TIMEOUT_MAX_SECONDS,
        validation_alias="CCR_START_TIMEOUT_SECONDS",
        description="A job that has not started by then ends Failed/start_failed (unless its spec says otherwise).",
    )


class Settings(AgentSettings, RunnerSettings):
    """Settings of `ccr serve` (API, dashboard and, in local mode, the executor)."""

    port: int = Field(default=7334, ge=1, le=65535, validation_alias="PORT")
    host: str = Field(default="0.0.0.0", validation_alias="CCR_HOST")  # noqa: S104 - a server for the LAN
    data_dir: Path = Field(default=Path("./data"), validation_alias="CCR_DATA_DIR")
    session_secret: SecretStr | None = Field(default=None, validation_alias="SESSION_SECRET")
    backend: Backend = Field(default=Backend.LOCAL, validation_alias="CCR_BACKEND")
    # Local executor
    max_concurrent: int = Field(default=2, ge=1, le=1000, validation_alias="CCR_MAX_CONCURRENT")
    # Kubernetes backend (the API side of cluster mode)
    namespace: str = Field(default="default", validation_alias=AliasChoices("CCR_NAMESPACE", "POD_NAMESPACE"))
    kubeconfig: Path | None = Field(default=None, validation_alias="KUBECONFIG")
    # Sessions
    session_max_age_seconds: int = Field(default=7 * 24 * 3600, validation_alias="CCR_SESSION_MAX_AGE")
    secure_cookies: bool | None = Field(
        default=None,
        validation_alias="CCR_SECURE_COOKIES",
        description="Force the Secure cookie flag; by default it follows the scheme (TLS or X-Forwarded-Proto).",
    )
    # The HTTP server itself (docs: README, "Security model")
    session_key: SecretStr | None = Field(
        default=None,
        validation_alias="CCR_SESSION_KEY",
        description="Cluster mode: the key shared with the operator that job pods' session tokens derive from.",
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias="CCR_TRUSTED_PROXIES",
        description="Comma-separated addresses or CIDRs whose X-Forwarded-For/-Proto are believed; none by default.",
    )
    allowed_hosts: str = Field(
        default="",
        validation_alias="CCR_ALLOWED_HOSTS",
        description="Host names the server answers to besides loopback, IP literals and its own host name; "
        "`*.example.com` matches subdomains, `*` turns the check off.",
    )
    header_timeout_seconds: float = Field(default=20.0, gt=0, le=600, validation_alias="CCR_HEADER_TIMEOUT_SECONDS")
    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600, validation_alias="CCR_BODY_TIMEOUT_SECONDS")

    @field_validator("session_secret")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.lower() in _PLACEHOLDERS or len(raw) < 16:
            raise ValueError(
                "SESSION_SECRET is a placeholder or shorter than 16 characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()


class OperatorSettings(GitHubEndpoints, RunnerSettings):
    """Settings of the operator (``ccr operator``); the Helm chart sets every one of them. The GitHub URLs
    have the names every component uses (``GITHUB_API_URL``, ``GITHUB_SERVER_URL``)."""

    model_config = SettingsConfigDict(env_prefix="CCR_", extra="ignore")

    namespaces: str = Field(default="", description="Comma-separated namespaces to watch; empty: the operator's own.")
    job_image: str = Field(default="ghcr.io/claude-code-runner/ccr-job:0.1.0")
    job_image_pull_policy: str = "IfNotPresent"
    claude_secret: str = Field(
        default="ccr-claude", description="Secret with CLAUDE_CODE_OAUTH_TOKEN or credentials.json."
    )
    github_secret: str = Field(default="ccr-github", description="Secret with GITHUB_TOKEN.")
    max_concurrent: int = Field(default=2, ge=1, le=1000)
    cancel_grace_seconds: int = Field(default=20, ge=0, le=600)
    job_ttl_seconds: int = Field(default=3600, ge=60, description="Kept at least until the transcript is archived.")
    job_cpu_request: str = "250m"
    job_cpu_limit: str = "2"
    job_memory_request: str = "512Mi"
    job_memory_limit: str = "4Gi"
    job_service_account: str = Field(default="", description="ServiceAccount of task pods; its token is never mounted.")
    mark_ready_on_success: bool = False
    close_empty_prs: bool = Field(default=True, description="Passed to the job as CCR_CLOSE_EMPTY_PRS.")
