"""The Kubernetes task store: ``ccr serve`` with ``CCR_BACKEND=kubernetes``.

- Tasks are ClaudeTask objects in ``CCR_NAMESPACE``. Reads come from an in-memory cache fed by one watch
  (a list at start and after every lost watch), never from a list call per request.
- Cancel is a merge patch ``spec.cancel: true``; the operator does the rest.
- Transcripts: while a task's pod exists, an archiver follows its log (pod log API, ``follow=true``) and
  appends every line to ``<data_dir>/transcripts/<namespace>/<task>.jsonl``; ``seq`` is the line number.
  ``transcript``/``follow`` read that file, so a transcript outlives the pod, the Job TTL and API restarts.
  After a restart the archiver re-reads the log and skips the lines already archived (a log only grows).
- Retention handshake: when the task is finished and its log stream has ended, the file is fsynced and the
  archiver sets the annotation ``ccr.dev/transcript-archived: "true"`` on the ClaudeTask. Only then does
  the operator give the finished Job its ``ttlSecondsAfterFinished`` (or after ``CCR_ARCHIVE_WAIT_SECONDS``
  when no API archives at all), so the pod log is never collected before it is safe.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import functools
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from ccr.core.constants import (
    API_VERSION,
    ARCHIVED_ANNOTATION,
    CONTAINER_NAME,
    GROUP,
    KIND,
    PLURAL,
    SUBMITTED_ANNOTATION,
    VERSION,
)
from ccr.core.model import TERMINAL_PHASES, Phase, TaskSpec, TaskStatus
from ccr.core.redact import Redactor
from ccr.core.settings import Settings
from ccr.core.store import ChangeSignal, TaskNotFound, TaskRecord, TranscriptLine

log = logging.getLogger("ccr.kube.store")
MERGE_PATCH = "application/merge-patch+json"
IDLE_CHECK_SECONDS = 2.0
CATCHUP_STREAMS = 8  # log streams at once for tasks that finished before we followed them
TERMINAL = frozenset(p.value for p in TERMINAL_PHASES)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for _ in f)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _read_complete_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The whole lines after byte ``offset`` and the offset after the last of them."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", errors="replace").splitlines()
    return lines, offset + end


def _parse_time(value: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else dt.datetime.now(dt.UTC)


def record_of(obj: dict[str, Any]) -> TaskRecord:
    meta = obj.get("metadata", {})
    raw_spec = obj.get("spec") or {}
    try:
        spec = TaskSpec.model_validate(raw_spec)
    except ValidationError:  # refused by the operator (Failed/invalid); still show it
        spec = TaskSpec.model_construct(prompt=str(raw_spec.get("prompt", "")))
    try:
        status = TaskStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        status = TaskStatus()
    created = (meta.get("annotations") or {}).get(SUBMITTED_ANNOTATION) or meta.get("creationTimestamp")
    return TaskRecord(
        id=meta.get("name", ""),
        spec=spec,
        status=status,
        created=_parse_time(created),
        generation=int(meta.get("generation") or 1),
        revision=str(meta.get("resourceVersion") or ""),
    )


class KubeStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.dir = Path(settings.data_dir) / "transcripts" / self.namespace
        self.changes = ChangeSignal()
        self._objects: dict[str, dict[str, Any]] = {}
        self._records: dict[str, tuple[str, TaskRecord]] = {}  # parsed once per resourceVersion
        self._lines: dict[str, ChangeSignal] = {}
        self._archivers: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._catchup = asyncio.Semaphore(CATCHUP_STREAMS)
        self._redactor = Redactor.from_env()  # token shapes, and any secret this process holds
        self.api: client.ApiClient | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.settings.kubeconfig is not None:
            await config.load_kube_config(config_file=str(self.settings.kubeconfig))
        else:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                await config.load_kube_config()
        self.api = client.ApiClient()
        self._tasks.append(asyncio.create_task(self._watch_loop(), name="ccr-claudetask-watch"))
        await asyncio.wait_for(self._synced.wait(), timeout=30)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._archivers.values()]:
            task.cancel()
        for task in [*self._tasks, *self._archivers.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.api is not None:
            await self.api.close()

    @property
    def _custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    async def _watch_loop(self) -> None:
        while True:
            try:
                listing = await self._custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                fresh = {o["metadata"]["name"]: o for o in listing.get("items", [])}
                self._objects = fresh
                for obj in fresh.values():
                    self._observe(obj)
                self._synced.set()
                await self.changes.bump()
                rv = listing["metadata"]["resourceVersion"]
                async with watch.Watch() as w:
                    async for event in w.stream(
                        self._custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        self.namespace,
                        PLURAL,
                        resource_version=rv,
                        timeout_seconds=300,
                        allow_watch_bookmarks=True,
                    ):
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR" or not isinstance(obj, dict):
                            break
                        if kind == "BOOKMARK":
                            continue
                        name = obj["metadata"]["name"]
                        if kind == "DELETED":
                            self._objects.pop(name, None)
                        else:
                            self._objects[name] = obj
                            self._observe(obj)
                        await self.changes.bump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any broken watch: list again
                log.warning("ClaudeTask watch broke (%s); listing again", exc)
                await asyncio.sleep(1)

    # --- the TaskStore protocol ----------------------------------------------------------------------

    async def create(self, task_id: str, spec: TaskSpec) -> TaskRecord:
        submitted = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": task_id,
                "namespace": self.namespace,
                "annotations": {SUBMITTED_ANNOTATION: submitted},
            },
            "spec": spec.dump(),
        }
        obj = await self._custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        self._objects.setdefault(task_id, obj)
        await self.changes.bump()
        return record_of(obj)

    async def get(self, task_id: str) -> TaskRecord:
        obj = self._objects.get(task_id)
        if obj is None:
            raise TaskNotFound(task_id)
        return self._record(obj)

    def _record(self, obj: dict[str, Any]) -> TaskRecord:
        meta = obj.get("metadata", {})
        name, version = meta.get("name", ""), str(meta.get("resourceVersion") or "")
        hit = self._records.get(name)
        if hit is not None and version and hit[0] == version:
            return hit[1]
        record = record_of(obj)
        self._records[name] = (version, record)
        if len(self._records) > 2 * len(self._objects) + 100:  # forget deleted tasks
            self._records = {k: v for k, v in self._records.items() if k in self._objects}
        return record

    async def list(self) -> builtins.list[TaskRecord]:
        records = (self._record(o) for o in list(self._objects.values()))
        return sorted(records, key=lambda r: (r.created, r.id), reverse=True)

    async def cancel(self, task_id: str) -> TaskRecord:
        record = await self.get(task_id)
        if record.status.phase.terminal or record.spec.cancel:
            return record
        try:
            obj = await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                task_id,
                {"spec": {"cancel": True}},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise TaskNotFound(task_id) from exc
            raise
        self._objects[task_id] = obj
        await self.changes.bump()
        return record_of(obj)

    async def counts(self) -> dict[Phase, int]:
        out = dict.fromkeys(Phase, 0)
        for obj in list(self._objects.values()):
            out[self._record(obj).status.phase] += 1
        return out

    def _path(self, task_id: str) -> Path:
        return self.dir / f"{task_id}.jsonl"

    async def transcript(self, task_id: str, after: int = 0, limit: int | None = None) -> builtins.list[TranscriptLine]:
        lines = await asyncio.to_thread(_read_lines, self._path(task_id))
        end = len(lines) if limit is None else after + limit
        return [TranscriptLine(seq=i, line=line) for i, line in enumerate(lines[after:end], start=after + 1)]

    async def follow(self, task_id: str, after: int = 0) -> AsyncIterator[TranscriptLine]:
        signal = self._lines.setdefault(task_id, ChangeSignal())
        offset, seq = 0, 0  # read each byte of the file once, however long the transcript grows
        while True:
            version = signal.version
            record = await self.get(task_id)
            done = record.status.phase.terminal and task_id not in self._archivers
            lines, offset = await asyncio.to_thread(_read_complete_lines, self._path(task_id), offset)
            for line in lines:
                seq += 1
                if seq > after:
                    yield TranscriptLine(seq=seq, line=line)
            if done:
                return
            if not lines:
                await signal.wait(version, timeout=2.0)

    async def wait_changed(self, version: int, timeout: float) -> int:
        return await self.changes.wait(version, timeout)

    # --- archiving -----------------------------------------------------------------------------------

    def _observe(self, obj: dict[str, Any]) -> None:
        """Start an archiver for a task whose pod exists and whose transcript is not archived yet."""
        meta = obj["metadata"]
        name = meta["name"]
        if (meta.get("annotations") or {}).get(ARCHIVED_ANNOTATION) == "true" or name in self._archivers:
            return
        status = obj.get("status") or {}
        phase = status.get("phase")
        if status.get("podName") or phase in TERMINAL:
            task = asyncio.create_task(self._archive(name), name=f"ccr-archive-{name}")
            self._archivers[name] = task
            task.add_done_callback(functools.partial(self._archiver_done, name))

    def _archiver_done(self, name: str, _task: asyncio.Task[None]) -> None:
        self._archivers.pop(name, None)

    async def _archive(self, name: str) -> None:
        signal = self._lines.setdefault(name, ChangeSignal())
        path = self._path(name)
        try:
            while True:
                obj = self._objects.get(name)
                if obj is None:
                    return  # deleted
                status = obj.get("status") or {}
                pod = status.get("podName")
                terminal = status.get("phase") in TERMINAL
                if pod:
                    # Catching up on finished tasks (an API restart) is bounded; live ones never wait.
                    gate = self._catchup if terminal else contextlib.nullcontext()
                    async with gate:
                        ended = await self._follow_pod(name, pod, path, signal)
                    if ended and terminal:
                        break
                    if ended:
                        # the stream ended but the operator has not recorded the outcome yet
                        await self.changes.wait(self.changes.version, timeout=2.0)
                        obj = self._objects.get(name) or {}
                        if (obj.get("status") or {}).get("phase") in TERMINAL:
                            await self._follow_pod(name, pod, path, signal)  # catch the last lines
                            break
                        continue
                elif terminal:
                    break  # never had a pod: nothing to archive
                await asyncio.sleep(1)
            await self._mark_archived(name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("archiving the transcript of %s failed; will retry on the next change", name)

    async def _follow_pod(self, name: str, pod: str, path: Path, signal: ChangeSignal) -> bool:
        """Append the pod's log lines not yet archived; True once the stream ended normally."""
        have = await asyncio.to_thread(_count_lines, path)
        core: Any = client.CoreV1Api(self.api)
        try:
            resp = await core.read_namespaced_pod_log(
                pod, self.namespace, container=CONTAINER_NAME, follow=True, _preload_content=False
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # not started yet, or gone
                obj = self._objects.get(name) or {}
                return (obj.get("status") or {}).get("phase") in TERMINAL
            raise
        seen = 0
        try:
            with path.open("a", encoding="utf-8") as out:
                buf = b""
                while True:
                    try:
                        chunk = await asyncio.wait_for(resp.content.readany(), timeout=IDLE_CHECK_SECONDS)
                    except TimeoutError:
                        # A kubelet ends the stream when the container ends; some log servers (kwok) keep
                        # it open. Once the task is finished and the log has been quiet, it is complete.
                        if self._is_terminal(name):
                            break
                        continue
                    if not chunk:
                        break
                    buf += chunk
                    *complete, buf = buf.split(b"\n")
                    wrote = False
                    for raw in complete:
                        seen += 1
                        if seen <= have:
                            continue
                        out.write(self._redactor.redact(raw.decode("utf-8", errors="replace")) + "\n")
                        wrote = True
                    if wrote:
                        out.flush()
                        await signal.bump()
                if buf and seen + 1 > have:
                    out.write(self._redactor.redact(buf.decode("utf-8", errors="replace")) + "\n")
                    out.flush()
                out.flush()
                os.fsync(out.fileno())
            await signal.bump()
        finally:
            resp.release()
        return True

    def _is_terminal(self, name: str) -> bool:
        obj = self._objects.get(name)
        return obj is None or (obj.get("status") or {}).get("phase") in TERMINAL

    async def _mark_archived(self, name: str) -> None:
        try:
            await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                {"metadata": {"annotations": {ARCHIVED_ANNOTATION: "true"}}},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        signal = self._lines.get(name)
        if signal is not None:
            await signal.bump()
