"""Pure builders: a ClaudeTask in, whole Kubernetes manifests out. No I/O, no clock, no client.

The handlers (``ccr.operator.handlers``) only build, adopt and create; everything about what a task's
Job looks like is decided here and asserted field by field in the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ccr.core.constants import (
    API_VERSION,
    COMPONENT_LABEL,
    CONTAINER_NAME,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RUN_AS,
    TASK_NAME_ANNOTATION,
    TASK_UID_LABEL,
)
from ccr.core.model import TIMEOUT_DEFAULT_SECONDS, JobInput
from ccr.core.settings import OperatorSettings

JOB_LABELS = {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: "task"}

# Paths inside the job container (the contract of ``python3 -m ccr.job``).
SPEC_DIR = "/etc/ccr/task"
SPEC_FILE = "spec.json"
CLAUDE_DIR = "/etc/ccr/claude"
CLAUDE_CREDENTIALS_KEY = "credentials.json"
CLAUDE_TOKEN_KEY = "CLAUDE_CODE_OAUTH_TOKEN"
GITHUB_TOKEN_KEY = "GITHUB_TOKEN"
HOME = "/home/ccr"
WORKDIR = "/workspace"

# The Job's deadline is the task's timeout plus this margin plus the cancel grace: the pipeline enforces
# the timeout itself (and reports it properly); the Job deadline is the backstop for a hung pod.
DEADLINE_MARGIN_SECONDS = 120
# terminationGracePeriodSeconds exceeds the pipeline's own grace by this much.
TERMINATION_MARGIN_SECONDS = 15

_NON_LABEL = re.compile(r"[^a-z0-9-]+")
_NAME_PREFIX = "ccr-"
# Pod names are "<job name>-<5 chars>" and must stay <= 63 too, so Job names stay well below.
_JOB_NAME_MAX = 52


def job_name_for(task_name: str) -> str:
    """A valid DNS-1123 label (<= 52 chars), deterministic and unique per task name.

    ``ccr-<readable part>-<sha256[:8] of the full name>``: the hash keeps two names that trim or sanitise
    to the same readable part apart, so a retried create meets a 409, never somebody else's Job.
    """
    digest = hashlib.sha256(task_name.encode()).hexdigest()[:8]
    readable = _NON_LABEL.sub("-", task_name.lower()).strip("-")
    room = _JOB_NAME_MAX - len(_NAME_PREFIX) - 1 - len(digest)
    readable = readable[:room].rstrip("-")
    return f"{_NAME_PREFIX}{readable}-{digest}" if readable else f"{_NAME_PREFIX}{digest}"


def spec_configmap_name_for(task_name: str, task_uid: str) -> str:
    """Per task *object*: a task deleted and re-created under the same name must not meet the old,
    immutable ConfigMap that the garbage collector is about to remove."""
    return f"{job_name_for(task_name)}-{task_uid[:8]}"


def owner_reference(task: dict[str, Any]) -> dict[str, Any]:
    """What ``kopf.adopt`` would add; built here so the builders stay pure and testable."""
    meta = task["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(task: dict[str, Any], name: str) -> dict[str, Any]:
    meta = task["metadata"]
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": {**JOB_LABELS, TASK_UID_LABEL: meta["uid"]},
        "annotations": {TASK_NAME_ANNOTATION: meta["name"]},
        "ownerReferences": [owner_reference(task)],
    }


def build_spec_configmap(task: dict[str, Any], job: JobInput) -> dict[str, Any]:
    """The task handed to the pipeline as a file: the prompt never appears in argv or env."""
    name = task["metadata"]["name"]
    payload = job.dump()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(task, spec_configmap_name_for(name, task["metadata"]["uid"])),
        "immutable": True,
        "data": {SPEC_FILE: json.dumps(payload, ensure_ascii=False, sort_keys=True)},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    # optional: a missing key lets the pod start, and the pipeline's preflight reports a clear, classified
    # error (auth_expired / invalid) instead of a pod stuck in CreateContainerConfigError.
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}


def job_deadline_seconds(job: JobInput, settings: OperatorSettings) -> int:
    timeout = job.spec.timeout_seconds or TIMEOUT_DEFAULT_SECONDS
    return timeout + settings.cancel_grace_seconds + DEADLINE_MARGIN_SECONDS


def build_job(
    task: dict[str, Any],
    job: JobInput,
    settings: OperatorSettings,
    pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The one Job that runs a task: isolated, non-root, credentials from the operator's Secrets only.

    ``task`` needs only ``metadata`` (name, namespace, uid); ``pod_annotations`` are extra annotations for
    the pod template (the operator passes those the configuration lets through from the task).
    """
    meta = task["metadata"]
    name = job_name_for(meta["name"])
    labels = {**JOB_LABELS, TASK_UID_LABEL: meta["uid"]}
    env = [
        _secret_env("GITHUB_TOKEN", settings.github_secret, GITHUB_TOKEN_KEY),
        _secret_env("CLAUDE_CODE_OAUTH_TOKEN", settings.claude_secret, CLAUDE_TOKEN_KEY),
        {"name": "CCR_CLAUDE_CREDENTIALS_FILE", "value": f"{CLAUDE_DIR}/{CLAUDE_CREDENTIALS_KEY}"},
        {"name": "GITHUB_API_URL", "value": settings.github_api_url},
        {"name": "GITHUB_SERVER_URL", "value": settings.github_server_url},
        {"name": "CCR_CANCEL_GRACE_SECONDS", "value": str(settings.cancel_grace_seconds)},
        {"name": "CCR_MARK_READY_ON_SUCCESS", "value": "true" if settings.mark_ready_on_success else "false"},
        {"name": "CCR_CLOSE_EMPTY_PRS", "value": "true" if settings.close_empty_prs else "false"},
        {"name": "HOME", "value": HOME},
        {"name": "CCR_WORKDIR", "value": WORKDIR},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 - an emptyDir of the pod's own
    ]
    container = {
        "name": CONTAINER_NAME,
        "image": settings.job_image,
        "imagePullPolicy": settings.job_image_pull_policy,
        "command": ["python3", "-m", "ccr.job"],
        "args": ["--spec", f"{SPEC_DIR}/{SPEC_FILE}"],
        "env": env,
        "workingDir": WORKDIR,
        "resources": {
            "requests": {"cpu": settings.job_cpu_request, "memory": settings.job_memory_request},
            "limits": {"cpu": settings.job_cpu_limit, "memory": settings.job_memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "task", "mountPath": SPEC_DIR, "readOnly": True},
            {"name": "claude", "mountPath": CLAUDE_DIR, "readOnly": True},
            {"name": "home", "mountPath": HOME},
            {"name": "workspace", "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.cancel_grace_seconds + TERMINATION_MARGIN_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "task",
                "configMap": {
                    "name": spec_configmap_name_for(meta["name"], meta["uid"]),
                    "items": [{"key": SPEC_FILE, "path": SPEC_FILE}],
                    "defaultMode": 0o440,
                },
            },
            {
                "name": "claude",
                "secret": {
                    "secretName": settings.claude_secret,
                    "optional": True,
                    "items": [{"key": CLAUDE_CREDENTIALS_KEY, "path": CLAUDE_CREDENTIALS_KEY}],
                    "defaultMode": 0o440,
                },
            },
            {"name": "home", "emptyDir": {}},
            {"name": "workspace", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if settings.job_service_account:
        pod_spec["serviceAccountName"] = settings.job_service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(task, name),
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": job_deadline_seconds(job, settings),
            # No ttlSecondsAfterFinished here: it is set once the transcript is archived (see docs).
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**(pod_annotations or {}), TASK_NAME_ANNOTATION: meta["name"]},
                },
                "spec": pod_spec,
            },
        },
    }
