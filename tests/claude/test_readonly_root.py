"""What the real CLI writes in the job pod, checked against the Job builder's mounts.

The pod (src/ccr/operator/builders.py) has a read-only root filesystem and three writable emptyDirs: HOME
(/home/ccr), the work dir (/workspace) and /tmp (TMPDIR), and runs as uid 10001. Here the same layout is
built from the Job manifest itself, in a private mount namespace (bubblewrap: a tmpfs root holding
read-only binds of the host's directories, remounted read-only; the emptyDirs are test directories bound
at the mount paths; the host's mounts are never touched), and the real CLI runs in it as the pod's uid
against the fake Anthropic API, under strace, the way the worker runs it (the pipeline's argv and
environment builders).

Recorded with 2.1.332 and the pipeline's environment (CLAUDE_CONFIG_DIR=$HOME/.claude and
CLAUDE_CODE_PROJECT_DIR_NAME=ccr, so a session's place does not depend on the clone's path), the CLI writes
  $HOME/.claude/.claude.json (+ $HOME/.claude/backups/), $HOME/.claude/projects/ccr/<session>.jsonl (the
  session that --resume continues, and its subagents/), $HOME/.claude/{sessions,session-env,shell-snapshots,
  plugins}/;
  $TMPDIR/claude-<uid>/<cwd>/<session>/tasks/<agent>.output (subagent output);
  $XDG_RUNTIME_DIR or $TMPDIR /cc-socks/<pid>.sock (its messaging socket; /tmp/cc-socks-<uid> when that path
  is too long);
and nothing else: no write fails anywhere else. Without a writable HOME it still answers but keeps no
session (so nothing could resume it): the last test shows that, which is why HOME must stay an emptyDir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccr.core.model import JobInput, TaskSpec
from ccr.job.claude import child_env, worker_argv
from ccr.job.config import DEFAULT_CLAUDE_MAX_RETRIES
from ccr.job.session import PROJECT
from ccr.operator import builders
from ccr.operator.config import OperatorConfig
from tests.doubles.claude_cli import TEST_OAUTH_TOKEN
from tests.doubles.fake_anthropic import QUIET_ENV, FakeAnthropic, Reply, ToolUse, bash, text_reply

CLAUDE_MOUNT = "/ccr-claude"  # where the CLI's directory appears inside (the image has /usr/local/bin/claude)
HIDDEN = {"proc", "dev", "sys", "tmp", "home", "root", "run", "work", "mnt", "media", "lost+found"}


@dataclass
class Pod:
    """The job container's filesystem facts, read from the manifest the operator would create."""

    uid: int
    home: str
    tmpdir: str
    workdir: str
    writable: list[str]  # mount paths of the emptyDirs
    read_only_root: bool


def pod_from_builder() -> Pod:
    task = {"metadata": {"name": "ro-check", "namespace": "ns", "uid": "0000-1111"}}
    job = builders.build_job(task, JobInput(id="ro-check", spec=TaskSpec(prompt="x")), OperatorConfig())
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty and not m.get("readOnly")]
    return Pod(
        uid=container["securityContext"]["runAsUser"],
        home=env["HOME"],
        tmpdir=env["TMPDIR"],
        workdir=env["CCR_WORKDIR"],
        writable=writable,
        read_only_root=container["securityContext"]["readOnlyRootFilesystem"],
    )


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    found = {name: shutil.which(name) for name in ("bwrap", "setpriv", "strace")}
    missing = [name for name, path in found.items() if path is None]
    if missing:  # .ci/run installs them; a skip fails under CI=true
        pytest.skip(f"needs {', '.join(missing)} (apt-get install bubblewrap util-linux strace)")
    if os.geteuid() != 0:
        pytest.skip("needs root: the test switches to the pod's uid inside its own mount namespace")
    return {k: str(v) for k, v in found.items()}


