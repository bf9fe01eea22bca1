"""The ClaudeTask resource: spec, status and their vocabularies, defined once.

Everything else derives from here: the CRD YAML (``ccr crd``), the API's JSON, the local store's rows,
the job pipeline's input and result. Field names are the Kubernetes camelCase names; Python attributes
are snake_case with aliases.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from ccr.core.constants import API_VERSION, BRANCH_PREFIX, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "SHORT_NAMES", "SINGULAR", "VERSION"]

# A prompt is plain words, but a generous amount of them: design docs pasted in whole are common.
PROMPT_MAX_BYTES = 256 * 1024
PROMPT_MAX_CHARS = PROMPT_MAX_BYTES  # the schema bounds characters; ``TaskSpec`` also bounds UTF-8 bytes
TIMEOUT_DEFAULT_SECONDS = 3600  # when neither the task nor the server sets one
MAX_RESUMES_DEFAULT = 3  # automatic resumes after a usage limit or an overload, then Failed/capacity_reached
TIMEOUT_MAX_SECONDS = 24 * 3600
START_TIMEOUT_DEFAULT_SECONDS = 600  # a pod that has not started by then ends Failed/start_failed
MAX_TURNS_MAX = 10_000
REPO_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$"
BRANCH_PATTERN = r"^[A-Za-z0-9._/-]{1,200}$"
MODEL_PATTERN = r"^[A-Za-z0-9._:\[\]-]{1,100}$"
# A ClaudeTask name: a DNS subdomain (RFC 1123), as Kubernetes requires; local ids are a subset.
TASK_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Phase(enum.StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    PAUSED = "Paused"  # stopped by the subscription's limit (or an overload): resumes at resumeAt, not an end
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def api_status(self) -> str:
        """The original runner's status word for this phase."""
        return _API_STATUS[self]


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
_API_STATUS = {
    Phase.PENDING: "queued",
    Phase.QUEUED: "queued",
    Phase.RUNNING: "running",
    Phase.PAUSED: "paused",
    Phase.SUCCEEDED: "completed",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "cancelled",
}


class ErrorType(enum.StrEnum):
    AUTH_EXPIRED = "auth_expired"
    CAPACITY_REACHED = "capacity_reached"
    TIMEOUT = "timeout"
    EXIT_CODE = "exit_code"
    CANCELLED = "cancelled"
    INVALID = "invalid"
    PUSH_FAILED = "push_failed"  # the run's work could not be pushed: it is not on the branch
    START_FAILED = "start_failed"  # the job never started (image pull, scheduling, a failed launch)

    @property
    def reason(self) -> str:
        """The CamelCase word for ``status.reason`` and conditions: ``auth_expired`` -> ``AuthExpired``."""
        return "".join(word.capitalize() for word in self.value.split("_"))


class AuthTarget(enum.StrEnum):
    """Which credential was refused (``auth_expired``): the fix differs."""

    GITHUB = "github"
    CLAUDE = "claude"


class ConditionType(enum.StrEnum):
    ACCEPTED = "Accepted"  # spec validated
    STARTED = "Started"  # a pod/process is running the pipeline
    PR_OPENED = "PullRequestOpened"
    COMPLETE = "Complete"  # terminal; status True on success, False on failure/cancel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        """The Kubernetes/JSON form: camelCase, no unset or empty fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def check_prompt(value: str) -> str:
    """What every prompt meets (a task's, a follow-up's): not blank, no NUL, valid text, at most 256 KiB."""
    if not value.strip():
        raise ValueError("prompt must not be blank")
    if "\x00" in value:
        raise ValueError("prompt must not contain a NUL character")
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise ValueError("prompt must be valid Unicode text (it holds a lone surrogate)") from None
    if size > PROMPT_MAX_BYTES:
        raise ValueError(f"prompt is larger than {PROMPT_MAX_BYTES} bytes")
    return value


Prompt = Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_MAX_CHARS), AfterValidator(check_prompt)]
Repo = Annotated[str, StringConstraints(pattern=REPO_PATTERN)]
Branch = Annotated[str, StringConstraints(pattern=BRANCH_PATTERN)]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN, max_length=253)]


