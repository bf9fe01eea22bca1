"""A task's Claude session outlives its run: one continuous conversation per pull request.

The CLI keeps a session as ``<config dir>/projects/<project>/<session id>.jsonl``, the project named after
the working directory; with ``CLAUDE_CONFIG_DIR`` set, ``CLAUDE_CODE_PROJECT_DIR_NAME`` names it instead (read
from 2.1.332's bundle and checked against the real CLI: ``--resume <id>`` from another directory continues
the same session id and sends the earlier messages). So every run of ccr keeps its session at
``$HOME/.claude/projects/ccr/<id>.jsonl``, whatever the clone's path.

Before a run that continues a conversation (``JobInput.resume``: a task resuming after a pause, or a
follow-up), the session must be there: the local executor puts the thread's stored copy into the task's
private HOME; in a pod the pipeline downloads it from the API (``CCR_SESSION_URL`` with the per-task
``CCR_SESSION_TOKEN``). After the run the file is redacted in place (every secret of this process, as its
other output), bounded (``CCR_SESSION_MAX_BYTES``), and in a pod uploaded back. When the session cannot be
had, the run starts a fresh one with what the pull request says of the earlier work, and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from ccr.core.model import JobInput
from ccr.core.redact import Redactor

PROJECT = "ccr"
RESUME_PROMPT = (
    "The previous run of this task was stopped by the subscription's usage limit (or an overloaded API), "
    "which is over now. Continue the task where you left off: the branch and the pull request hold the work "
    "so far. Commit and push as before, and end with the summary."
)


def config_env(home: Path) -> dict[str, str]:
    """Claude's environment for a stable session location."""
    return {"CLAUDE_CONFIG_DIR": str(home / ".claude"), "CLAUDE_CODE_PROJECT_DIR_NAME": PROJECT}


def path(home: Path, session_id: str) -> Path:
    return home / ".claude" / "projects" / PROJECT / f"{session_id}.jsonl"


def fetch(url: str | None, token: str | None, home: Path, session_id: str, timeout: float = 60) -> str | None:
    """In a pod: the thread's stored session from the API into place. None when it is there; else why not."""
    target = path(home, session_id)
    if target.is_file():
        return None
    if not url:
        return "no stored session was handed to this run"
    try:
        response = httpx.get(url, headers=_auth(token), timeout=timeout)
    except httpx.HTTPError as exc:
        return f"cannot fetch the stored session: {type(exc).__name__}"
    if response.status_code != 200:
        return f"the stored session is not available (HTTP {response.status_code})"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(response.content)
    target.chmod(0o600)
    return None


def keep(
    home: Path,
    session_id: str,
    redactor: Redactor,
    *,
    max_bytes: int,
    url: str | None = None,
    token: str | None = None,
    timeout: float = 60,
) -> str:
    """Redact the run's session file in place, bound it, and (in a pod) upload it. Returns a sentence."""
    source = path(home, session_id)
    if not source.is_file():
        return "no session file was written"
    if source.stat().st_size > max_bytes:
        source.unlink()
        return f"the session is over {max_bytes} bytes and is not kept; a later run starts a fresh one"
    tmp = source.with_suffix(".redacting")
    with source.open(encoding="utf-8", errors="replace") as src, tmp.open("w", encoding="utf-8") as dst:
        for line in src:
            dst.write(redactor.redact(line))
    os.replace(tmp, source)
    source.chmod(0o600)
    if not url:
        return f"kept the session {session_id} ({source.stat().st_size} bytes, redacted)"
    try:
        response = httpx.put(url, content=source.read_bytes(), headers=_auth(token), timeout=timeout)
    except httpx.HTTPError as exc:
        return f"could not upload the session: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"could not upload the session (HTTP {response.status_code})"
    return f"uploaded the session {session_id} ({source.stat().st_size} bytes, redacted)"


def prompt_for(job: JobInput, restored: bool, pull_request_body: str) -> str:
    """What the worker is told. Resuming the same conversation: only what is new (a follow-up's request, or
    the word to go on after a pause). A fresh session in its place: the earlier work as the PR describes it."""
    resume = job.resume
    after_pause = resume is not None and resume.attempt > 0
    if resume is None or restored:
        return RESUME_PROMPT if after_pause else job.spec.prompt
    earlier = pull_request_body.strip() or "(the pull request has no description)"
    if after_pause:
        return (
            f"{RESUME_PROMPT}\n\nThe earlier conversation could not be restored. The task was:\n\n{job.spec.prompt}"
            f"\n\nWhat the pull request says of the work so far:\n\n{earlier}"
        )
    return (
        "This continues earlier work on this branch and pull request; the earlier conversation could not be "
        f"restored. What the pull request says of it:\n\n{earlier}\n\nThe new request:\n\n{job.spec.prompt}"
    )


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
