"""Where a thread's Claude session is kept between runs, and who may read and write it (cluster mode).

A thread is a task and its follow-ups: one branch, one pull request, one Claude conversation. Its key is the
branch's name after ``claude/`` (the first task's id). In cluster mode the API keeps the session file for the
job pods (``ccr.api.routes.sessions``); a pod proves it may touch its thread's file with a token the operator
derives from a key it shares with the API (``CCR_SESSION_KEY``): HMAC-SHA256 of ``<namespace>/<thread>``, so
nothing per task is stored and a token opens one thread's session, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ccr.core.constants import BRANCH_PREFIX

THREAD_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a task id (DNS subdomain)


def thread_of(branch: str | None) -> str | None:
    """``claude/abc`` -> ``abc``; None for a branch that is not a task's."""
    if not branch or not branch.startswith(BRANCH_PREFIX):
        return None
    thread = branch[len(BRANCH_PREFIX) :]
    return thread if THREAD_PATTERN.match(thread) and len(thread) <= 253 else None


def token_for(key: str, namespace: str, thread: str) -> str:
    return hmac.new(key.encode(), f"{namespace}/{thread}".encode(), hashlib.sha256).hexdigest()


def valid(key: str, namespace: str, thread: str, token: str) -> bool:
    return hmac.compare_digest(token_for(key, namespace, thread).encode(), token.encode())
