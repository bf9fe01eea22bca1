"""The job pipeline: preflight -> orchestrator (repo, clone, branch, draft PR) -> worker -> finish.

Entry point: :func:`main` (``python -m ccr.job --spec FILE|-``, ``ccr job``). stdout is JSON Lines, the last
line is the result; the exit code is 0 on success, 1 otherwise. See docs/job-pipeline.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from ccr.core.events import TERMINATION_LOG_LIMIT, result_line
from ccr.core.model import (
    TIMEOUT_DEFAULT_SECONDS,
    AuthTarget,
    Changes,
    ErrorType,
    JobInput,
    JobResult,
    Phase,
    RateLimit,
    Usage,
    branch_for,
    now,
    problems,
)
from ccr.core.redact import Redactor
from ccr.job import prtext, session
from ccr.job.classify import (
    JobFailure,
    Outcome,
    add_usage,
    classify,
    rate_limits_of,
    result_text,
    structured_output,
    usage_of,
)
from ccr.job.claude import (
    ClaudeRun,
    Control,
    child_env,
    orchestrator_argv,
    orchestrator_prompt,
    run_claude,
    worker_argv,
)
from ccr.job.config import DEFAULT_TERMINATION_LOG, TERMINATION_LOG_ENV, JobSettings
from ccr.job.events import Emitter
from ccr.job.github import GitHub, GitHubError, PullRequest
from ccr.job.gitops import Checkout, Git, GitError, Identity, clone_config, clone_url, fresh_workdir
from ccr.job.preflight import Preflight, run_preflight

# Time the finish phase may always take, even after the deadline: the safety-net push and the PR update.
FINISH_BUDGET_SECONDS = 60.0
CANDIDATES_IN_MESSAGE = 20


@dataclass
class Run:
    """What the stages have established so far; the finish phase reports from it."""

    job: JobInput
    settings: JobSettings
    out: Emitter
    control: Control
    github: GitHub | None = None
    repo: str | None = None
    branch: str | None = None
    base: str | None = None
    new_branch: bool = False
    git: Git | None = None
    checkout: Checkout | None = None
    worker_started: bool = False
    start_sha: str | None = None  # the branch's tip before the worker: this run's changes are counted from it
    pr: PullRequest | None = None
    pr_created: bool = False  # this run opened the PR (so it may close it again if it ended empty)
    changes: Changes | None = None
    usage: Usage | None = None
    session_id: str | None = None  # the worker's Claude session: the one the thread continues
    rate_limits: list[RateLimit] | None = None
    summary: str = ""
    home: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def add(self, claude: ClaudeRun) -> None:
        self.usage = add_usage(self.usage, usage_of(claude.state))
        self.rate_limits = rate_limits_of(claude.state, now()) or self.rate_limits


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Emitter(Redactor.from_env())
    termination_log = Path(os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG)
    try:
        job = read_job(args.spec)
        settings = _settings()
    except JobFailure as failure:
        result = JobResult(status=Phase.FAILED, error_type=failure.error_type, message=failure.message)
    else:
        termination_log = settings.termination_log
        control = Control(job.spec.timeout_seconds or TIMEOUT_DEFAULT_SECONDS, settings.cancel_grace_seconds)
        _install_signal_handlers(control)
        result = run_job(job, settings, out, control)
    out.result(result)
    write_termination_log(termination_log, result, out)
    return 0 if result.status is Phase.SUCCEEDED else 1


def read_job(source: str) -> JobInput:
    try:
        raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise JobFailure(ErrorType.INVALID, f"cannot read the task spec {source}: {exc.strerror}") from exc
    try:
        return JobInput.model_validate_json(raw)
    except ValidationError as exc:
        raise JobFailure(ErrorType.INVALID, f"invalid task spec: {problems(exc)}") from exc


def _settings() -> JobSettings:
    try:
        return JobSettings()
    except ValidationError as exc:
        raise JobFailure(ErrorType.INVALID, f"invalid job environment: {problems(exc)}") from exc


def run_job(job: JobInput, settings: JobSettings, out: Emitter, control: Control) -> JobResult:
    """The thin orchestration: each stage raises JobFailure to stop; finish always runs."""
    run = Run(job=job, settings=settings, out=out, control=control)
    try:
        out.phase("preflight")
        pre = run_preflight(settings)
        out.redactor = out.redactor.with_secrets(pre.extra_secrets)
        run.env = child_env(os.environ, settings.github_server_url, pre.home, max_retries=settings.claude_max_retries)
        run.home = pre.home
        run.github = pre.github
        _checkpoint(control)

        out.phase("orchestrator")
        run.repo = select_repo(run)
        _checkpoint(control)
        run.checkout = prepare_branch(run, pre)
        open_pull_request(run)
        if run.checkout is not None:
            run.checkout.wait()
        _checkpoint(control)

        out.phase("worker")
        outcome = run_worker(run)
    except JobFailure as failure:
        outcome = failure.outcome
    except (GitError, GitHubError) as exc:
        error_type = _infra_error_type(exc)
        target = AuthTarget.GITHUB if error_type is ErrorType.AUTH_EXPIRED else None
        outcome = Outcome(error_type, str(exc), auth_target=target)
    except Exception as exc:  # a bug or an unexpected transport error: still finish and report
        out.diag(traceback.format_exc())
        outcome = Outcome(ErrorType.EXIT_CODE, f"internal error: {type(exc).__name__}: {exc}")
    if control.cancel.is_set() and outcome.error_type is not ErrorType.CANCELLED:
        outcome = Outcome(ErrorType.CANCELLED, "cancelled on request")
    elif control.timed_out and outcome.error_type not in (ErrorType.TIMEOUT, ErrorType.CANCELLED):
        outcome = Outcome(ErrorType.TIMEOUT, "the task's deadline (timeoutSeconds) passed")
    if not outcome.ok:
        out.diag(f"ccr job: {outcome.error_type}: {outcome.message}")

    out.phase("finish")
    result = finish(run, outcome)
    if run.github:
        run.github.close()
    return result


def select_repo(run: Run) -> str:
    spec, out = run.job.spec, run.out
    if spec.repo:
        out.step("repo_selected", f"{spec.repo} (named in the task)", repo=spec.repo)
        return spec.repo
    assert run.github is not None
    candidates = run.github.list_repos()
    if not candidates:
        raise JobFailure(ErrorType.INVALID, "the task names no repository and GITHUB_TOKEN reaches none")
    names = [str(repo["full_name"]) for repo in candidates]
    named = repos_named_in(spec.prompt, names)
    if len(named) == 1:
        out.step("repo_selected", f"{named[0]} (named in the prompt)", repo=named[0])
        return named[0]
    with tempfile.TemporaryDirectory(prefix="ccr-orchestrator-") as workdir:
        claude = run_claude(
            orchestrator_argv(run.settings.claude_bin, spec.model),
            orchestrator_prompt(spec.prompt, candidates),
            cwd=Path(workdir),
            env=run.env,
            out=out,
            control=run.control,
        )
    run.add(claude)
    if claude.state.session_id and run.home is not None:  # a throwaway conversation: never kept, never left
        session.path(run.home, claude.state.session_id).unlink(missing_ok=True)
    outcome = _classify(claude)
    if not outcome.ok:
        assert outcome.error_type is not None
        raise JobFailure(outcome.error_type, f"choosing the repository: {outcome.message}", outcome.reset_time)
    answer = structured_output(claude.state) or {}
    chosen = _canonical(str(answer.get("repo") or ""), names)
    if chosen is None:
        reason = " ".join(str(answer.get("reason") or "").split())
        raise JobFailure(ErrorType.INVALID, ambiguous_message(names, reason))
    out.step("repo_selected", f"{chosen} (chosen by Claude)", repo=chosen)
    return chosen


def repos_named_in(prompt: str, names: Sequence[str]) -> list[str]:
    """Candidates whose owner/name appears in the prompt as a whole word (no tokens spent on those)."""
    lowered = prompt.lower()
    found = []
    for name in names:
        pattern = r"(?<![\w./-])" + re.escape(name.lower()) + r"(?![\w/-])"
        if name.lower() in lowered and re.search(pattern, lowered):
            found.append(name)
    return found


def ambiguous_message(names: Sequence[str], reason: str) -> str:
    shown = ", ".join(names[:CANDIDATES_IN_MESSAGE])
    more = f" and {len(names) - CANDIDATES_IN_MESSAGE} more" if len(names) > CANDIDATES_IN_MESSAGE else ""
    because = f" ({reason})" if reason else ""
    return (
        f"could not tell which repository the prompt means{because}; name one in the task's repo field. "
        f"Candidates: {shown}{more}"
    )


def prepare_branch(run: Run, pre: Preflight) -> Checkout | None:
    """Clone with the credential helper, then the task branch: the existing one (follow-up, retry), or a
    new one with an empty start commit, pushed while the working tree is checked out in the background
    (returned: wait for it before the worker starts)."""
    assert run.github is not None and run.repo is not None
    spec, settings, out = run.job.spec, run.settings, run.out
    try:
        info = run.github.repo(run.repo)
    except GitHubError as exc:
        if exc.status == 404:
            raise JobFailure(
                ErrorType.INVALID, f"repository {run.repo} not found (or GITHUB_TOKEN cannot see it)"
            ) from exc
        raise
    run.repo = str(info.get("full_name") or run.repo)
    run.branch = run.job.branch or branch_for(run.job.id)
    default = str(info.get("default_branch") or "main")
    base = run.base = spec.base_branch or default
    if run.branch in (base, default):
        raise JobFailure(
            ErrorType.INVALID,
            f"refusing to work on {run.branch}: it is the base or the default branch of {run.repo}, which a task "
            "never writes to",
        )
    target = fresh_workdir(settings.workdir, run.repo)
    git = Git(target, run.env)
    started = time.monotonic()
    git.clone(
        clone_url(settings.github_server_url, run.repo),
        clone_config(settings.github_server_url, Identity.from_github_user(pre.user)),
        spec.base_branch,
        timeout=_budget(run.control),
    )
    run.git = git
    out.step("clone", f"cloned {run.repo} ({base}) in {time.monotonic() - started:.1f}s", path=str(target))
    if git.has_remote_branch(run.branch):
        git.checkout_remote_branch(run.branch, timeout=_budget(run.control))
        run.start_sha = git.head()
        out.step("branch", f"continuing on the existing branch {run.branch}", branch=run.branch)
        return None
    git.create_start_commit(run.branch, out.redactor.redact(prtext.start_commit_message(run.job.id, spec.prompt)))
    run.start_sha = git.head()
    checkout = git.start_checkout(timeout=_budget(run.control))
    run.new_branch = True
    out.step("branch", f"created {run.branch} from {base}", branch=run.branch)
    git.push_branch(run.branch, timeout=_budget(run.control))
    out.step("push", f"pushed {run.branch}", branch=run.branch)
    return checkout


def open_pull_request(run: Run) -> None:
    """The draft PR exists before the worker starts. A run on an existing branch (a follow-up, a retry that
    continues) takes the branch's PR: the open one, else the closed one reopened; a new one only when the
    branch has none (or its PR was merged)."""
    assert run.github is not None and run.repo is not None and run.branch is not None
    redact, github = run.out.redactor.redact, run.github
    owner = run.repo.split("/")[0]
    pr = None if run.new_branch else github.find_pull(run.repo, owner, run.branch, state="all")
    if pr is not None and pr.state == "closed" and not pr.merged:
        pr = github.update_pull(run.repo, pr.number, state="open")
        run.out.step("pr_opened", f"reopened pull request #{pr.number}", url=pr.url)
    elif pr is not None and pr.state == "open":
        run.out.step("pr_opened", f"continuing pull request #{pr.number}", url=pr.url)
    else:
        pr = github.create_pull(
            run.repo,
            title=prtext.pr_title(redact(run.job.spec.prompt)),
            head=run.branch,
            base=run.base or "main",
            body=redact(prtext.pr_body(run.job.id, run.job.spec.prompt)),
        )
        run.pr_created = True
        run.out.step("pr_opened", f"opened draft pull request #{pr.number}", url=pr.url)
    run.pr = pr
    # Until the final result replaces it, the termination message says what is known: a pod killed from
    # now on (out of memory, a node lost) still leaves its task the link to its PR.
    write_termination_log(run.settings.termination_log, progress(run), run.out)


def progress(run: Run) -> JobResult:
    """What a run has established while it is not finished (``status: Running``)."""
    return JobResult(status=Phase.RUNNING, repo=run.repo, branch=run.branch, pr_url=run.pr.url if run.pr else None)


def run_worker(run: Run) -> Outcome:
    """Claude in the clone: a conversation of its own, or the thread's one continued (``job.resume``)."""
    assert run.git is not None and run.home is not None
    spec, settings, resume = run.job.spec, run.settings, run.job.resume
    restored = False
    if resume is not None:
        token = settings.session_token.get_secret_value() if settings.session_token else None
        problem = session.fetch(settings.session_url, token, run.home, resume.session_id)
        restored = problem is None
        said = f"continuing the session {resume.session_id}" if restored else f"a fresh session: {problem}"
        run.out.step("session", said, session=resume.session_id if restored else None)
    run.worker_started = True
    claude = run_claude(
        worker_argv(
            settings.claude_bin,
            spec.model,
            spec.max_turns,
            resume=resume.session_id if resume is not None and restored else None,
            max_budget_usd=spec.max_budget_usd,
        ),
        session.prompt_for(run.job, restored, run.pr.body if run.pr else ""),
        cwd=run.git.cwd,
        env=run.env,
        out=run.out,
        control=run.control,
    )
    run.add(claude)
    run.session_id = claude.state.session_id or run.session_id
    run.summary = result_text(claude.state)
    return _classify(claude)


