"""Running the job pipeline as a real subprocess (``python -m ccr.job``) and reading its JSON Lines."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def spec_json(task_id: str, *, branch: str | None = None, **spec: Any) -> str:
    """A JobInput: the task's id, its spec and (as its runner resolves it for a follow-up) its branch."""
    job: dict[str, Any] = {"id": task_id, "spec": spec}
    if branch is not None:
        job["branch"] = branch
    return json.dumps(job)


@dataclass
class Line:
    at: float  # time.monotonic() when the test read it
    text: str
    event: dict[str, Any] | None


@dataclass
class JobProcess:
    """A started pipeline; stdout is read by a thread so tests can watch events live."""

    proc: subprocess.Popen[str]
    lines: list[Line] = field(default_factory=list)
    _queue: queue.Queue[Line | None] = field(default_factory=queue.Queue)
    stderr: str = ""

    @classmethod
    def start(cls, spec: str, env: dict[str, str], cwd: Path | None = None) -> JobProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccr.job", "--spec", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd or REPO_ROOT,
        )
        job = cls(proc)
        assert proc.stdin is not None
        proc.stdin.write(spec)
        proc.stdin.close()
        threading.Thread(target=job._read, daemon=True).start()
        threading.Thread(target=job._read_err, daemon=True).start()
        return job

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = None
            self._queue.put(Line(time.monotonic(), raw.rstrip("\n"), event))
        self._queue.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = ""
        for raw in self.proc.stderr:
            self.stderr += raw

    def next_line(self, timeout: float = 30.0) -> Line | None:
        """The next stdout line (None at end of output)."""
        line = self._queue.get(timeout=timeout)
        if line is not None:
            self.lines.append(line)
        return line

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Line:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError("output ended before the expected event; stderr:\n" + self.stderr)
            if line.event is not None and predicate(line.event):
                return line

    def finish(self, timeout: float = 120.0) -> JobOutcome:
        deadline = time.monotonic() + timeout
        while self.next_line(timeout=max(deadline - time.monotonic(), 0.01)) is not None:
            pass
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        time.sleep(0.05)  # let the stderr thread drain
        return JobOutcome(code, self.lines, self.stderr)


@dataclass
class JobOutcome:
    returncode: int
    lines: list[Line]
    stderr: str

    @property
    def stdout(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [line.event for line in self.lines if line.event is not None]

    @property
    def result(self) -> dict[str, Any]:
        last = self.lines[-1].event
        assert last is not None and last.get("type") == "ccr" and last.get("event") == "result", self.lines[-1].text
        return last

    def steps(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "ccr" and e.get("event") == "step" and e["step"] == name]

    def phases(self) -> list[str]:
        return [e["phase"] for e in self.events if e.get("type") == "ccr" and e.get("event") == "phase"]


def run_job(spec: str, env: dict[str, str], timeout: float = 120.0) -> JobOutcome:
    return JobProcess.start(spec, env).finish(timeout)
