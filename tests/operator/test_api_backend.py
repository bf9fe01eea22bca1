"""A task from ``POST /task`` of a real ``ccr serve`` with CCR_BACKEND=kubernetes (its own ServiceAccount
with ``api_rules()``): the ClaudeTask, the Job, Running, Succeeded with prUrl and usage, the transcript
streamed from the pod log API and archived, and the Job's TTL set only after that."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from controlplane import append_log
from kubernetes import client

from ccr.core import constants
from ccr.operator import builders, rbac
from tests.operator.conftest import API_SA, get_task, grant, wait_for
from tests.operator.test_operator import RESULT, behave
from tests.server import CcrServer

pytestmark = pytest.mark.k8s

LINES = [
    {"type": "ccr", "event": "phase", "phase": "orchestrator"},
    {"type": "system", "subtype": "init", "session_id": "s-1"},
    {"type": "assistant", "message": {"content": [{"type": "text", "text": "working on it"}]}},
]


def test_post_task_runs_through_the_operator(kube, api, ns, start_operator, tmp_path: Path) -> None:
    start_operator(job_pod_annotations=json.dumps(behave(message=RESULT, run="4s")), job_ttl_seconds=60)
    log_file = tmp_path / "pod.log"
    kube.pod_logs_from_file(ns, log_file)
    append_log(log_file, *(json.dumps(line) for line in LINES))

    kubeconfig = grant(kube, api, ns, API_SA, rbac.api_rules())
    srv = CcrServer(tmp_path / "data")
    srv.env.update({"CCR_BACKEND": "kubernetes", "CCR_NAMESPACE": ns, "KUBECONFIG": kubeconfig})
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30, headers={"Authorization": f"Bearer {srv.token()}"}) as http:
            r = http.post("/task", json={"prompt": "say hello", "repo": "octo/hello"})
            assert r.status_code == 200, r.text
            task_id = r.json()["id"]
            assert r.json()["status"] == "queued"

            obj = get_task(api, ns, task_id)
            uid = obj["metadata"]["uid"]
            assert obj["spec"]["prompt"] == "say hello" and obj["spec"]["repo"] == "octo/hello"
            job_name = builders.job_name_for(task_id)
            job = wait_for("the Job", lambda: client.BatchV1Api(api).read_namespaced_job(job_name, ns), timeout=30)
            assert job.metadata.owner_references[0].uid == uid
            assert job.spec.backoff_limit == 0
            (c,) = job.spec.template.spec.containers
            assert c.security_context.read_only_root_filesystem is True
            assert {m.mount_path for m in c.volume_mounts} >= {"/etc/ccr/task", "/home/ccr", "/workspace"}

            wait_for("running", lambda: http.get(f"/task/{task_id}").json()["status"] == "running", timeout=30)
            logs = http.get(f"/task/{task_id}/logs", params={"follow": "false"})
            append_log(log_file, json.dumps(RESULT))

            def finished() -> dict | None:
                body = http.get(f"/task/{task_id}").json()
                return body if body["status"] not in ("queued", "running") else None

            body = wait_for("the end", finished, timeout=60)
            assert body["status"] == "completed", body
            assert body["pr_url"] == RESULT["prUrl"]
            assert body["usage"]["costUsd"] == 0.42
            assert body["finished"]

            # the transcript: archived to the data dir, served from there, with the annotation set
            wait_for(
                "archived",
                lambda: (
                    get_task(api, ns, task_id)["metadata"].get("annotations", {}).get(constants.ARCHIVED_ANNOTATION)
                    == "true"
                ),
                timeout=30,
            )
            archive = tmp_path / "data" / "transcripts" / ns / f"{task_id}.jsonl"
            lines = archive.read_text().splitlines()
            assert [json.loads(x) for x in lines] == [*LINES, RESULT]
            logs = http.get(f"/task/{task_id}/logs")
            assert [json.loads(x) for x in logs.text.splitlines()] == [*LINES, RESULT]
            # only now does the Job get its TTL
            wait_for(
                "the TTL",
                lambda: client.BatchV1Api(api).read_namespaced_job(job_name, ns).spec.ttl_seconds_after_finished == 60,
                timeout=60,
            )
    finally:
        srv.stop()


def test_transcript_survives_api_restart_and_job_removal(kube, api, ns, start_operator, tmp_path: Path) -> None:
    start_operator(job_pod_annotations=json.dumps(behave(message=RESULT, run="1h")), job_ttl_seconds=60)
    log_file = tmp_path / "pod.log"
    kube.pod_logs_from_file(ns, log_file)
    append_log(log_file, json.dumps(LINES[0]))
    kubeconfig = grant(kube, api, ns, API_SA, rbac.api_rules())

    def server() -> CcrServer:
        srv = CcrServer(tmp_path / "data")
        srv.env.update({"CCR_BACKEND": "kubernetes", "CCR_NAMESPACE": ns, "KUBECONFIG": kubeconfig})
        return srv.start()

    srv = server()
    token = srv.token()
    auth = {"Authorization": f"Bearer {token}"}
    task_id = httpx.post(f"{srv.url}/task", json={"prompt": "p"}, headers=auth).json()["id"]
    archive = tmp_path / "data" / "transcripts" / ns / f"{task_id}.jsonl"
    wait_for("the first line archived", lambda: archive.exists() and archive.read_text().count("\n") == 1, timeout=60)
    srv.kill()  # a crash mid-run: the next one must neither lose nor repeat lines
    append_log(log_file, json.dumps(LINES[1]), json.dumps(LINES[2]))
    srv = server()
    try:
        http = httpx.Client(base_url=srv.url, timeout=30, headers=auth)
        wait_for("all three lines", lambda: archive.read_text().count("\n") == 3, timeout=30)
        # end the run by removing its Job (as a deadline or the TTL would): the pod and its log go away
        append_log(log_file, json.dumps(RESULT))
        client.BatchV1Api(api).delete_namespaced_job(
            builders.job_name_for(task_id), ns, propagation_policy="Background"
        )
        wait_for(
            "finished", lambda: http.get(f"/task/{task_id}").json()["status"] not in ("queued", "running"), timeout=60
        )
        wait_for(
            "archived",
            lambda: (
                get_task(api, ns, task_id)["metadata"].get("annotations", {}).get(constants.ARCHIVED_ANNOTATION)
                == "true"
            ),
            timeout=30,
        )
        uid = get_task(api, ns, task_id)["metadata"]["uid"]
        wait_for(
            "the pod gone",
            lambda: (
                not client.CoreV1Api(api)
                .list_namespaced_pod(ns, label_selector=f"{constants.TASK_UID_LABEL}={uid}")
                .items
            ),
            timeout=60,
        )
        lines = [json.loads(x) for x in http.get(f"/task/{task_id}/logs").text.splitlines()]
        assert lines == [*LINES, RESULT]
        seqs = [
            int(e.split("\n")[0].removeprefix("id: "))
            for e in http.get(f"/task/{task_id}/events").text.split("\n\n")
            if e.startswith("id: ")
        ]
        assert seqs == [1, 2, 3, 4]
    finally:
        srv.stop()
