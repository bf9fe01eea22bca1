"""One conformance suite, two backends: the same scenarios through local mode (``ccr serve`` with its store
and executor, running the real job pipeline against the fake claude and the fake GitHub) and through cluster
mode (``ccr serve`` with the Kubernetes store, and the operator, on the real control plane), and identical
``GET /task/{id}`` answers, timestamps and ids aside.

Cluster mode's pods are kwok's: each plays back what the pipeline reported in the local run of the same
scenario, as a real pod would hand it over: its result line as the container's termination message and its
exit status, or, for a cancel, what the pipeline answers to SIGTERM (``ccr-test/termination-message-on-delete``).
Both backends start from the same facts; the suite compares what each one's lifecycle makes of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccr.operator import rbac
from tests.conftest import REPO
from tests.doubles.fake_github import FakeGitHub
from tests.operator.conftest import API_SA, grant, wait_for
from tests.server import CcrServer

pytestmark = pytest.mark.k8s
TIMES = ("created", "started", "finished", "startedAt", "completedAt")
DONE = ("completed", "failed", "cancelled")


@dataclass
class Side:
    name: str
    server: CcrServer
    http: httpx.Client
    ids: list[str] = field(default_factory=list)

    def submit(self, path: str = "/task", **body: Any) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        self.ids.append(task["id"])
        return task

    def get(self, task_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/task/{task_id}").json()
        return body

    def wait(self, task_id: str, statuses: tuple[str, ...] = DONE, timeout: float = 120) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            f"{self.name} task {task_id} to be {statuses}",
            lambda: (t := self.get(task_id))["status"] in statuses and t,
            timeout=timeout,
        )

    def result_line(self, task_id: str) -> dict[str, Any]:
        lines = self.http.get(f"/task/{task_id}/logs", params={"follow": "false"}).text.splitlines()
        last: dict[str, Any] = json.loads(lines[-1])
        assert last["type"] == "ccr" and last["event"] == "result", last
        return last


@dataclass
class Both:
    local: Side
    cluster: Side
    behave: Callable[[dict[str, str]], None]  # what the cluster's next pods do
    github: FakeGitHub

    def pod_plays(self, result: dict[str, Any] | None, *, run: str = "1s", exit_code: int | None = None) -> None:
        """The cluster's next pod reports ``result`` (None: nothing, as a killed pipeline)."""
        code = exit_code if exit_code is not None else (0 if result and result["status"] == "Succeeded" else 1)
        annotations = {"ccr-test/exit-code": str(code), "ccr-test/run-duration": run}
        if result is not None:
            annotations["ccr-test/termination-message"] = json.dumps(result)
        self.behave(annotations)

    def once(self, prompt: str, **fields: Any) -> None:
        """One task in each backend, the cluster's playing back the local run."""
        local = self.local.wait(self.local.submit(prompt=prompt, repo=REPO, **fields)["id"])
        self.pod_plays(self.local.result_line(local["id"]))
        self.cluster.wait(self.cluster.submit(prompt=prompt, repo=REPO, **fields)["id"])

    def answers(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        labels = {real: f"<task {i}>" for ids in (self.local.ids, self.cluster.ids) for i, real in enumerate(ids)}

        def normal(task: dict[str, Any]) -> dict[str, Any]:
            text = json.dumps({k: v for k, v in task.items() if k not in TIMES})
            for real, label in labels.items():
                text = text.replace(real, label)
            return dict(json.loads(text))

        local = [normal(self.local.get(i)) for i in self.local.ids]
        cluster = [normal(self.cluster.get(i)) for i in self.cluster.ids]
        return local, cluster


@pytest.fixture
def both(
    kube: Any,
    api: Any,
    ns: str,
    start_operator: Any,
    tmp_path: Path,
    local_env: dict[str, str],
    fake_github: FakeGitHub,
) -> Iterator[Both]:
    local_server = CcrServer(tmp_path / "local", env=local_env).start()
    start_operator(pod_annotation_prefixes="", cancel_grace_seconds=5)
    kubeconfig = grant(kube, api, ns, API_SA, rbac.api_rules())
    cluster_server = CcrServer(tmp_path / "cluster")
    cluster_server.env.update({"CCR_BACKEND": "kubernetes", "CCR_NAMESPACE": ns, "KUBECONFIG": kubeconfig})
    cluster_server.start()
    sides = []
    try:
        for name, server in (("local", local_server), ("cluster", cluster_server)):
            http = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {server.token()}"})
            sides.append(Side(name, server, http))
        yield Both(sides[0], sides[1], lambda annotations: kube.pod_behaviour(ns, annotations), fake_github)
    finally:
        for side in sides:
            side.http.close()
        cluster_server.stop()
        local_server.stop()


def scenario_success(b: Both) -> None:
    b.once("[fake:success] add the widget counter")


def scenario_no_changes(b: Both) -> None:
    b.once("[fake:noop] is this already done?")


def scenario_auth_expired_claude(b: Both) -> None:
    b.once("[fake:auth_expired] anything")


def scenario_auth_expired_github(b: Both) -> None:
    token = b.github.token
    b.github.token = "revoked-token-0000000000"  # GitHub now refuses the one the runner holds
    try:
        b.once("anything at all")
    finally:
        b.github.token = token


def scenario_capacity_reached(b: Both) -> None:
    b.once("[fake:usage_limit] a big job")


def scenario_claude_crash(b: Both) -> None:
    b.once("[fake:crash] boom")


def scenario_pipeline_killed(b: Both) -> None:
    local = b.local.wait(b.local.submit(prompt="[fake:kill_pipeline] down", repo=REPO)["id"])
    assert local["error"] == "the job ended with code 137 without reporting a result", local
    # A SIGKILLed pipeline writes no result: its termination message is still the progress it wrote when
    # the draft PR opened (ccr.job.pipeline.progress), with what the transcript's pr_opened step says.
    lines = [json.loads(x) for x in b.local.http.get(f"/task/{local['id']}/logs?follow=false").text.splitlines()]
    opened = next(e for e in lines if e.get("event") == "step" and e.get("step") == "pr_opened")
    branch = next(e["branch"] for e in lines if e.get("event") == "step" and e.get("step") == "branch")
    progress = {"type": "ccr", "event": "result", "status": "Running", "repo": REPO, "branch": branch}
    b.pod_plays({**progress, "prUrl": opened["url"]}, exit_code=137)
    b.cluster.wait(b.cluster.submit(prompt="[fake:kill_pipeline] down", repo=REPO)["id"])


def scenario_push_failure(b: Both) -> None:
    b.github.refuse_pushes_after_pr(REPO, "protected branch")
    try:
        b.once("[fake:success:nopush] commit, never push")
    finally:
        b.github.allow_pushes(REPO)


def scenario_timeout(b: Both) -> None:
    b.once("[fake:hang] think forever", timeout_seconds=60)


def scenario_cancel(b: Both) -> None:
    local = b.local.submit(prompt="[fake:hang] wait", repo=REPO)
    b.local.wait(local["id"], ("running",))
    time.sleep(2)  # the worker runs
    b.local.http.post(f"/task/{local['id']}/cancel")
    b.local.wait(local["id"])
    answer = b.local.result_line(local["id"])
    b.behave(
        {
            "ccr-test/run-duration": "1h",
            "ccr-test/termination-message-on-delete": json.dumps(answer),
            "ccr-test/exit-code-on-delete": "1",
        }
    )
    cluster = b.cluster.submit(prompt="[fake:hang] wait", repo=REPO)
    b.cluster.wait(cluster["id"], ("running",))
    wait_for("the pod", lambda: b.cluster.get(cluster["id"])["reason"] == "Running", timeout=30)
    b.cluster.http.post(f"/task/{cluster['id']}/cancel")
    b.cluster.wait(cluster["id"])


def scenario_follow_up(b: Both) -> None:
    b.once("[fake:success] start")
    for side in (b.local, b.cluster):
        if side is b.cluster:
            b.pod_plays(b.local.result_line(b.local.ids[1]))
        side.wait(side.submit(f"/task/{side.ids[0]}/followup", prompt="[fake:success] and more")["id"])


def scenario_follow_up_of_a_running_task(b: Both) -> None:
    first = b.local.submit(prompt="[fake:slow:40:0.1] long", repo=REPO)
    b.local.wait(first["id"], ("running",))
    later = b.local.submit(f"/task/{first['id']}/followup", prompt="[fake:success] then this")
    assert b.local.get(later["id"])["reason"] in ("WaitingForSlot", "WaitingForTask")
    b.local.wait(later["id"])
    b.pod_plays(b.local.result_line(first["id"]), run="6s")
    first_c = b.cluster.submit(prompt="[fake:slow:40:0.1] long", repo=REPO)
    wait_for("its pod", lambda: b.cluster.get(first_c["id"])["reason"] == "Running", timeout=30)
    b.pod_plays(b.local.result_line(later["id"]))
    later_c = b.cluster.submit(f"/task/{first_c['id']}/followup", prompt="[fake:success] then this")
    wait_for("WaitingForTask", lambda: b.cluster.get(later_c["id"])["reason"] == "WaitingForTask", timeout=20)
    assert b.cluster.get(later_c["id"])["branch"] == b.cluster.get(first_c["id"])["branch"] == f"claude/{first_c['id']}"
    b.cluster.wait(later_c["id"])


def scenario_retry_continue(b: Both) -> None:
    b.once("[fake:usage_limit] big")
    for side in (b.local, b.cluster):
        if side is b.cluster:
            b.pod_plays(b.local.result_line(b.local.ids[1]))
        side.wait(side.submit(f"/task/{side.ids[0]}/retry")["id"])


@pytest.mark.parametrize(
    "scenario",
    [
        scenario_success,
        scenario_no_changes,
        scenario_auth_expired_claude,
        scenario_auth_expired_github,
        scenario_capacity_reached,
        scenario_claude_crash,
        scenario_pipeline_killed,
        scenario_push_failure,
        scenario_timeout,
        scenario_cancel,
        scenario_follow_up,
        scenario_follow_up_of_a_running_task,
        scenario_retry_continue,
    ],
    ids=lambda f: f.__name__.removeprefix("scenario_"),
)
def test_both_backends_answer_the_same(both: Both, scenario: Callable[[Both], None]) -> None:
    scenario(both)
    local, cluster = both.answers()
    assert len(local) == len(cluster)
    for mine, theirs in zip(local, cluster, strict=True):
        assert mine == theirs
