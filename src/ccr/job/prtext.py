"""The text the pipeline writes to GitHub: PR title, PR body and its outcome section, comments. Pure."""

from __future__ import annotations

import re

from ccr.core.advice import advice
from ccr.core.model import Changes, ErrorType, JobResult, Phase, Usage
from ccr.core.units import usd

TITLE_MAX = 72
# GitHub refuses bodies over 65536 characters; leave room for the outcome section and Claude's notes.
PROMPT_IN_BODY_MAX = 48_000
SUMMARY_MAX = 6_000
OUTCOME_START = "<!-- ccr:outcome:start -->"
OUTCOME_END = "<!-- ccr:outcome:end -->"
_BLOCKERS = re.compile(
    r"^\s*(?:#+\s*)?\**blockers\**\s*:?\s*\**\s*$|^\s*\**blockers\**\s*:", re.IGNORECASE | re.MULTILINE
)


def pr_title(prompt: str) -> str:
    first = next((line.strip() for line in prompt.splitlines() if line.strip()), "Claude task")
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1].rstrip() + "…"


def pr_body(task_id: str, prompt: str) -> str:
    shown = (
        prompt
        if len(prompt) <= PROMPT_IN_BODY_MAX
        else (prompt[:PROMPT_IN_BODY_MAX] + f"\n\n… (prompt truncated: {len(prompt)} characters in all)")
    )
    quoted = "\n".join(f"> {line}" if line else ">" for line in shown.splitlines())
    return (
        f"Opened by claude-code-runner for task `{task_id}`. Claude Code is working on it; this draft fills "
        f"in as commits arrive.\n\n### Prompt\n\n{quoted}\n\n"
        f"{OUTCOME_START}\n### Outcome\n\nRunning…\n{OUTCOME_END}\n"
    )


def split_blockers(summary: str) -> tuple[str, str]:
    """Claude's final message -> (summary, blockers), split at a "Blockers:" heading when there is one."""
    match = _BLOCKERS.search(summary)
    if not match:
        return summary.strip(), ""
    return summary[: match.start()].strip(), summary[match.end() :].strip()


def outcome_section(result: JobResult, summary: str, blockers: str) -> str:
    usage = result.usage or Usage()
    rows = [
        ("Status", result.status.value),
        ("Error type", _error(result)),
        ("Changes", changes_text(result.changes)),
        ("Cost", usd(usage.cost_usd) if usage.cost_usd is not None else "unknown"),
        ("Turns", str(usage.turns) if usage.turns is not None else "unknown"),
        ("Duration", _duration(usage.duration_ms)),
    ]
    if usage.input_tokens is not None or usage.output_tokens is not None:
        rows.append(("Tokens (in / out)", f"{usage.input_tokens or 0} / {usage.output_tokens or 0}"))
    if result.reset_time:
        rows.append(("Capacity resets", result.reset_time.isoformat()))
    if result.session_id:
        rows.append(("Session", f"`{result.session_id}`"))
    table = "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    parts = [OUTCOME_START, "### Outcome", "", table]
    if summary:
        parts += ["", "#### Summary", "", _clip(summary)]
    if result.status is not Phase.SUCCEEDED and result.message:
        parts += ["", "#### What went wrong", "", _clip(result.message)]
        parts += ["", advice(result.error_type, result.auth_target, result.reset_time)]
    if blockers:
        parts += ["", "#### Blockers", "", _clip(blockers)]
    parts.append(OUTCOME_END)
    return "\n".join(parts)


def with_outcome(body: str, section: str) -> str:
    """Replace the outcome section of ``body`` (keeping whatever else Claude or a person wrote there)."""
    start, end = body.find(OUTCOME_START), body.find(OUTCOME_END)
    if start >= 0 and end > start:
        return body[:start] + section + body[end + len(OUTCOME_END) :]
    return body.rstrip() + "\n\n" + section + "\n"


def changes_text(changes: Changes | None) -> str:
    return changes.summary() if changes is not None else "none (the agent did not run)"


def _error(result: JobResult) -> str:
    if result.error_type is None:
        return "none"
    target = f" ({result.auth_target.value})" if result.auth_target else ""
    return f"`{result.error_type.value}`{target}"


def closed_empty_comment(result: JobResult) -> str:
    what = result.error_type.value if result.error_type else "failed"
    return (
        f"Closing this draft: the task ended (`{what}`) before Claude committed anything, so there is nothing to "
        "review. Retrying the task so that it continues on this branch reopens it."
    )


def stop_comment(error_type: ErrorType, pushed: str) -> str:
    what = "was cancelled" if error_type is ErrorType.CANCELLED else "timed out (timeoutSeconds passed)"
    return f"This task {what}. Claude was stopped; {pushed}"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "unknown"
    seconds = ms / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def start_commit_message(task_id: str, prompt: str) -> str:
    return f"Start task {task_id}\n\n{pr_title(prompt)}"
