"""The kopf entry module: decorators and start-up settings only; the logic lives in ``handlers`` (side
effects), ``reconcile`` (pure decisions) and ``builders`` (pure manifests).

Run with ``ccr operator`` (``ccr.operator.main.run``), ``python -m ccr.operator`` or
``kopf run -m ccr.operator.main --standalone --namespace NS``.

Every handler is level-based: a ClaudeTask, Job or pod event, or the periodic resync, all end in the same
``Runtime.reconcile`` of the task concerned, which looks only at the current state. Only event handlers
and indexes: no change-detection handler and no kopf timer (both would make kopf add a finalizer), so
nothing kopf writes to the objects and nothing can leave a task stuck in deletion while the operator is
down. The resync is the Runtime's own loop (``CCR_RESYNC_SECONDS``).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ccr.core.constants import GROUP, MANAGED_BY, MANAGED_BY_LABEL, PLURAL, VERSION
from ccr.core.logging import setup_logging
from ccr.operator.config import OperatorConfig
from ccr.operator.handlers import Runtime
from ccr.operator.views import TaskKey, job_view, pod_view, task_view

SETTINGS = OperatorConfig()
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY}


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo["ccr"]
    return runtime


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's bookkeeping (if any handler ever needs it) goes to annotations: status is ours alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration", ignored_fields=["spec.prompt"]
    )
    settings.persistence.finalizer = f"{GROUP}/operator"  # never added: no handler needs a finalizer
    settings.posting.level = logging.WARNING  # our own Events mark the transitions; no per-call spam
    settings.scanning.disabled = True  # serve the configured namespaces only: no cluster-wide RBAC
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.connect_timeout = 10
    settings.execution.max_workers = 4  # only kopf's sync callbacks use threads; ours are async
    runtime = Runtime(SETTINGS)
    await runtime.start()
    memo["ccr"] = runtime


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    if "ccr" in memo:
        await _runtime(memo).stop()  # also ends the resync loop


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


# --- indexes: the operator's whole view of the world, filled before any handler runs -------------


@kopf.index(GROUP, VERSION, PLURAL)
def ccr_tasks(body: kopf.Body, **_: Any) -> dict[TaskKey, Any]:
    view = task_view(body)
    return {view.key: view}


@kopf.index("batch", "v1", "jobs", labels=MANAGED)
def ccr_jobs(body: kopf.Body, **_: Any) -> dict[TaskKey, Any] | None:
    view = job_view(body)
    return {(view.namespace, view.task_name): view} if view.task_name else None


@kopf.index("v1", "pods", labels=MANAGED)
def ccr_pods(body: kopf.Body, **_: Any) -> dict[TaskKey, Any] | None:
    view = pod_view(body)
    return {(view.namespace, view.task_name): view} if view.task_name else None


# --- handlers: all roads lead to Runtime.reconcile -------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
async def task_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime = _runtime(memo)
    runtime.attach(kwargs)
    view = task_view(body)
    if type == "DELETED":
        runtime.forget(view)
        await runtime.admit()  # its slot is free
        return
    await runtime.reconcile(view)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime = _runtime(memo)
    runtime.attach(kwargs)
    view = job_view(body)
    await runtime.reconcile_key((view.namespace, view.task_name))
    await runtime.retain_or_release(view)
    if view.finished is not None or type == "DELETED":
        await runtime.admit()  # a slot may be free (the task's own reconcile usually did this already)


@kopf.on.event("v1", "pods", labels=MANAGED)
async def pod_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime = _runtime(memo)
    runtime.attach(kwargs)
    view = pod_view(body)
    await runtime.reconcile_key((view.namespace, view.task_name))


def run() -> None:
    """``ccr operator``: run the operator in the foreground until SIGTERM/SIGINT."""
    setup_logging()
    # kopf logs every successful event-handler call at INFO: thousands of lines that name no task.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    liveness = f"http://0.0.0.0:{SETTINGS.liveness_port}/healthz" if SETTINGS.liveness_port else None
    kopf.run(
        standalone=True,  # one replica (the chart's Deployment uses Recreate): no peering objects needed
        namespaces=SETTINGS.watched_namespaces(),
        liveness_endpoint=liveness,
    )
