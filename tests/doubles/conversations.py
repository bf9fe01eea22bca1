"""Conversations the fake Anthropic API plays to the real CLI in the pipeline, local-mode, browser and operator
tests: what a worker or the orchestrator "decides", as tool calls the real CLI then really executes."""

from __future__ import annotations

from typing import Any

from tests.doubles.fake_anthropic import (
    Reply,
    Step,
    Text,
    Thinking,
    ToolUse,
    bash,
    structured_answer,
    text_reply,
)

# The orchestrator's prompt starts with this (ccr.job.claude.orchestrator_prompt): its conversation is told
# apart from the worker's by it, because it also quotes the task's prompt.
ORCHESTRATOR = "Pick the GitHub repository that the coding task below is about"
SUMMARY = "Made two changes (WORKER.md and README.md) and pushed them."


def worker_success(*, pushes: bool = True, summary: str = SUMMARY, file: str = "WORKER.md", **reply: Any) -> list[Step]:
    """Look, write a file, edit one, commit (and push) twice, summarise. Paths are relative to the clone
    (the worker's cwd); the Write/Edit tools get them through Bash so the script needs no absolute path."""
    push = " && git push -q" if pushes else ""
    return [
        Reply(
            [
                Thinking("Check the branch before changing anything."),
                Text("I'll check the repository state first."),
                ToolUse("Bash", {"command": "git status --short --branch", "description": "Show the branch"}),
            ]
        ),
        bash(f"printf 'first change by the worker\\n' > {file} && git add -A && git commit -qm 'Add {file}'" + push),
        bash("printf '\\nEdited by the worker.\\n' >> README.md && git commit -qam 'Edit the README'" + push),
        text_reply(summary, **reply),
    ]


def pick(repo: str | None, reason: str = "the task names it") -> list[Step]:
    """The orchestrator's structured answer (the StructuredOutput tool that --json-schema adds)."""
    return [structured_answer({"repo": repo, "reason": reason})]


def endless_bash(count: int = 20) -> list[Step]:
    """More tool calls than any max-turns bound lets through."""
    return [bash(f"echo step {i}") for i in range(count)]


def leave_uncommitted(path: str, text: str) -> Step:
    return bash(f"printf '%s\\n' {text!r} > {path}", description=f"write {path}")


def slow_tool(seconds: int) -> Step:
    """A Bash call that takes a while (a cancel or our deadline arrives while it runs): a loop, because the
    CLI refuses a standalone ``sleep N``."""
    return bash(f"for i in $(seq {seconds}); do echo tick $i; sleep 1; done", description=f"tick {seconds} s")
