"""The operator's side effects: turn ``reconcile.decide`` and the queue's choice into API calls.

One ``Runtime`` per operator process (kept in kopf's memo). It reads the world from kopf's indexes
(pre-populated before any handler runs, so a restarted operator never admits on a partial view), writes
``status`` through the status subresource (the only writer of status), and creates Jobs under one
admission lock so the concurrency limit holds across all watched namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import enum
import logging
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, TypeVar, cast

import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ccr.core import lifecycle, queue
from ccr.core.constants import CONTAINER_NAME, GROUP, PLURAL, VERSION
from ccr.core.model import Phase, TaskSpec, now
from ccr.operator import builders
from ccr.operator.config import OperatorConfig
from ccr.operator.reconcile import Action, Decision, Facts, Limits, current_status, decide, parse_spec, status_patch
from ccr.operator.views import JobView, PodView, TaskKey, TaskView

log = logging.getLogger("ccr.operator")
JSON_PATCH = "application/json-patch+json"
# A Job we created but the index has not shown yet still holds its slot for at most this long.
RESERVATION_SECONDS = 60.0
START_PARALLELISM = 16
# Back-to-back admission rounds are spaced this much; the first round after a quiet spell runs at once.
ADMIT_BATCH_SECONDS = 0.05  # Jobs created concurrently in one admission round

V = TypeVar("V")
_TERMINAL = frozenset(p.value for p in Phase if p.terminal)


class _Outcome(enum.Enum):
    NOTHING = enum.auto()
    CANDIDATE = enum.auto()  # newly waiting for a slot
    FREED = enum.auto()  # just finished: its slot (and lane) may be free


def _values(index: Mapping[Any, Iterable[V]] | None, key: Any) -> list[V]:
    if index is None or key not in index:  # kopf's Index has an O(1) __contains__; KeyError is slow
        return []
    return list(index[key])


class Indexes:
    """The three kopf indexes, as handlers receive them (``ccr_tasks``, ``ccr_jobs``, ``ccr_pods``)."""

    def __init__(self) -> None:
        self.tasks: Mapping[TaskKey, Iterable[TaskView]] | None = None
        self.jobs: Mapping[TaskKey, Iterable[JobView]] | None = None
        self.pods: Mapping[TaskKey, Iterable[PodView]] | None = None

    def bind(self, kwargs: Mapping[str, Any]) -> None:
        self.tasks = kwargs.get("ccr_tasks", self.tasks)
        self.jobs = kwargs.get("ccr_jobs", self.jobs)
        self.pods = kwargs.get("ccr_pods", self.pods)

    def task(self, key: TaskKey) -> TaskView | None:
        """The live task of that name: a deleted one with the same name may linger in the index a moment."""
        found = sorted(_values(self.tasks, key), key=lambda t: t.created, reverse=True)
        found.sort(key=lambda t: t.deleting)
        return found[0] if found else None

    def job(self, key: TaskKey) -> JobView | None:
        found = sorted(_values(self.jobs, key), key=lambda j: j.deleting)  # a live Job before a dying one
        return found[0] if found else None

    def pods_of(self, key: TaskKey) -> list[PodView]:
        return _values(self.pods, key)

    def all_tasks(self) -> list[TaskView]:
        if self.tasks is None:
            return []
        return [view for key in list(self.tasks) for view in _values(self.tasks, key)]

    def all_jobs(self) -> list[JobView]:
        if self.jobs is None:
            return []
        return [view for key in list(self.jobs) for view in _values(self.jobs, key)]


class Runtime:
    def __init__(self, settings: OperatorConfig) -> None:
        self.settings = settings
        self.indexes = Indexes()
        self.api: client.ApiClient | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._written: dict[str, dict[str, Any]] = {}  # uid -> the status we last wrote
        self._reserved: dict[TaskKey, float] = {}  # Jobs created, not yet seen in the index
        self._specs: dict[str, tuple[int, TaskSpec | None]] = {}  # uid -> (generation, spec)
        self._blocked: dict[Hashable, str] = {}  # a queued task's key -> the running task that holds its branch
        self.limits = Limits(
            cancel_grace_seconds=settings.cancel_grace_seconds,
            start_timeout_seconds=settings.start_timeout_seconds,
            default_timeout_seconds=settings.default_timeout_seconds,
        )
        self._admit_lock = asyncio.Lock()
        self._admit_again = False
        self._last_round = 0.0
        self._resync: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        self.api = client.ApiClient()
        self.api.configuration.connection_pool_maxsize = 32

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resync
        if self.api is not None:
            await self.api.close()

    def attach(self, kwargs: Mapping[str, Any]) -> None:
        """Called by every handler: take the indexes, and start the resync loop on first use, in the
        handler's context (so ``kopf.event`` works from the loop as from a handler)."""
        self.indexes.bind(kwargs)
        if self._resync is None:
            self._resync = asyncio.create_task(
                self._resync_loop(), name="ccr-resync", context=contextvars.copy_context()
            )

    async def _resync_loop(self) -> None:
        """The level-based safety net: every unfinished task and every finished Job without a TTL is looked
        at again, and the queue gets a round, whatever events were missed. The first round of the queue
        runs at once: after a restart, tasks already Queued start without waiting for a tick."""
        await self.admit()
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            try:
                for task in self.indexes.all_tasks():
                    if self._status_of(task).get("phase") not in _TERMINAL:
                        await self.reconcile(task)
                for job in self.indexes.all_jobs():
                    if job.finished is not None and job.ttl is None:
                        await self.retain_or_release(job)
                await self.admit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resync failed; next round in %ss", self.settings.resync_seconds)

    def forget(self, task: TaskView) -> None:
        """The task is gone: drop what we remember about it."""
        self._locks.pop(task.uid, None)
        self._written.pop(task.uid, None)
        self._specs.pop(task.uid, None)
        self._reserved.pop(task.key, None)

    # --- the per-task loop -------------------------------------------------------------------------

    def _fresh(self, task: TaskView) -> TaskView:
        """The view with the status we last wrote (the watch may not have delivered it yet)."""
        written = self._written.get(task.uid)
        if written is None or written == task.status:
            return task
        return TaskView(**{**task.__dict__, "status": written})

    def _reserved_now(self, key: TaskKey) -> bool:
        since = self._reserved.get(key)
        if since is None:
            return False
        if self.indexes.job(key) is not None or time.monotonic() - since > RESERVATION_SECONDS:
            del self._reserved[key]
            return False
        return True

    async def reconcile(self, task: TaskView) -> None:
        """Bring one task's status and Job in line with the facts; run the queue when that matters."""
        if task.deleting:
            return  # owner references take the Job and pods with it; nothing to write
        lock = self._locks.setdefault(task.uid, asyncio.Lock())
        async with lock:
            outcome = await self._reconcile_locked(task, defer_queued=True)
        if outcome is _Outcome.CANDIDATE:
            # A new candidate: try to start it before writing Queued, so a free slot means straight to Running.
            await self.admit()
            async with lock:
                await self._reconcile_locked(self.indexes.task(task.key) or task, defer_queued=False)
        elif outcome is _Outcome.FREED:
            await self.admit()

    async def reconcile_quietly(self, task: TaskView) -> None:
        """Reconcile from inside an admission round: write what ``decide`` says, never run the queue again."""
        if task.deleting:
            return
        async with self._locks.setdefault(task.uid, asyncio.Lock()):
            await self._reconcile_locked(self.indexes.task(task.key) or task, defer_queued=False)

    async def reconcile_key(self, key: TaskKey) -> None:
        task = self.indexes.task(key)
        if task is not None:
            await self.reconcile(task)

    async def _reconcile_locked(self, task: TaskView, *, defer_queued: bool) -> _Outcome:
        task = self._fresh(task)
        if self._reserved_now(task.key):
            return _Outcome.NOTHING  # we just created its Job; the Job's own event brings us back
        job = self.indexes.job(task.key)
        pods = self.indexes.pods_of(task.key)
        follows = task.spec.get("followUpOf")
        facts = Facts(
            earlier=self.indexes.task((task.namespace, str(follows))) if follows else None,
            waiting_for=self._blocked.get(task.key),
            limits=self.limits,
        )
        d = decide(task, job, pods, now(), facts)
        if Action.VERIFY_JOB_GONE in d.actions:
            if not await self._job_absent(task.namespace, str(task.status.get("jobName"))):
                return _Outcome.NOTHING  # the index is behind; the Job's event comes
            d = decide(task, job, pods, now(), dataclasses.replace(facts, job_gone=True))
        if Action.FETCH_LOG in d.actions and d.log_pod:
            text = await self._log_tail(task.namespace, d.log_pod)
            d = decide(task, job, pods, now(), dataclasses.replace(facts, log_text=text))
        if Action.DELETE_JOB in d.actions and job is not None:
            await self._delete_job(job)
        was = task.status.get("phase")
        if Action.ADMIT in d.actions and was != Phase.QUEUED.value and defer_queued:
            return _Outcome.CANDIDATE
        await self._write(task, d)
        if d.status.phase.terminal and was not in _TERMINAL:
            return _Outcome.FREED
        return _Outcome.NOTHING

    async def _write(self, task: TaskView, d: Decision) -> None:
        if status_patch(task.status, d.status) is None:
            return
        assert self.api is not None
        # A JSON patch whose first step tests the UID: a decision about a deleted task can never land on a
        # new task that took its name (the whole status is ours, so it is written whole).
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": task.uid},
            {"op": "add", "path": "/status", "value": d.status.dump()},
        ]
        try:
            api: Any = client.CustomObjectsApi(self.api)
            await api.patch_namespaced_custom_object_status(
                GROUP, VERSION, task.namespace, PLURAL, task.name, patch, _content_type=JSON_PATCH
            )
        except ApiException as exc:
            if exc.status in (404, 422):  # gone, or the name now belongs to another task
                return
            raise
        self._written[task.uid] = d.status.dump()
        for event in d.events:
            kopf.event(
                cast(kopf.Body, task.ref),
                type="Warning" if event.warning else "Normal",
                reason=event.reason,
                message=event.message,
            )
        log.info(
            "task %s/%s: %s",
            task.namespace,
            task.name,
            d.status.phase.value,
            extra={"task": task.name, "namespace": task.namespace},
        )

    # --- the queue ---------------------------------------------------------------------------------

    async def admit(self) -> None:
        """Start queued tasks while slots are free. Calls that arrive while a round runs coalesce into
        one more round (at most twenty a second), so a burst of 500 creations costs dozens of rounds, not 500."""
        self._admit_again = True
        if self._admit_lock.locked():
            return
        async with self._admit_lock:
            while self._admit_again:
                self._admit_again = False
                # In a burst, rounds are spaced so they gather many triggers (each looks at every task).
                wait = self._last_round + ADMIT_BATCH_SECONDS - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._admit_round()
                self._last_round = time.monotonic()

    def _spec(self, task: TaskView) -> TaskSpec | None:
        """The validated spec, parsed once per generation (admission rounds look at every task)."""
        cached = self._specs.get(task.uid)
        if cached is None or cached[0] != task.generation:
            cached = self._specs[task.uid] = (task.generation, parse_spec(task.spec)[0])
        return cached[1]

    def _status_of(self, task: TaskView) -> Mapping[str, Any]:
        return self._written.get(task.uid, task.status)

    def _lane(self, task: TaskView, spec: TaskSpec | None) -> str | None:
        """The task's branch: from its status once accepted, else (a new task) its own ``claude/<name>``."""
        branch = self._status_of(task).get("branch")
        if branch:
            return str(branch)
        return lifecycle.thread_branch(task.name) if spec is not None and spec.follow_up_of is None else None

    @staticmethod
    def _candidate(task: TaskView, spec: TaskSpec | None, phase: str, job: JobView | None) -> bool:
        waiting = phase in (Phase.PENDING.value, Phase.QUEUED.value) and job is None and not task.deleting
        return waiting and spec is not None and not spec.cancel

    async def _admit_round(self) -> None:
        running: list[queue.Entry] = []
        candidates: list[queue.Entry] = []
        views: dict[Hashable, TaskView] = {}
        for task in self.indexes.all_tasks():
            job = self.indexes.job(task.key)
            phase = self._status_of(task).get("phase") or Phase.PENDING.value
            spec = self._spec(task)
            entry = queue.Entry(task.key, task.name, spec.priority if spec else 0, task.created, self._lane(task, spec))
            busy = job is not None and job.finished is None
            if busy or phase == Phase.RUNNING.value or self._reserved_now(task.key):
                running.append(entry)
            elif self._candidate(task, spec, phase, job) and entry.lane is not None:
                candidates.append(entry)
                views[task.key] = task
        admission = queue.admit(candidates, running, self.settings.max_concurrent)
        blocked = {key: holder.name for key, holder in admission.blocked.items()}
        changed = [views[key] for key in views if blocked.get(key) != self._blocked.get(key)]
        self._blocked = blocked
        for task in changed:  # tell them why they wait (the task holding their branch, or a slot)
            await self.reconcile_quietly(task)
        chosen = [views[entry.key] for entry in admission.start]
        gate = asyncio.Semaphore(START_PARALLELISM)

        async def start(task: TaskView) -> None:
            async with gate:
                try:
                    await self._start(task)
                except ApiException as exc:
                    log.warning(
                        "task %s/%s: creating its Job failed: %s",
                        task.namespace,
                        task.name,
                        exc.reason,
                        extra={"task": task.name, "namespace": task.namespace},
                    )

        await asyncio.gather(*(start(task) for task in chosen))

    async def _start(self, task: TaskView) -> None:
        lock = self._locks.setdefault(task.uid, asyncio.Lock())
        async with lock:
            task = self._fresh(self.indexes.task(task.key) or task)
            phase = task.status.get("phase") or Phase.PENDING.value
            spec = self._spec(task)
            busy = self.indexes.job(task.key) is not None
            if spec is None or spec.cancel or phase not in (Phase.PENDING.value, Phase.QUEUED.value) or busy:
                return
            if self._reserved_now(task.key):
                return
            owner = task.ref
            pod_annotations = self.settings.pod_annotations(dict(task.annotations))
            follows = self.indexes.task((task.namespace, spec.follow_up_of)) if spec.follow_up_of else None
            job_input = lifecycle.job_input(
                task.name,
                spec,
                branch=self._lane(task, spec),
                earlier_repo=current_status(follows).repo if follows else None,
                default_timeout=self.settings.default_timeout_seconds,
            )
            assert self.api is not None
            core: Any = client.CoreV1Api(self.api)
            batch: Any = client.BatchV1Api(self.api)
            await _create_ok_if_exists(
                core.create_namespaced_config_map(task.namespace, builders.build_spec_configmap(owner, job_input))
            )
            job = builders.build_job(owner, job_input, self.settings, pod_annotations)
            await _create_ok_if_exists(batch.create_namespaced_job(task.namespace, job))
            # Its status turns Running when the Job's own event arrives (one API call less per start).
            self._reserved[task.key] = time.monotonic()

    # --- Jobs --------------------------------------------------------------------------------------

    async def _job_absent(self, namespace: str, name: str) -> bool:
        assert self.api is not None
        try:
            await client.BatchV1Api(self.api).read_namespaced_job(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    async def _delete_job(self, job: JobView) -> None:
        assert self.api is not None
        try:
            # The UID precondition: a Job of a re-created task with the same name is never hit.
            options = client.V1DeleteOptions(
                propagation_policy="Background", preconditions=client.V1Preconditions(uid=job.uid)
            )
            await client.BatchV1Api(self.api).delete_namespaced_job(job.name, job.namespace, body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or the name now belongs to another Job
                raise

    async def _log_tail(self, namespace: str, pod: str) -> str:
        assert self.api is not None
        try:
            text = await client.CoreV1Api(self.api).read_namespaced_pod_log(
                pod, namespace, container=CONTAINER_NAME, tail_lines=20
            )
        except ApiException:
            return ""
        return str(text or "")

    async def retain_or_release(self, job: JobView) -> None:
        """A finished Job keeps its pod (and its log) until the transcript is archived; then it gets
        its TTL. Without an archiver (no API deployed) it gets it ``archive_wait_seconds`` after finishing."""
        if job.finished is None or job.ttl is not None or job.deleting:
            return
        task = self.indexes.task((job.namespace, job.task_name))
        if task is not None and task.uid == job.task_uid:
            phase = self._status_of(task).get("phase")
            if phase not in {p.value for p in Phase if p.terminal}:
                return  # its outcome is not recorded yet
            if not task.archived:
                finished = job.completion_time or job.start_time
                age = (
                    (now() - dt.datetime.fromisoformat(finished.replace("Z", "+00:00"))).total_seconds()
                    if finished
                    else 0.0
                )
                if age < self.settings.archive_wait_seconds:
                    return
        assert self.api is not None
        try:
            await client.BatchV1Api(self.api).patch_namespaced_job(
                job.name, job.namespace, {"spec": {"ttlSecondsAfterFinished": self.settings.job_ttl_seconds}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


async def _create_ok_if_exists(call: Any) -> None:
    """Deterministic names make a retried create meet a 409: it already exists, which is what we want."""
    try:
        await call
    except ApiException as exc:
        if exc.status != 409:
            raise