class Sandbox:
    """The pod's filesystem layout in a bubblewrap mount namespace; ``dirs`` are the emptyDirs' contents."""

    def __init__(self, pod: Pod, root: Path, claude: Path, tools: dict[str, str]) -> None:
        self.pod, self.tools = pod, tools
        self.claude_dir, self.claude = claude.parent, f"{CLAUDE_MOUNT}/{claude.name}"
        self.dirs = {path: root / path.strip("/").replace("/", "_") for path in pod.writable}
        for directory in self.dirs.values():
            directory.mkdir(parents=True)
            os.chown(directory, pod.uid, pod.uid)
        self.trace = root / "strace.txt"

    def host(self, path: str) -> Path:
        """The test directory behind a path inside the pod."""
        for mount, directory in self.dirs.items():
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return directory / os.path.relpath(path, mount)
        raise AssertionError(f"{path} is on the read-only root")

    def argv(self, command: list[str], *, read_only_home: bool = False) -> list[str]:
        args = [self.tools["strace"], "-f", "-qq", "-e", "trace=%file", "-e", "status=failed"]
        args += ["-o", str(self.trace), self.tools["bwrap"], "--die-with-parent", "--tmpfs", "/"]
        for entry in sorted(os.listdir("/")):
            path = "/" + entry
            if entry in HIDDEN:
                continue
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", str(self.claude_dir), CLAUDE_MOUNT]
        for mount, directory in self.dirs.items():
            parent = os.path.dirname(mount.rstrip("/"))
            if parent not in ("", "/"):
                args += ["--perms", "0755", "--dir", parent]
            bind = "--ro-bind" if read_only_home and mount == self.pod.home else "--bind"
            args += [bind, str(directory), mount]
        if self.pod.read_only_root:
            args += ["--remount-ro", "/"]
        args += ["--chdir", self.cwd, "--", self.tools["setpriv"], f"--reuid={self.pod.uid}", f"--regid={self.pod.uid}"]
        args += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return args + command

    cwd = "/"

    def failed_writes(self) -> list[str]:
        """strace lines of calls that failed because a place was read-only or not ours."""
        lines = self.trace.read_text(errors="replace").splitlines()
        bad = [line for line in lines if "= -1 EROFS" in line or ("= -1 EACCES" in line and "W_OK" not in line)]
        return [line for line in bad if "/newroot" not in line]  # bwrap's own set-up probes


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_clone(sandbox: Sandbox, name: str = "widgets") -> str:
    """A repository in the work dir (as the pipeline's clone would be), owned by the pod's uid."""
    path = f"{sandbox.pod.workdir.rstrip('/')}/{name}"
    host = sandbox.host(path)
    host.mkdir()
    git(host, "init", "-q", "-b", "main")
    git(host, "config", "user.email", "claude@ccr.invalid")
    git(host, "config", "user.name", "ccr")
    (host / "README.md").write_text("# widgets\n")
    git(host, "add", "-A")
    git(host, "commit", "-qm", "init")
    subprocess.run(["chown", "-R", f"{sandbox.pod.uid}:{sandbox.pod.uid}", str(host)], check=True)
    return path


