"""The job's output: JSON Lines on stdout (Claude's events and our own), diagnostics on stderr.

Everything written here goes through the one redactor first.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, BinaryIO, Literal, TextIO

from ccr.core.events import ccr_line, result_line
from ccr.core.model import JobResult
from ccr.core.redact import Redactor

PhaseName = Literal["preflight", "orchestrator", "worker", "finish"]


class Emitter:
    """Thread-safe writer of the job's stdout events and stderr diagnostics."""

    def __init__(self, redactor: Redactor, out: BinaryIO | None = None, err: TextIO | None = None) -> None:
        self.redactor = redactor
        self._out = out if out is not None else sys.stdout.buffer
        self._err = err if err is not None else sys.stderr
        self._lock = threading.Lock()
        self._out_closed = False

    def line(self, text: str) -> None:
        """Write one already-JSON line (Claude's event) after redaction."""
        data = (self.redactor.redact(text.rstrip("\n")) + "\n").encode()
        with self._lock:
            if self._out_closed:
                return
            try:
                self._out.write(data)
                self._out.flush()
            except OSError:  # the reader went away: keep working (push, PR, termination message)
                self._out_closed = True

    def emit(self, event: str, **fields: Any) -> None:
        self.line(ccr_line(event, **fields))

    def phase(self, phase: PhaseName) -> None:
        self.emit("phase", phase=phase)

    def step(self, step: str, message: str, **extra: Any) -> None:
        self.emit("step", step=step, message=message, **extra)

    def redact_result(self, result: JobResult) -> JobResult:
        return JobResult.model_validate_json(self.redactor.redact(result.model_dump_json(by_alias=True)))

    def result(self, result: JobResult) -> None:
        self.line(result_line(self.redact_result(result)))

    def diag(self, message: str) -> None:
        self.stderr_chunk(self.redactor.redact(message.rstrip("\n")) + "\n")

    def stderr_chunk(self, text: str) -> None:
        """Already-redacted text (from a :class:`StreamRedactor`) for stderr."""
        if not text:
            return
        with self._lock, contextlib.suppress(OSError):
            self._err.write(text)
            self._err.flush()
