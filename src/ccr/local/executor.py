"""The local executor: one job-pipeline subprocess per task, the same code the Job pod runs.

It admits queued tasks up to the concurrency limit (priority, then submission order), hands each
pipeline its spec through a file (prompts can be far larger than argv allows and must not show in
``ps``), stores stdout line by line as the transcript, and enforces cancel and the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from dataclasses import dataclass, field

from ccr.core import lifecycle, queue
from ccr.core.events import ccr_line, parse_line, result_line
from ccr.core.model import ErrorType, JobInput, JobResult, Phase, now
from ccr.core.settings import Settings
from ccr.core.store import TaskRecord
from ccr.local.store import LocalStore

log = logging.getLogger(__name__)

# Lines of a few MB happen (a tool result holding a whole file); longer ones are cut.
_LINE_LIMIT = 16 * 1024 * 1024
_STDERR_TAIL = 20
# The pipeline keeps its own deadline; this margin covers its cancel path before we kill it outright.
_HARD_DEADLINE_MARGIN = 15.0


@dataclass
class _Run:
    task_id: str
    process: asyncio.subprocess.Process
    deadline: float  # the task's timeout, seconds
    cancel_requested: bool = False
    timed_out: bool = False
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_STDERR_TAIL))


def exit_status(returncode: int) -> int:
    """A process's exit status as a container runtime reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _entry(task: TaskRecord) -> queue.Entry:
    return queue.Entry(task.id, task.id, task.spec.priority, task.created.isoformat(), task.status.branch)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the server dies, so no pipeline runs on unobserved (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalExecutor:
    def __init__(self, store: LocalStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._run_tasks: set[asyncio.Task[None]] = set()
        self.work_dir = settings.data_dir / "work"

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._admit_loop(), name="ccr-admit")
        self.wake()

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
        for run in list(self.runs.values()):
            await self._terminate(run)
        if self._run_tasks:
            await asyncio.wait(self._run_tasks, timeout=self.settings.cancel_grace_seconds + _HARD_DEADLINE_MARGIN)

    def wake(self) -> None:
        """Something changed (a task was queued or finished): look at the queue again."""
        self._wake.set()

    async def cancel(self, task_id: str) -> None:
        run = self.runs.get(task_id)
        if run and not run.cancel_requested:
            run.cancel_requested = True
            await self._terminate(run)
        self.wake()

    # --- admission ---------------------------------------------------------------------------------
    async def _admit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._admit_round()
            except Exception:  # the loop must outlive any one round: the next wake tries again
                log.exception("admitting queued tasks failed")

    async def _admit_round(self) -> None:
        """Start what the queue allows; tell the others why they wait (a slot, or their branch's run)."""
        queued = [_entry(task) for task in self.store.queued()]
        running = [_entry(await self.store.get(task_id)) for task_id in self.runs]
        admission = queue.admit(queued, running, self.settings.max_concurrent)
        starting = {entry.key for entry in admission.start}
        for entry in queued:
            if entry.key in starting:
                continue
            holder = admission.blocked.get(entry.key)
            reason = lifecycle.Reason.WAITING_FOR_TASK if holder else lifecycle.Reason.WAITING_FOR_SLOT
            message = f"waiting for task {holder.name} (same branch) to finish" if holder else None
            status = (await self.store.get(entry.name)).status
            if status.reason != reason or status.message != message:
                await self.store.transition(entry.name, lifecycle.queue, reason, message)
        for entry in admission.start:
            await self._launch(await self.store.get(entry.name))

    def _job_input(self, task: TaskRecord) -> JobInput:
        earlier = self.store.peek(task.spec.follow_up_of) if task.spec.follow_up_of else None
        return lifecycle.job_input(
            task.id,
            task.spec,
            branch=task.status.branch,
            earlier_repo=earlier.status.repo if earlier else None,
            default_timeout=self.settings.default_timeout_seconds,
        )

    async def _launch(self, task: TaskRecord) -> None:
        task_dir = self.settings.data_dir / "tasks" / task.id
        task_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec_file = task_dir / "spec.json"
        job = self._job_input(task)
        spec_file.write_text(job.model_dump_json(by_alias=True, exclude_none=True))
        spec_file.chmod(0o600)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ccr.job",
            "--spec",
            str(spec_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(task.id),
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl call: safe after fork
        )
        run = _Run(task.id, process, deadline=float(job.spec.timeout_seconds or 0))
        self.runs[task.id] = run
        await self.store.transition(task.id, lifecycle.started, pod_name=None, start_time=now())
        await self.store.append(task.id, [ccr_line("status", phase=Phase.RUNNING.value, pid=process.pid)])
        job_task = asyncio.create_task(self._supervise(run), name=f"ccr-run-{task.id}")
        self._run_tasks.add(job_task)
        job_task.add_done_callback(self._run_tasks.discard)

    def _environment(self, task_id: str) -> dict[str, str]:
        env = dict(os.environ)
        s = self.settings
        env.update(
            {
                "CCR_CLAUDE_BIN": s.claude_bin,
                "GITHUB_API_URL": s.github_api_url,
                "GITHUB_SERVER_URL": s.github_server_url,
                "CCR_WORKDIR": str((self.work_dir / task_id).resolve()),
                "CCR_CANCEL_GRACE_SECONDS": str(s.cancel_grace_seconds),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if s.github_token:
            env["GITHUB_TOKEN"] = s.github_token.get_secret_value()
        if s.claude_oauth_token:
            env["CLAUDE_CODE_OAUTH_TOKEN"] = s.claude_oauth_token.get_secret_value()
        if s.claude_credentials_file:
            env["CCR_CLAUDE_CREDENTIALS_FILE"] = str(s.claude_credentials_file)
        for name in ("SESSION_SECRET", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
            env.pop(name, None)  # the pipeline needs none of these; the API key must never take over
        return env

    # --- one run -----------------------------------------------------------------------------------
    async def _supervise(self, run: _Run) -> None:
        deadline = run.deadline + self.settings.cancel_grace_seconds + _HARD_DEADLINE_MARGIN
        watchdog = asyncio.get_running_loop().call_later(deadline, self._on_deadline, run)
        try:
            result = await self._pump(run)
            code = exit_status(await run.process.wait())
            reported = result is not None
            if result is None:
                result = self._stopped(run)
            if result is None and run.stderr_tail:  # it crashed: what it said last, for the reader
                tail = "\n".join(line for line in run.stderr_tail if line)
                await self.store.append(run.task_id, [ccr_line("stderr", text=tail)])
            status = await self.store.finish(run.task_id, result, exit_code=code)
            if not reported:  # killed or crashed before its result line: the transcript still ends with one
                await self.store.append(run.task_id, [result_line(JobResult.of(status))])
        except Exception:  # a broken run must never take the server down
            log.exception("supervising task failed", extra={"task": run.task_id})
            with contextlib.suppress(Exception):
                await self.store.transition(
                    run.task_id, lifecycle.failed, ErrorType.EXIT_CODE, "internal error of the local executor"
                )
        finally:
            watchdog.cancel()
            self.runs.pop(run.task_id, None)
            self.wake()

    async def _pump(self, run: _Run) -> JobResult | None:
        """Store stdout line by line (whatever arrived together, in one commit); return the result line."""
        assert run.process.stdout and run.process.stderr
        stderr = asyncio.create_task(self._drain_stderr(run))
        result: JobResult | None = None
        pending = b""
        skipping = False  # inside a line longer than the limit: drop until its end
        while chunk := await run.process.stdout.read(1 << 16):
            *complete, pending = (pending + chunk).split(b"\n")
            if skipping and complete:
                complete, skipping = complete[1:], False
            if len(pending) > _LINE_LIMIT:
                complete.append(pending[:4096] + b" ...(line cut)")
                pending, skipping = b"", True
            texts = [line.decode(errors="replace") for line in complete if line.strip()]
            if texts:
                result = await self._store_lines(run.task_id, texts) or result
        if pending.strip() and not skipping:
            result = await self._store_lines(run.task_id, [pending.decode(errors="replace")]) or result
        await stderr
        return result

    async def _store_lines(self, task_id: str, texts: list[str]) -> JobResult | None:
        await self.store.append(task_id, texts)
        result = None
        for text in texts:
            event = parse_line(text)
            if not event or event.get("type") != "ccr":
                continue
            if event.get("event") == "result":
                result = JobResult.model_validate(event)
            elif event.get("event") == "step" and event.get("url"):
                await self._note_pr(task_id, event)
        return result

    async def _note_pr(self, task_id: str, event: dict[str, object]) -> None:
        """The draft PR is open: show its link while the worker is still running."""
        repo, branch = event.get("repo"), event.get("branch")
        await self.store.transition(
            task_id,
            lifecycle.pr_opened,
            url=str(event["url"]),
            repo=repo if isinstance(repo, str) else None,
            branch=branch if isinstance(branch, str) else None,
        )

    async def _drain_stderr(self, run: _Run) -> None:
        assert run.process.stderr
        async for raw in run.process.stderr:
            run.stderr_tail.append(raw.decode(errors="replace").rstrip())

    @staticmethod
    def _stopped(run: _Run) -> JobResult | None:
        """No result line because we stopped it (the deadline, a cancel past its grace); None: it crashed."""
        if run.timed_out:
            return JobResult(status=Phase.FAILED, error_type=ErrorType.TIMEOUT, message="deadline passed; killed")
        if run.cancel_requested:
            return JobResult(status=Phase.CANCELLED, error_type=ErrorType.CANCELLED, message="cancelled; killed")
        return None

    def _on_deadline(self, run: _Run) -> None:
        run.timed_out = True
        self._kill(run, signal.SIGKILL)

    async def _terminate(self, run: _Run) -> None:
        """SIGTERM (the pipeline pushes its work and reports), then SIGKILL after the grace period."""
        self._kill(run, signal.SIGTERM)
        grace = self.settings.cancel_grace_seconds + _HARD_DEADLINE_MARGIN
        asyncio.get_running_loop().call_later(grace, self._kill, run, signal.SIGKILL)

    @staticmethod
    def _kill(run: _Run, sig: signal.Signals) -> None:
        if run.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if sig is signal.SIGKILL:
                os.killpg(run.process.pid, sig)  # the pipeline and everything it started
            else:
                os.kill(run.process.pid, sig)  # the pipeline forwards it to claude itself