def keep_session(run: Run) -> None:
    """The worker's session, redacted and bounded, for the next run of the thread (see ``ccr.job.session``)."""
    if run.session_id is None or run.home is None:
        return
    settings = run.settings
    try:
        said = session.keep(
            run.home,
            run.session_id,
            run.out.redactor,
            max_bytes=settings.session_max_bytes,
            url=settings.session_url,
            token=settings.session_token.get_secret_value() if settings.session_token else None,
        )
    except OSError as exc:
        said = f"could not keep the session: {exc.strerror or exc}"
    run.out.step("session_saved", said, session=run.session_id)


def finish(run: Run, outcome: Outcome) -> JobResult:
    """Safety net, changes, PR update (and comment when stopped, close when empty), mark-ready; never raises.

    The result tells the truth about the work: a run whose work could not be pushed is ``push_failed``,
    whatever it reported, because that work is not on the branch."""
    out = run.out
    if run.control.cancel.is_set():
        out.step("cancel_requested", "SIGTERM received: Claude was stopped")
    saved = safety_net(run, outcome)
    if saved.error is not None:
        before = f" (the run itself ended {outcome.error_type}: {outcome.message})" if not outcome.ok else ""
        outcome = Outcome(ErrorType.PUSH_FAILED, f"the work could not be pushed to {run.branch}: {saved.error}{before}")
    run.changes = measure_changes(run)
    keep_session(run)
    usage = (run.usage or Usage()).model_copy(
        update={"duration_ms": int((time.monotonic() - run.control.started) * 1000)}
    )
    result = JobResult(
        status=_status(outcome),
        error_type=outcome.error_type,
        auth_target=(outcome.auth_target or AuthTarget.CLAUDE)
        if outcome.error_type is ErrorType.AUTH_EXPIRED
        else None,
        message=outcome.message,
        repo=run.repo,
        branch=run.branch,
        pr_url=run.pr.url if run.pr else None,
        session_id=run.session_id,
        reset_time=outcome.reset_time,
        usage=usage,
        changes=run.changes,
        rate_limits=run.rate_limits,
    )
    if run.pr and run.github and run.repo:
        _report_on_pr(run, result, outcome, saved.sentence)
    return result


