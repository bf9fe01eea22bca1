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
        with httpx.Client(base_url=srv.url, timeout=30,
                          headers={"Authorization": f"Bearer {srv.token()}"}) as http:
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
            wait_for("archived", lambda: get_task(api, ns, task_id)["metadata"].get("annotations", {}).get(
                builders.ARCHIVED_ANNOTATION) == "true", timeout=30)
            archive = tmp_path / "data" / "transcripts" / ns / f"{task_id}.jsonl"
            lines = archive.read_text().splitlines()
            assert [json.loads(x) for x in lines] == [*LINES, RESULT]
            logs = http.get(f"/task/{task_id}/logs")
            assert [json.loads(x) for x in logs.text.splitlines()] == [*LINES, RESULT]
            # only now does the Job get its TTL
            wait_for("the TTL", lambda: client.BatchV1Api(api).read_namespaced_job(job_name, ns)
                     .spec.ttl_seconds_after_finished == 60, timeout=60)
    finally:
        srv.stop()
