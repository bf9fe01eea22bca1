"""The job pipeline's configuration: every environment variable it reads, in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ccr.core.settings import AgentSettings

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LOG_ENV = "CCR_TERMINATION_LOG"  # read before the settings too: a bad environment is reported there
# The Claude CLI reads these before its own credentials: scrubbed from its environment so an API key can
# never silently take over from the subscription.
SCRUBBED_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# The CLI retries a failed API call 10 times by default with exponential backoff (0.5 s doubling, capped at
# 32 s): a persistent 529 or a 429 without the subscription headers then takes over three minutes to end.
# Measured with 2.1.332 against the fake API: 1 retry ends in 1.1 s, 2 in 2.2 s, 3 in 4.5 s, 4 in 9 s.
DEFAULT_CLAUDE_MAX_RETRIES = 3


class JobSettings(AgentSettings):
    """GitHub and Claude settings come from :class:`AgentSettings`; these are the pipeline's own."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    workdir: Path | None = Field(
        default=None, validation_alias="CCR_WORKDIR", description="Where to clone; a fresh temp dir if unset."
    )
    mark_ready_on_success: bool = Field(default=False, validation_alias="CCR_MARK_READY_ON_SUCCESS")
    close_empty_prs: bool = Field(
        default=True,
        validation_alias="CCR_CLOSE_EMPTY_PRS",
        description="Close (with a comment) the draft PR of a run that failed before any commit of its own.",
    )
    termination_log: Path = Field(default=DEFAULT_TERMINATION_LOG, validation_alias=TERMINATION_LOG_ENV)
    claude_max_retries: int = Field(
        default=DEFAULT_CLAUDE_MAX_RETRIES,
        ge=0,
        le=10,
        validation_alias="CCR_CLAUDE_MAX_RETRIES",
        description="CLAUDE_CODE_MAX_RETRIES for claude: how often it retries a failed API call (429, 529, 5xx, "
        "network) before the run ends as capacity_reached or exit_code.",
    )
    session_url: str | None = Field(
        default=None,
        validation_alias="CCR_SESSION_URL",
        description="In a pod: where the thread's Claude session is fetched from and kept (the API's internal "
        "route); unset in local mode, where the executor moves the file itself.",
    )
    session_token: SecretStr | None = Field(default=None, validation_alias="CCR_SESSION_TOKEN")
    session_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        validation_alias="CCR_SESSION_MAX_BYTES",
        description="A session file larger than this is not kept (the next run starts a fresh one).",
    )
    allow_root: bool = Field(
        default=False,
        validation_alias="CCR_ALLOW_ROOT",
        description="For test environments only: skip the refusal to run as root.",
    )