@dataclass(frozen=True)
class Saved:
    sentence: str  # for the PR comment
    error: str | None = None  # the push failed: the work is not on the branch


def safety_net(run: Run, outcome: Outcome) -> Saved:
    """Commit a dirty tree as WIP and push anything unpushed."""
    git, branch, out = run.git, run.branch, run.out
    if run.checkout is not None:
        with contextlib.suppress(GitError):
            run.checkout.wait()  # never touch the tree while the checkout may still be writing it
    if git is None or branch is None or not run.worker_started:
        out.step("safety_net", "nothing to save: the worker had not started")
        return Saved("the worker had not started, so there was no work to save.")
    try:
        committed = False
        if git.is_dirty():
            label = outcome.error_type.value if outcome.error_type else "succeeded"
            git.commit_all(f"WIP: uncommitted work saved by claude-code-runner ({label})")
            committed = True
        if committed or git.unpushed(branch) != 0:
            git.push(branch, timeout=FINISH_BUDGET_SECONDS)
            what = "committed the uncommitted work as WIP and pushed" if committed else "pushed unpushed commits"
            out.step("safety_net", f"{what} to {branch}", commit=git.head())
            return Saved(f"the work in progress was {'committed and ' if committed else ''}pushed to `{branch}`.")
        out.step("safety_net", "nothing to save: the tree is clean and every commit is pushed")
        return Saved(f"all work was already pushed to `{branch}`.")
    except GitError as exc:
        out.step("safety_net", f"could not save the work: {exc}")
        left = "" if git.unpushed(branch) == 0 else " It is left in the job's workspace only."
        return Saved(f"saving the work in progress failed: {exc}.{left}", error=str(exc))


