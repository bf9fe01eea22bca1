"""The RBAC rules of the operator and of the API, in one place.

The Helm chart (charts/claude-code-runner) mirrors these lists; a drift test compares them. The operator's
test suite creates a ServiceAccount with exactly these rules and runs the operator with its token, so the
rules are proven sufficient, not just plausible.

Both are namespaced ``Role`` rules: the operator serves explicit namespaces (kopf's cluster-wide scanning
is disabled), so the chart creates one Role + RoleBinding per watched namespace and no ClusterRole at all.
Discovery (``/api``, ``/apis``) is open to every authenticated client through ``system:discovery``.
"""

from __future__ import annotations

from typing import Any

from ccr.core.model import GROUP, PLURAL

Rule = dict[str, Any]


def operator_rules() -> list[Rule]:
    """The operator's Role rules, for each watched namespace."""
    return [
        # Application: watch ClaudeTasks (kopf's index, event handlers and timers all list+watch them).
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch"]},
        # Application: status is written by the operator alone, through the status subresource.
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
        # Application: one Job per task; get to tell a lagging cache from a deleted Job, delete for cancel,
        # patch to set ttlSecondsAfterFinished once the transcript is archived.
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["get", "list", "watch", "create", "delete", "patch"],
        },
        # Application: the task's spec handed to the job pod as a mounted file (the prompt never in env/argv).
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        # Application: pod phase, start time and the termination message (the pipeline's result).
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        # Application: the result's fallback, the last log line, when there is no termination message.
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        # Framework: kopf posts Kubernetes Events on the ClaudeTasks (kopf.event / info / warn).
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def api_rules() -> list[Rule]:
    """The API's (``ccr serve`` with CCR_BACKEND=kubernetes) Role rules, in its namespace."""
    return [
        # Application: tasks are ClaudeTasks: create (POST /task), watch into the cache, patch spec.cancel
        # and the transcript-archived annotation.
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "create", "patch"]},
        # Application: find the task's pod to stream its log.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        # Application: the live transcript (follow=true) and its durable archive.
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]


def role(name: str, namespace: str, rules: list[Rule]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules,
    }


def role_binding(name: str, namespace: str, sa_name: str, sa_namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
    }
