"""The few GitHub REST calls the pipeline makes. The token travels in the Authorization header only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

USER_AGENT = "claude-code-runner"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_DELAYS = (0.5, 2.0)
# Enough repositories for a clear choice; the orchestrator prompt stays small.
MAX_CANDIDATE_REPOS = 1000


class GitHubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub API {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str  # the html_url people open
    node_id: str
    body: str
    draft: bool
    state: str = "open"  # open | closed
    merged: bool = False

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> PullRequest:
        return cls(
            number=int(data["number"]),
            url=str(data["html_url"]),
            node_id=str(data.get("node_id") or ""),
            body=str(data.get("body") or ""),
            draft=bool(data.get("draft")),
            state=str(data.get("state") or "open"),
            merged=bool(data.get("merged_at") or data.get("merged")),
        )


def graphql_url(api_url: str) -> str:
    """github.com: https://api.github.com/graphql; Enterprise: https://host/api/v3 -> https://host/api/graphql."""
    base = api_url.rstrip("/")
    return base[: -len("/v3")] + "/graphql" if base.endswith("/v3") else base + "/graphql"


class GitHub:
    def __init__(self, api_url: str, token: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=2),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._client.request(method, url, **kwargs)
        for delay in RETRY_DELAYS if method == "GET" else ():
            if response.status_code not in RETRY_STATUSES:
                break
            time.sleep(delay)  # GitHub's occasional 502/503: reads are safe to repeat
            response = self._client.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = response.text[:200]
            raise GitHubError(response.status_code, message or response.reason_phrase)
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self._request(method, url, **kwargs).json()

    def user(self) -> dict[str, Any]:
        data: dict[str, Any] = self._json("GET", "/user")
        return data

    def repo(self, full_name: str) -> dict[str, Any]:
        data: dict[str, Any] = self._json("GET", f"/repos/{full_name}")
        return data

    def list_repos(self, limit: int = MAX_CANDIDATE_REPOS) -> list[dict[str, Any]]:
        """Repositories the token can reach, most recently pushed first, following Link: rel="next"."""
        repos: list[dict[str, Any]] = []
        url: str | None = "/user/repos"
        params: dict[str, Any] | None = {
            "per_page": 100,
            "sort": "pushed",
            "affiliation": "owner,collaborator,organization_member",
        }
        while url and len(repos) < limit:
            response = self._request("GET", url, params=params)
            repos.extend(response.json())
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries them
        return repos[:limit]

    def find_pull(self, full_name: str, owner: str, branch: str, state: str = "open") -> PullRequest | None:
        """The branch's pull request: the open one, else (``state="all"``) the most recent one."""
        params = {"head": f"{owner}:{branch}", "state": state}
        pulls = [PullRequest.from_api(p) for p in self._json("GET", f"/repos/{full_name}/pulls", params=params)]
        return next((p for p in pulls if p.state == "open"), max(pulls, key=lambda p: p.number, default=None))

    def create_pull(self, full_name: str, *, title: str, head: str, base: str, body: str) -> PullRequest:
        data = self._json(
            "POST",
            f"/repos/{full_name}/pulls",
            json={"title": title, "head": head, "base": base, "body": body, "draft": True},
        )
        return PullRequest.from_api(data)

    def get_pull(self, full_name: str, number: int) -> PullRequest:
        return PullRequest.from_api(self._json("GET", f"/repos/{full_name}/pulls/{number}"))

    def update_pull(self, full_name: str, number: int, **fields: Any) -> PullRequest:
        return PullRequest.from_api(self._json("PATCH", f"/repos/{full_name}/pulls/{number}", json=fields))

    def mark_ready(self, pull: PullRequest) -> None:
        """Draft -> ready for review exists only in GraphQL."""
        query = (
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
            "{ pullRequest { isDraft } } }"
        )
        data = self._json("POST", graphql_url(self.api_url), json={"query": query, "variables": {"id": pull.node_id}})
        if data.get("errors"):
            raise GitHubError(200, str(data["errors"])[:200])

    def comment(self, full_name: str, number: int, body: str) -> None:
        self._request("POST", f"/repos/{full_name}/issues/{number}/comments", json={"body": body})