def measure_changes(run: Run) -> Changes | None:
    """This run's commits and their diff stat (from the branch's tip before the worker); None before that."""
    if run.git is None or run.start_sha is None or not run.worker_started:
        return None
    try:
        return run.git.changes_since(run.start_sha)
    except GitError as exc:
        run.out.diag(f"cannot count the changes: {exc}")
        return None


def _report_on_pr(run: Run, result: JobResult, outcome: Outcome, pushed: str) -> None:
    assert run.github is not None and run.repo is not None and run.pr is not None
    out, github, repo, pr = run.out, run.github, run.repo, run.pr
    redact = out.redactor.redact
    summary, blockers = prtext.split_blockers(run.summary)
    if not outcome.ok and not blockers:
        blockers = outcome.message
    try:
        current = github.get_pull(repo, pr.number)
        body = prtext.with_outcome(current.body, prtext.outcome_section(result, summary, blockers))
        run.pr = github.update_pull(repo, pr.number, body=redact(body))
        out.step("pr_updated", f"pull request #{pr.number} updated with the outcome", url=pr.url)
        if outcome.error_type in (ErrorType.CANCELLED, ErrorType.TIMEOUT):
            assert outcome.error_type is not None
            github.comment(repo, pr.number, redact(prtext.stop_comment(outcome.error_type, pushed)))
            out.step("pr_comment", f"commented on #{pr.number}: {outcome.error_type.value}")
        if _ended_empty(run, outcome):
            github.comment(repo, pr.number, redact(prtext.closed_empty_comment(result)))
            run.pr = github.update_pull(repo, pr.number, state="closed")
            out.step("pr_closed", f"closed the empty draft pull request #{pr.number}", url=pr.url)
        if outcome.ok and run.settings.mark_ready_on_success and run.pr.draft:
            github.mark_ready(run.pr)
            out.step("pr_ready", f"pull request #{pr.number} marked ready for review", url=pr.url)
    except (GitHubError, OSError) as exc:
        out.step("pr_updated", f"could not update pull request #{pr.number}: {exc}")
    except Exception as exc:  # httpx transport errors must not lose the result line
        out.step("pr_updated", f"could not update pull request #{pr.number}: {type(exc).__name__}: {exc}")


