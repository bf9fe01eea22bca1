"""The ClaudeTask resource: spec, status and their vocabularies, defined once.

Everything else derives from here: the CRD YAML (``ccr crd``), the API's JSON, the local store's rows,
the job pipeline's input and result. Field names are the Kubernetes camelCase names; Python attributes
are snake_case with aliases.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic.alias_generators import to_camel

GROUP = "ccr.dev"
VERSION = "v1alpha1"
KIND = "ClaudeTask"
PLURAL = "claudetasks"
SINGULAR = "claudetask"
SHORT_NAMES = ["ct"]
API_VERSION = f"{GROUP}/{VERSION}"

# A prompt is plain words, but a generous amount of them: design docs pasted in whole are common.
PROMPT_MAX_BYTES = 256 * 1024
PROMPT_MAX_CHARS = PROMPT_MAX_BYTES  # the schema bounds characters; ``TaskSpec`` also bounds UTF-8 bytes
TIMEOUT_DEFAULT_SECONDS = 3600
TIMEOUT_MAX_SECONDS = 24 * 3600
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


Repo = Annotated[str, StringConstraints(pattern=REPO_PATTERN)]
Branch = Annotated[str, StringConstraints(pattern=BRANCH_PATTERN)]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN, max_length=253)]


class TaskSpec(_Camel):
    """What the user asks for. Never holds a credential: those come from the runner's own configuration."""

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=PROMPT_MAX_CHARS)] = Field(
        description="The task in plain words.",
    )
    repo: Repo | None = Field(
        default=None,
        description="GitHub repository as owner/name; when absent Claude picks it from the prompt.",
    )
    base_branch: Branch | None = Field(default=None, description="Branch to start from; the default branch if unset.")
    model: Annotated[str, StringConstraints(pattern=MODEL_PATTERN)] | None = Field(
        default=None, description="Claude model alias or name, e.g. sonnet, opus."
    )
    max_turns: int | None = Field(default=None, ge=1, le=MAX_TURNS_MAX, description="Upper bound on agent turns.")
    timeout_seconds: int = Field(
        default=TIMEOUT_DEFAULT_SECONDS,
        ge=60,
        le=TIMEOUT_MAX_SECONDS,
        description="Deadline for the whole run.",
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first among queued tasks.")
    cancel: bool = Field(default=False, description="Set to true to cancel the task.")
    follow_up_of: TaskId | None = Field(
        default=None,
        description="Id of an earlier task whose branch and pull request this task continues.",
    )
    branch: Branch | None = Field(
        default=None,
        description="Work on this existing branch (set for follow-ups); default claude/<task-id>.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_bytes(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        if len(value.encode()) > PROMPT_MAX_BYTES:
            raise ValueError(f"prompt is larger than {PROMPT_MAX_BYTES} bytes")
        return value


class Usage(_Camel):
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    turns: int | None = None
    duration_ms: int | None = None


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
    message: str | None = None
    reset_time: dt.datetime | None = Field(default=None, description="When capacity returns (capacity_reached).")
    usage: Usage | None = None
    session_id: str | None = None


class TaskStatus(Outcome):
    phase: Phase = Phase.PENDING
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


class JobInput(_Camel):
    """What the job pipeline reads from ``--spec FILE`` or stdin."""

    id: TaskId
    spec: TaskSpec


def problems(exc: ValidationError, limit: int = 5) -> str:
    """A validation error in one line, for people: ``field: what is wrong; ...``. Never the input itself."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()[:limit])


def branch_for(task_id: str) -> str:
    return f"claude/{task_id}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str = "",
    generation: int | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; lastTransitionTime moves only when the status changes."""
    word = "Unknown" if status is None else ("True" if status else "False")
    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        changed = c.status != word
        out.append(
            Condition(
                type=type_,
                status=word,
                reason=reason,
                message=message,
                last_transition_time=now() if changed else c.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=word,
                reason=reason,
                message=message,
                last_transition_time=now(),
                observed_generation=generation,
            )
        )
    return out
