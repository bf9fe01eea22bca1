"""``ccr``: serve the API and dashboard, run a job, print the CRD, submit and follow tasks."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    from ccr.api.server import serve
    from ccr.app import create_app
    from ccr.core.logging import setup_logging
    from ccr.core.settings import Settings

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.data_dir is not None:
        overrides["data_dir"] = Path(args.data_dir)
    if args.host is not None:
        overrides["host"] = args.host
    settings = Settings().model_copy(update=overrides)
    setup_logging()
    serve(settings, create_app(settings))
    return 0


def _job(args: argparse.Namespace) -> int:
    from ccr.job.pipeline import main as job_main

    return job_main(["--spec", args.spec])


def _crd(args: argparse.Namespace) -> int:
    from ccr.core.crd import render_crd

    text = render_crd()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _operator(args: argparse.Namespace) -> int:
    if args.namespace:
        os.environ["CCR_NAMESPACES"] = ",".join(args.namespace)
    from ccr.operator.main import run

    run()
    return 0


class _Client:
    def __init__(self, url: str | None, token: str | None) -> None:
        self.url = (url or os.environ.get("CLAUDE_RUNNER_URL") or "http://localhost:7334").rstrip("/")
        self.token = token or os.environ.get("CLAUDE_RUNNER_TOKEN")
        if not self.token:
            raise SystemExit("set CLAUDE_RUNNER_TOKEN (a ccr_ token from the dashboard's token page) or pass --token")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - the user's URL
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=30)  # noqa: S310
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SystemExit(f"{method} {path}: HTTP {exc.code}: {detail}") from None


def _submit(args: argparse.Namespace) -> int:
    client = _Client(args.url, args.token)
    body: dict[str, Any] = {"prompt": sys.stdin.read() if args.prompt == "-" else args.prompt}
    for key in ("repo", "model", "max_turns", "timeout_seconds", "priority"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    task = json.load(client.request("POST", "/task", body))
    print(json.dumps(task, indent=2))
    if args.follow:
        return _follow(client, task["id"])
    return 0


def _follow(client: _Client, task_id: str) -> int:
    with client.request("GET", f"/task/{task_id}/logs") as stream:
        for raw in stream:
            sys.stdout.write(raw.decode(errors="replace"))
            sys.stdout.flush()
    task = json.load(client.request("GET", f"/task/{task_id}"))
    print(json.dumps({k: task.get(k) for k in ("id", "status", "pr_url", "errorType", "error")}))
    return 0 if task["status"] == "completed" else 1


def _logs(args: argparse.Namespace) -> int:
    return _follow(_Client(args.url, args.token), args.task_id)


def _status(args: argparse.Namespace) -> int:
    client = _Client(args.url, args.token)
    path = f"/task/{args.task_id}" if args.task_id else "/tasks"
    print(json.dumps(json.load(client.request("GET", path)), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and dashboard (local mode by default)")
    serve.add_argument("--port", type=int, help="default: PORT or 7334")
    serve.add_argument("--host", help="default: CCR_HOST or 0.0.0.0")
    serve.add_argument("--data-dir", help="default: CCR_DATA_DIR or ./data")
    serve.set_defaults(fn=_serve)

    job = sub.add_parser("job", help="run the job pipeline for one task (what the Job pod runs)")
    job.add_argument("--spec", required=True, help="task JSON file, or - for stdin")
    job.set_defaults(fn=_job)

    crd = sub.add_parser("crd", help="print the ClaudeTask CRD generated from the model")
    crd.add_argument("-o", "--output", help="write to this file instead of stdout")
    crd.set_defaults(fn=_crd)

    op = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    op.add_argument("--namespace", action="append", help="namespace to watch (repeatable); default CCR_NAMESPACES")
    op.set_defaults(fn=_operator)

    for name, fn, help_ in (
        ("submit", _submit, "submit a task to a running ccr"),
        ("logs", _logs, "follow a task's transcript"),
        ("status", _status, "show a task, or all tasks"),
    ):
        cmd = sub.add_parser(name, help=help_)
        cmd.add_argument("--url", help="default: CLAUDE_RUNNER_URL or http://localhost:7334")
        cmd.add_argument("--token", help="default: CLAUDE_RUNNER_TOKEN")
        cmd.set_defaults(fn=fn)
        if name == "submit":
            cmd.add_argument("prompt", help="the task in plain words, or - to read it from stdin")
            cmd.add_argument("--repo")
            cmd.add_argument("--model")
            cmd.add_argument("--max-turns", dest="max_turns", type=int)
            cmd.add_argument("--timeout-seconds", dest="timeout_seconds", type=int)
            cmd.add_argument("--priority", type=int)
            cmd.add_argument("-f", "--follow", action="store_true", help="stream the transcript until it ends")
        elif name == "logs":
            cmd.add_argument("task_id")
        else:
            cmd.add_argument("task_id", nargs="?")

    args = parser.parse_args(argv)
    result: int = args.fn(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