def write_termination_log(path: Path, result: JobResult, out: Emitter) -> None:
    """Kubernetes' termination message: the result line, kept under 4096 bytes. The default path is used
    only when it exists (in a pod); an explicit CCR_TERMINATION_LOG is created."""
    if path == DEFAULT_TERMINATION_LOG and not (path.exists() and os.access(path, os.W_OK)):
        return
    try:
        path.write_text(result_line(out.redact_result(result), TERMINATION_LOG_LIMIT), encoding="utf-8")
    except OSError as exc:
        out.diag(f"cannot write the termination message to {path}: {exc.strerror}")


def _ended_empty(run: Run, outcome: Outcome) -> bool:
    """A failed run that opened its PR and added no commit: close it (CCR_CLOSE_EMPTY_PRS), so attempts do
    not pile up as empty drafts. A usage limit is not an end (the task continues on the same PR)."""
    if outcome.ok or outcome.error_type is ErrorType.CAPACITY_REACHED or not run.settings.close_empty_prs:
        return False
    return run.pr_created and (run.changes is None or run.changes.commits == 0)


def _classify(claude: ClaudeRun) -> Outcome:
    return classify(
        claude.state,
        exit_code=claude.exit_code,
        timed_out=claude.timed_out,
        cancelled=claude.cancelled,
        stderr_tail=claude.stderr_tail,
    )


def _status(outcome: Outcome) -> Phase:
    if outcome.ok:
        return Phase.SUCCEEDED
    return Phase.CANCELLED if outcome.error_type is ErrorType.CANCELLED else Phase.FAILED


def _infra_error_type(exc: Exception) -> ErrorType:
    if isinstance(exc, GitHubError):
        if exc.status == 401:
            return ErrorType.AUTH_EXPIRED
        if exc.status in (403, 404, 422):
            return ErrorType.INVALID
    return ErrorType.EXIT_CODE


def _canonical(answer: str, names: Sequence[str]) -> str | None:
    wanted = answer.strip().lower()
    return next((name for name in names if name.lower() == wanted), None) if wanted else None


def _checkpoint(control: Control) -> None:
    if control.cancel.is_set():
        raise JobFailure(ErrorType.CANCELLED, "cancelled on request")
    if control.timed_out:
        raise JobFailure(ErrorType.TIMEOUT, "the task's deadline (timeoutSeconds) passed")


def _budget(control: Control) -> float:
    return max(control.remaining(), 1.0)


def _install_signal_handlers(control: Control) -> None:
    """SIGTERM/SIGINT only set the flag: the main loop stops claude and finishes (no I/O in a handler)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        control.cancel.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccr job", description="Run one task: prompt in, pull request out.")
    parser.add_argument("--spec", required=True, help='JSON {"id": ..., "spec": {...}} file, or - for stdin')
    return parser