class TaskSpec(_Camel):
    """What the user asks for. Never holds a credential: those come from the runner's own configuration."""

    prompt: Prompt = Field(description="The task in plain words.")
    repo: Repo | None = Field(
        default=None,
        description="GitHub repository as owner/name; when absent Claude picks it from the prompt.",
    )
    base_branch: Branch | None = Field(default=None, description="Branch to start from; the default branch if unset.")
    model: Annotated[str, StringConstraints(pattern=MODEL_PATTERN)] | None = Field(
        default=None, description="Claude model alias or name, e.g. sonnet, opus."
    )
    max_turns: int | None = Field(default=None, ge=1, le=MAX_TURNS_MAX, description="Upper bound on agent turns.")
    max_budget_usd: float | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description="Stop the run once Claude's reported cost passes this (--max-budget-usd); the server's "
        "default (CCR_MAX_BUDGET_USD) if unset.",
    )
    max_resumes: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description=f"How often a run stopped by the usage limit (or an overload) resumes on its own before it "
        f"fails as capacity_reached; the server's default ({MAX_RESUMES_DEFAULT}) if unset.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=60,
        le=TIMEOUT_MAX_SECONDS,
        description="Deadline for the whole run; the server's default (CCR_DEFAULT_TIMEOUT_SECONDS) if unset.",
    )
    start_timeout_seconds: int | None = Field(
        default=None,
        ge=10,
        le=TIMEOUT_MAX_SECONDS,
        description=f"A job that has not started by then ends Failed/start_failed; default "
        f"{START_TIMEOUT_DEFAULT_SECONDS}.",
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first among queued tasks.")
    cancel: bool = Field(default=False, description="Set to true to cancel the task.")
    follow_up_of: TaskId | None = Field(
        default=None,
        description="Id of an earlier task whose branch and pull request this task continues.",
    )


class Usage(_Camel):
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    turns: int | None = None
    duration_ms: int | None = None


class RateLimit(_Camel):
    """One window of the subscription's limits as Claude last reported it (``rate_limit_event``)."""

    window: str  # five_hour, seven_day, seven_day_opus, overage, ...
    status: str | None = None  # allowed, allowed_warning, rejected
    utilization: float | None = None  # 0..1
    resets_at: dt.datetime | None = None
    seen_at: dt.datetime | None = None


class Changes(_Camel):
    """What one run changed on its branch: the commits it added and their diff stat."""

    commits: int = 0
    files_changed: int = 0
    additions: int = 0
    deletions: int = 0

    def summary(self) -> str:
        """``2 commits, 3 files (+10 -4)``; a run that changed nothing says so."""
        if self.commits == 0 and self.files_changed == 0:
            return "no commits"
        commits = f"{self.commits} commit{'s' * (self.commits != 1)}"
        files = f"{self.files_changed} file{'s' * (self.files_changed != 1)}"
        return f"{commits}, {files} (+{self.additions} -{self.deletions})"


class Condition(_Camel):
    type: str
    status: str  # "True" | "False" | "Unknown", as Kubernetes spells it
    reason: str
    message: str = ""
    last_transition_time: dt.datetime
    observed_generation: int | None = None


class Outcome(_Camel):
    """What a run found out: the job reports it (``JobResult``), the task's status keeps it (``TaskStatus``)."""

    repo: str | None = None
    branch: str | None = None
    pr_url: str | None = None
    error_type: ErrorType | None = None
    auth_target: AuthTarget | None = Field(default=None, description="Which credential was refused (auth_expired).")
    message: str | None = None
    reset_time: dt.datetime | None = Field(default=None, description="When capacity returns (capacity_reached).")
    usage: Usage | None = None
    changes: Changes | None = None
    session_id: str | None = None
    rate_limits: list[RateLimit] | None = Field(default=None, description="The subscription's windows, as last seen.")


class TaskStatus(Outcome):
    phase: Phase = Phase.PENDING
    reason: str | None = Field(default=None, description="Why the task is in its phase, one CamelCase word.")
    resume_at: dt.datetime | None = Field(default=None, description="Paused: when the task resumes on its own.")
    resumes: int | None = Field(default=None, description="How often it resumed on its own after a pause.")
    conditions: list[Condition] = Field(default_factory=list)
    job_name: str | None = None
    pod_name: str | None = None
    start_time: dt.datetime | None = None
    completion_time: dt.datetime | None = None
    observed_generation: int | None = None


class JobResult(Outcome):
    """The pipeline's outcome: the last stdout line and the container's termination message."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    status: Phase

    @classmethod
    def of(cls, status: TaskStatus) -> JobResult:
        """The result a task's status stands for (when the job itself reported none)."""
        return cls(status=status.phase, **{name: getattr(status, name) for name in Outcome.model_fields})


class Resume(_Camel):
    """A run that continues a conversation: after a pause (the same task again) or as a follow-up."""

    session_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,100}$")
    attempt: int = Field(default=0, ge=0, description="Automatic resumes of this task so far (0: a follow-up).")


class JobInput(_Camel):
    """What the job pipeline reads from ``--spec FILE`` or stdin: the task as its runner resolved it."""

    id: TaskId
    spec: TaskSpec
    branch: Branch | None = Field(default=None, description="The task's branch; claude/<id> if unset.")
    resume: Resume | None = Field(default=None, description="The Claude session this run continues.")


def problems(exc: ValidationError, limit: int = 5) -> str:
    """A validation error in one line, for people: ``field: what is wrong; ...``. Never the input itself."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()[:limit])


def branch_for(task_id: str) -> str:
    return f"{BRANCH_PREFIX}{task_id}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
