"""What each failure means and what to do about it, in plain words: one table for the dashboard (task header
and transcript) and the pull request's outcome section."""

from __future__ import annotations

import datetime as dt

from ccr.core.model import AuthTarget, ErrorType

AUTH_ADVICE: dict[AuthTarget, str] = {
    AuthTarget.CLAUDE: "Claude's login expired or was revoked. On a machine where you are logged in to Claude, run "
    "`claude setup-token`, put the new token in the Secret (cluster mode) or in CLAUDE_CODE_OAUTH_TOKEN (local "
    "mode), and retry the task.",
    AuthTarget.GITHUB: "GitHub refused the token (GITHUB_TOKEN): it expired, was revoked or lacks access. Create a "
    "new token (see the README's token permissions), put it in the Secret (cluster mode) or in GITHUB_TOKEN "
    "(local mode), and retry the task.",
}

ADVICE: dict[ErrorType, str] = {
    ErrorType.AUTH_EXPIRED: AUTH_ADVICE[AuthTarget.CLAUDE],
    ErrorType.CAPACITY_REACHED: "The Claude plan's usage limit was reached{reset}. A retry continues on the same "
    "branch and pull request; the work so far is there.",
    ErrorType.TIMEOUT: "The task ran past its timeout and was stopped. The work so far was pushed to the branch: "
    "retry (it continues the branch) with a longer timeout, or split the task.",
    ErrorType.EXIT_CODE: "Claude or the job pipeline stopped with an error (see the last lines of the transcript). "
    "If it looks transient, retry; if Claude ran out of turns, retry with a larger max turns.",
    ErrorType.CANCELLED: "The task was cancelled on request. Anything already pushed stays on the branch; a retry "
    "continues from there.",
    ErrorType.INVALID: "The task could not start: check the repository name (owner/name), that the GitHub token can "
    "reach it, the prompt, and the runner's configuration named in the message.",
    ErrorType.PUSH_FAILED: "The work could not be pushed, so it is not on the branch: check that the GitHub token "
    "may push to the repository (Contents: write) and that no branch protection refuses it, then retry.",
    ErrorType.START_FAILED: "The job never started (see the message: an image that cannot be pulled, a pod that "
    "cannot be scheduled, a launch that failed). Fix that, then retry.",
}


def advice(
    error_type: ErrorType | None, auth_target: AuthTarget | None = None, reset: dt.datetime | None = None
) -> str:
    if error_type is None:
        return ""
    if error_type is ErrorType.AUTH_EXPIRED:
        return AUTH_ADVICE[auth_target or AuthTarget.CLAUDE]
    when = f" (it resets at {reset.strftime('%Y-%m-%d %H:%M')} UTC)" if reset else ""
    return ADVICE[error_type].replace("{reset}", when)