def run_in_pod(
    sandbox: Sandbox, fake: FakeAnthropic, prompt: str, *extra: str, read_only_home: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": sandbox.pod.tmpdir}
    base |= {"CLAUDE_CODE_OAUTH_TOKEN": TEST_OAUTH_TOKEN, "ANTHROPIC_BASE_URL": fake.base_url, **QUIET_ENV}
    env = child_env(base, "https://github.com", Path(sandbox.pod.home), max_retries=DEFAULT_CLAUDE_MAX_RETRIES)
    argv = [*worker_argv(sandbox.claude, None, None), *extra]
    proc = subprocess.run(
        sandbox.argv(argv, read_only_home=read_only_home),
        input=prompt,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, events


@pytest.fixture
def sandbox(tmp_path: Path, claude_bin: Path, tools: dict[str, str]) -> Sandbox:
    # the native binary is self-contained: its directory is bound read-only into the sandbox
    return Sandbox(pod_from_builder(), tmp_path / "pod", claude_bin.resolve(), tools)


def test_the_builder_gives_home_tmpdir_and_workdir_writable_mounts() -> None:
    pod = pod_from_builder()
    assert pod.read_only_root and pod.uid != 0
    for path in (pod.home, pod.tmpdir, pod.workdir):
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in pod.writable), path


def test_the_real_cli_works_on_a_read_only_root_and_writes_only_to_the_emptydirs(
    sandbox: Sandbox, fake_anthropic: FakeAnthropic
) -> None:
    clone = make_clone(sandbox)
    sandbox.cwd = clone
    fake_anthropic.script(
        Reply([ToolUse("Write", {"file_path": f"{clone}/NOTES.md", "content": "notes\n"})]),
        Reply([ToolUse("Edit", {"file_path": f"{clone}/README.md", "old_string": "# widgets", "new_string": "# W"})]),
        bash("git add -A && git commit -qm 'Notes' && echo committed"),
        Reply(
            [
                ToolUse(
                    "Agent",
                    {
                        "description": "Look around",
                        "prompt": "SUBAGENT-RO: list the files",
                        "subagent_type": "Explore",
                        "run_in_background": False,
                    },
                )
            ]
        ),
        text_reply("FIRST-RUN-DONE"),
        text_reply("SECOND-RUN-DONE"),  # the resumed session's next answer (position = assistant messages)
    )
    fake_anthropic.script(bash("ls"), text_reply("two files"), match="SUBAGENT-RO")
    proc, events = run_in_pod(sandbox, fake_anthropic, "Write the notes")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = [e for e in events if e["type"] == "result"]
    assert result["is_error"] is False and result["result"] == "FIRST-RUN-DONE"
    assert next(e for e in events if e.get("subtype") == "init")["cwd"] == clone
    tool_errors = [b for e in events if e["type"] == "user" for b in e["message"]["content"] if b.get("is_error")]
    assert tool_errors == []
    assert (sandbox.host(clone) / "NOTES.md").read_text() == "notes\n"

    assert sandbox.failed_writes() == [], "a write failed on the read-only root or outside the pod's dirs"
    pod, session = sandbox.pod, result["session_id"]
    home = sandbox.host(pod.home)
    project = home / ".claude" / "projects" / PROJECT
    assert (home / ".claude" / ".claude.json").is_file()
    assert (project / f"{session}.jsonl").is_file()  # what --resume reads
    assert list((project / session / "subagents").glob("agent-*.jsonl"))
    tmp = sandbox.host(pod.tmpdir)
    assert list((tmp / f"claude-{pod.uid}").glob(f"*/{session}/tasks/*.output"))
    assert (tmp / "cc-socks").is_dir()
    for directory in sandbox.dirs.values():  # everything there belongs to the pod's uid
        for path in [directory, *directory.rglob("*")]:
            assert path.lstat().st_uid == pod.uid, path

    # The session continues in the same pod: the second run's request carries the first run's messages.
    proc, events = run_in_pod(sandbox, fake_anthropic, "And now?", "--resume", session)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [e for e in events if e["type"] == "result"][-1]["result"] == "SECOND-RUN-DONE"
    assert "Write the notes" in json.dumps(fake_anthropic.last_request().messages)


def test_without_a_writable_home_the_session_is_lost(sandbox: Sandbox, fake_anthropic: FakeAnthropic) -> None:
    """The negative control: the check above would catch a builder that dropped the HOME emptyDir."""
    sandbox.cwd = make_clone(sandbox)
    fake_anthropic.script(text_reply("answered anyway"))
    proc, events = run_in_pod(sandbox, fake_anthropic, "hi", read_only_home=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = [e for e in events if e["type"] == "result"]
    assert result["result"] == "answered anyway"
    assert list(sandbox.host(sandbox.pod.home).iterdir()) == []  # no .claude.json, no session to resume
    assert any(str(Path(sandbox.pod.home)) in line for line in sandbox.failed_writes())
