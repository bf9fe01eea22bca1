"""Small immutable views of ClaudeTasks, Jobs and Pods: what the kopf indexes hold.

Extracted once per watch event, they keep the indexes small (500 tasks with 256 KB prompts would be
hundreds of MB as whole bodies) and make the decision functions pure over plain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ccr.core.constants import ARCHIVED_ANNOTATION, SUBMITTED_ANNOTATION, TASK_NAME_ANNOTATION, TASK_UID_LABEL

TaskKey = tuple[str, str]  # (namespace, name)
# Not kept in the views: kubectl's copy of the whole object (the prompt again) and kopf's own bookkeeping.
_BULKY_ANNOTATIONS = ("kubectl.kubernetes.io/", "kopf.zalando.org/")


@dataclasses.dataclass(frozen=True)
class TaskView:
    namespace: str
    name: str
    uid: str
    generation: int
    created: str  # RFC 3339 to the microsecond (see ``submitted_at``): sorts chronologically
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    archived: bool = False
    deleting: bool = False
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> TaskKey:
        return (self.namespace, self.name)

    @property
    def ref(self) -> dict[str, Any]:
        """Enough of a body for ``kopf.event`` and owner references."""
        return {
            "apiVersion": "ccr.dev/v1alpha1",
            "kind": "ClaudeTask",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }


@dataclasses.dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str | None
    message: str | None
    finished_at: str | None


@dataclasses.dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    task_name: str
    task_uid: str
    created: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    start_time: str | None
    deleting: bool
    reason: str | None  # status.reason, e.g. Evicted
    message: str | None
    waiting_reason: str | None  # e.g. ImagePullBackOff, CreateContainerConfigError
    terminated: Terminated | None
    disrupted: bool  # DisruptionTarget condition: evicted, preempted, node lost
    waiting_message: str | None = None
    unschedulable: str | None = None  # the scheduler's message while PodScheduled is False/Unschedulable


@dataclasses.dataclass(frozen=True)
class JobView:
    namespace: str
    name: str
    uid: str
    task_name: str
    task_uid: str
    finished: str | None  # "Complete" | "Failed" | None
    reason: str | None  # e.g. DeadlineExceeded, BackoffLimitExceeded
    message: str | None
    start_time: str | None
    completion_time: str | None
    deleting: bool
    ttl: int | None
    created: str = ""


def _owner_uid(meta: Mapping[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ClaudeTask":
            return str(ref.get("uid", ""))
    return str((meta.get("labels") or {}).get(TASK_UID_LABEL, ""))


def submitted_at(meta: Mapping[str, Any]) -> str:
    """When the task was submitted, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: the API's annotation (to the microsecond),
    else the creation timestamp (to the second). The queue's order among tasks of equal priority."""
    stamp = (meta.get("annotations") or {}).get(SUBMITTED_ANNOTATION) or meta.get("creationTimestamp") or ""
    if stamp.endswith("Z") and "." not in stamp:
        stamp = stamp[:-1] + ".000000Z"
    return str(stamp)


def task_view(body: Mapping[str, Any]) -> TaskView:
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    return TaskView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 1),
        created=submitted_at(meta),
        spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
        archived=annotations.get(ARCHIVED_ANNOTATION) == "true",
        deleting=bool(meta.get("deletionTimestamp")),
        annotations={k: v for k, v in annotations.items() if not k.startswith(_BULKY_ANNOTATIONS)},
    )


def job_view(body: Mapping[str, Any]) -> JobView:
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    finished = reason = message = None
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            finished, reason, message = cond["type"], cond.get("reason"), cond.get("message")
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    return JobView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        task_name=(meta.get("annotations") or {}).get(TASK_NAME_ANNOTATION, ""),
        task_uid=_owner_uid(meta),
        finished=finished,
        reason=reason,
        message=message,
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
        deleting=bool(meta.get("deletionTimestamp")),
        ttl=int(ttl) if ttl is not None else None,
        created=meta.get("creationTimestamp") or "",
    )


def pod_view(body: Mapping[str, Any]) -> PodView:
    meta = body.get("metadata", {})
    status = body.get("status") or {}
    terminated = None
    waiting: Mapping[str, Any] = {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"] is not None:
            t = state["terminated"]
            terminated = Terminated(
                exit_code=int(t.get("exitCode", 0)),
                reason=t.get("reason"),
                message=t.get("message"),
                finished_at=t.get("finishedAt"),
            )
        elif "waiting" in state and state["waiting"] is not None:
            waiting = state["waiting"]
    conditions = status.get("conditions") or []
    disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions)
    unschedulable = next(
        (
            str(c.get("message") or "no node fits the pod")
            for c in conditions
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        ),
        None,
    )
    labels = meta.get("labels") or {}
    return PodView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        task_name=(meta.get("annotations") or {}).get(TASK_NAME_ANNOTATION, ""),
        task_uid=labels.get(TASK_UID_LABEL, ""),
        created=meta.get("creationTimestamp") or "",
        phase=status.get("phase") or "Pending",
        start_time=status.get("startTime"),
        deleting=bool(meta.get("deletionTimestamp")),
        reason=status.get("reason"),
        message=status.get("message"),
        waiting_reason=waiting.get("reason"),
        terminated=terminated,
        disrupted=disrupted,
        waiting_message=waiting.get("message"),
        unschedulable=unschedulable,
    )
