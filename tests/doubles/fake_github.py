"""A stand-in for GitHub, for tests only: the REST endpoints the job pipeline calls and git over HTTP.

REST lives under ``/api/v3`` and GraphQL at ``/api/graphql`` (the GitHub Enterprise layout, so
``GITHUB_API_URL`` and ``GITHUB_SERVER_URL`` differ as they do there); git is served by the real
``git http-backend`` (CGI) on bare repositories in a temp dir. The token is checked like GitHub does: REST
wants ``Authorization: Bearer <token>`` or ``token <token>``, git wants HTTP Basic with the token as the
password (``x-access-token:<token>``); anything else gets 401. Every request is recorded in order.

    gh = FakeGitHub(token="t").start()
    gh.add_repo("acme/widgets", files={"README.md": "hi"})
    ... GITHUB_API_URL=gh.api_url GITHUB_SERVER_URL=gh.server_url ...
    gh.pulls("acme/widgets"); gh.comments("acme/widgets", 1); gh.branch_commits("acme/widgets", "claude/x")
    gh.stop()
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/v3"
GRAPHQL_PATH = "/api/graphql"
USER = {"login": "fake-user", "id": 1001, "name": "Fake User", "type": "User"}
_GIT_PATH = re.compile(r"^/(?P<repo>[^/]+/[^/]+?)\.git(?P<rest>/.*)$")
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Fake GitHub",
    "GIT_AUTHOR_EMAIL": "fake@example.invalid",
    "GIT_COMMITTER_NAME": "Fake GitHub",
    "GIT_COMMITTER_EMAIL": "fake@example.invalid",
}


@dataclass
class Request:
    seq: int
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    at: float  # time.monotonic()
    wall: float  # time.time()
    body: Any = None
    auth: str = ""  # "ok" | "missing" | "wrong"


@dataclass
class _Repo:
    full_name: str
    default_branch: str
    description: str
    private: bool
    id: int
    pulls: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    refuse_after_pr: str | None = None


class FakeGitHub:
    def __init__(self, token: str, host: str = "127.0.0.1", per_page_cap: int = 100) -> None:
        self.token = token
        self.per_page_cap = per_page_cap  # GitHub's is 100; lower it to exercise pagination with few repos
        self._host = host
        self._dir = Path(tempfile.mkdtemp(prefix="fake-github-"))
        self.repo_root = self._dir / "repos"
        self.repo_root.mkdir()
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._next_id = 5000

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((self._host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-github", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server_url(self) -> str:
        assert self._server is not None, "start() first"
        port = self._server.server_address[1]
        return f"http://{self._host}:{port}"

    @property
    def api_url(self) -> str:
        return self.server_url + API_PREFIX

    # -- state ----------------------------------------------------------------------------------------
    def add_repo(
        self,
        full_name: str,
        files: dict[str, str | bytes] | None = None,
        default_branch: str = "main",
        description: str = "",
        private: bool = True,
    ) -> Path:
        """A bare repository with one commit holding ``files`` (a README when None). Returns its path."""
        bare = self.bare_path(full_name)
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", "-b", default_branch, str(bare))
        _git("config", "http.receivepack", "true", cwd=bare)
        _git("config", "uploadpack.allowFilter", "true", cwd=bare)
        with tempfile.TemporaryDirectory(prefix="fake-github-seed-") as tmp:
            work = Path(tmp)
            _git("init", "--quiet", "-b", default_branch, str(work))
            for rel, content in (files or {"README.md": f"# {full_name}\n"}).items():
                path = work / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content, encoding="utf-8")
            _git("add", "--all", cwd=work)
            _git("commit", "--quiet", "-m", "Initial commit", cwd=work)
            _git("push", "--quiet", str(bare), f"HEAD:refs/heads/{default_branch}", cwd=work)
        self._install_push_rules(bare, default_branch)
        with self._lock:
            self._next_id += 1
            self._repos[full_name.lower()] = _Repo(full_name, default_branch, description, private, self._next_id)
        return bare

    def _install_push_rules(self, bare: Path, default_branch: str) -> None:
        """A pre-receive hook: pushes to the default branch are refused and recorded (no ccr task may ever
        write there; ``default_branch_pushes`` lets the suite assert it never tried), and every push is
        refused while ``refuse-pushes`` exists (see ``refuse_pushes_after_pr``)."""
        hook = bare / "hooks" / "pre-receive"
        hook.write_text(
            "#!/bin/sh\n"
            "while read old new ref; do\n"
            f'  if [ "$ref" = "refs/heads/{default_branch}" ]; then\n'
            f'    echo "$ref" >> "{self.default_push_log}"\n'
            f'    echo "fake GitHub: pushes to the default branch ({default_branch}) are refused" >&2\n'
            "    exit 1\n"
            "  fi\n"
            "done\n"
            'if [ -f "$GIT_DIR/refuse-pushes" ]; then cat "$GIT_DIR/refuse-pushes" >&2; exit 1; fi\n'
        )
        hook.chmod(0o755)

    @property
    def default_push_log(self) -> Path:
        return self._dir / "default-branch-pushes.log"

    def default_branch_pushes(self) -> list[str]:
        """Refs of every push to a repository's default branch that was tried (and refused)."""
        if not self.default_push_log.exists():
            return []
        return self.default_push_log.read_text().split()

    def refuse_pushes_after_pr(self, full_name: str, message: str = "fake GitHub: push refused") -> None:
        """From the moment a pull request is opened in ``full_name``, refuse every push to it: the draft PR
        and its start commit exist, the work after them cannot be pushed (a push failure)."""
        with self._lock:
            self._repo(full_name).refuse_after_pr = message

    def allow_pushes(self, full_name: str) -> None:
        """Undo ``refuse_pushes_after_pr``."""
        with self._lock:
            self._repo(full_name).refuse_after_pr = None
        (self.bare_path(full_name) / "refuse-pushes").unlink(missing_ok=True)

    def bare_path(self, full_name: str) -> Path:
        return self.repo_root / f"{full_name}.git"

    def pulls(self, full_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(p) for p in self._repo(full_name).pulls]

    def comments(self, full_name: str, number: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            repo = self._repo(full_name)
            if number is not None:
                return [dict(c) for c in repo.comments.get(number, [])]
            return [dict(c) for cs in repo.comments.values() for c in cs]

    def branch_commits(self, full_name: str, branch: str) -> list[str]:
        """Commit SHAs on ``branch`` of the bare repository, newest first ([] when it does not exist)."""
        try:
            out = _git("rev-list", f"refs/heads/{branch}", cwd=self.bare_path(full_name))
        except subprocess.CalledProcessError:
            return []
        return out.split()

    def git_log(self, full_name: str, branch: str) -> list[str]:
        """``<sha> <subject>`` of every commit on ``branch``, newest first."""
        try:
            out = _git("log", "--format=%h %s", f"refs/heads/{branch}", cwd=self.bare_path(full_name))
        except subprocess.CalledProcessError:
            return []
        return out.splitlines()

    def file_at(self, full_name: str, ref: str, path: str) -> str:
        return _git("show", f"{ref}:{path}", cwd=self.bare_path(full_name))

    def branches(self, full_name: str) -> list[str]:
        out = _git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare_path(full_name))
        return out.split()

    def request_log(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def _repo(self, full_name: str) -> _Repo:
        return self._repos[full_name.lower()]

    def _record(self, req: Request) -> None:
        with self._lock:
            req.seq = len(self.requests)
            self.requests.append(req)

    # -- REST -----------------------------------------------------------------------------------------
    def handle_rest(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        with self._lock:
            if method == "GET" and parts == ["user"]:
                return 200, USER, {}
            if method == "GET" and parts == ["user", "repos"]:
                return self._list_repos(query)
            if len(parts) < 3 or parts[0] != "repos":
                return 404, {"message": "Not Found"}, {}
            full_name = f"{parts[1]}/{parts[2]}"
            repo = self._repos.get(full_name.lower())
            if repo is None:
                return 404, {"message": "Not Found"}, {}
            rest = parts[3:]
            if method == "GET" and not rest:
                return 200, self._repo_json(repo), {}
            if rest == ["pulls"] and method == "GET":
                return 200, self._find_pulls(repo, query), {}
            if rest == ["pulls"] and method == "POST":
                return self._create_pull(repo, body)
            if len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit():
                pull = next((p for p in repo.pulls if p["number"] == int(rest[1])), None)
                if pull is None:
                    return 404, {"message": "Not Found"}, {}
                if method == "PATCH":
                    for key in ("title", "body", "state", "base"):
                        if key in (body or {}):
                            pull[key] = body[key]
                    pull["updated_at"] = _now()
                return 200, pull, {}
            if len(rest) == 3 and rest[0] == "issues" and rest[1].isdigit() and rest[2] == "comments":
                number = int(rest[1])
                if not any(p["number"] == number for p in repo.pulls):
                    return 404, {"message": "Not Found"}, {}
                comments = repo.comments.setdefault(number, [])
                if method == "POST":
                    comment = {
                        "id": len(comments) + 1,
                        "body": (body or {}).get("body", ""),
                        "user": USER,
                        "created_at": _now(),
                    }
                    comments.append(comment)
                    return 201, comment, {}
                return 200, comments, {}
        return 404, {"message": "Not Found"}, {}

    def handle_graphql(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        query = str((body or {}).get("query", ""))
        node_id = ((body or {}).get("variables") or {}).get("id")
        if "markPullRequestReadyForReview" not in query:
            return 200, {"errors": [{"message": "the fake GitHub knows only markPullRequestReadyForReview"}]}, {}
        with self._lock:
            for repo in self._repos.values():
                for pull in repo.pulls:
                    if pull["node_id"] == node_id:
                        pull["draft"] = False
                        return 200, {"data": {"markPullRequestReadyForReview": {"pullRequest": {"isDraft": False}}}}, {}
        return 200, {"errors": [{"message": f"no pull request {node_id}"}]}, {}

    def _list_repos(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), self.per_page_cap)
        page = int(query.get("page", ["1"])[0])
        repos = sorted(self._repos.values(), key=lambda r: r.full_name.lower())
        chunk = repos[(page - 1) * per_page : page * per_page]
        headers: dict[str, str] = {}
        last = max((len(repos) + per_page - 1) // per_page, 1)
        if page < last:
            base = f"{self.api_url}/user/repos?per_page={per_page}"
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return 200, [self._repo_json(r) for r in chunk], headers

    def _repo_json(self, repo: _Repo) -> dict[str, Any]:
        owner, name = repo.full_name.split("/")
        return {
            "id": repo.id,
            "name": name,
            "full_name": repo.full_name,
            "owner": {"login": owner},
            "private": repo.private,
            "description": repo.description,
            "default_branch": repo.default_branch,
            "html_url": f"{self.server_url}/{repo.full_name}",
            "clone_url": f"{self.server_url}/{repo.full_name}.git",
        }

    def _find_pulls(self, repo: _Repo, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        found = []
        for pull in repo.pulls:
            if state != "all" and pull["state"] != state:
                continue
            if head is not None and pull["head"]["label"] != head:
                continue
            found.append(pull)
        return found

    def _create_pull(self, repo: _Repo, body: Any) -> tuple[int, Any, dict[str, str]]:
        body = body or {}
        head, base = str(body.get("head", "")), str(body.get("base", ""))
        owner = repo.full_name.split("/")[0]
        branches = set(self._branches_unlocked(repo.full_name))
        if head not in branches or base not in branches:
            return 422, {"message": "Validation Failed", "errors": [{"field": "head", "code": "invalid"}]}, {}
        if any(p["head"]["ref"] == head and p["state"] == "open" for p in repo.pulls):
            return 422, {"message": f"A pull request already exists for {owner}:{head}."}, {}
        number = len(repo.pulls) + 1
        pull = {
            "number": number,
            "node_id": f"PR_fake_{repo.id}_{number}",
            "html_url": f"{self.server_url}/{repo.full_name}/pull/{number}",
            "url": f"{self.api_url}/repos/{repo.full_name}/pulls/{number}",
            "state": "open",
            "merged_at": None,
            "draft": bool(body.get("draft", False)),
            "title": body.get("title", ""),
            "body": body.get("body", ""),
            "head": {"ref": head, "label": f"{owner}:{head}"},
            "base": {"ref": base},
            "created_at": _now(),
            "updated_at": _now(),
        }
        repo.pulls.append(pull)
        if repo.refuse_after_pr is not None:
            (self.bare_path(repo.full_name) / "refuse-pushes").write_text(repo.refuse_after_pr + "\n")
        return 201, pull, {}

    def _branches_unlocked(self, full_name: str) -> list[str]:
        out = _git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare_path(full_name))
        return out.split()

    # -- git smart HTTP ---------------------------------------------------------------------------------
    def handle_git(
        self, method: str, repo: str, rest: str, query: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            known = repo.lower() in self._repos
        if not known:
            return 404, {"Content-Type": "text/plain"}, b"Repository not found.\n"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.repo_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{self._repo(repo).full_name}.git{rest}",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status = 200
        out_headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                out_headers[name.strip()] = value.strip()
        return status, out_headers, payload


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        raw = self._read_body()
        git = _GIT_PATH.match(split.path)
        if git:
            auth = self._git_auth()
            if auth != "ok":
                self._record(method, split.path, query, 401, None, auth)
                self._send(401, {"WWW-Authenticate": 'Basic realm="GitHub"', "Content-Type": "text/plain"}, b"")
                return
            status, headers, payload = self.fake.handle_git(
                method, git.group("repo"), git.group("rest"), split.query, self.headers, raw
            )
            self._record(method, split.path, query, status, None, auth)
            self._send(status, headers, payload)
            return
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        auth = self._rest_auth()
        if auth != "ok":
            self._record(method, split.path, query, 401, body, auth)
            self._json(401, {"message": "Bad credentials"}, {})
            return
        if split.path == GRAPHQL_PATH and method == "POST":
            status, payload_json, headers = self.fake.handle_graphql(body)
        elif split.path.startswith(API_PREFIX + "/"):
            status, payload_json, headers = self.fake.handle_rest(method, split.path[len(API_PREFIX) :], query, body)
        else:
            status, payload_json, headers = 404, {"message": "Not Found"}, {}
        self._record(method, split.path, query, status, body, auth)
        self._json(status, payload_json, headers)

    def _rest_auth(self) -> str:
        header = self.headers.get("Authorization", "")
        if not header:
            return "missing"
        scheme, _, value = header.partition(" ")
        return "ok" if scheme.lower() in ("bearer", "token") and value == self.fake.token else "wrong"

    def _git_auth(self) -> str:
        header = self.headers.get("Authorization", "")
        if not header:
            return "missing"
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return "wrong"
        try:
            _user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return "wrong"
        return "ok" if password == self.fake.token else "wrong"

    def _record(self, method: str, path: str, query: dict[str, list[str]], status: int, body: Any, auth: str) -> None:
        self.fake._record(
            Request(
                seq=0,
                method=method,
                path=path,
                query=query,
                status=status,
                at=time.monotonic(),
                wall=time.time(),
                body=body,
                auth=auth,
            )
        )

    def _json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self._send(status, {"Content-Type": "application/json; charset=utf-8", **headers}, json.dumps(payload).encode())

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **_GIT_IDENTITY, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
