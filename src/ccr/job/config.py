"""The job pipeline's configuration: every environment variable it reads, in one place."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ccr.core.settings import AgentSettings

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
TERMINATION_LOG_ENV = "CCR_TERMINATION_LOG"  # read before the settings too: a bad environment is reported there
# The Claude CLI reads these before its own credentials: scrubbed from its environment so an API key can
# never silently take over from the subscription.
SCRUBBED_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


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
    allow_root: bool = Field(
        default=False,
        validation_alias="CCR_ALLOW_ROOT",
        description="For test environments only: skip the refusal to run as root.",
    )
