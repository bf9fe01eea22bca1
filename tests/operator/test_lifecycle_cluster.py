"""Issue 11 on the real control plane: start failures, follow-ups written with kubectl, one run per branch,
the operator's default deadline. kwok runs the pods (the ``ccr-test/*`` annotations choose what they do)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ccr.core.model import GROUP, PLURAL, VERSION
from ccr.operator import builders
from tests.operator.conftest import create_task, get_task, new_task, wait_for
from tests.operator.test_operator import RESULT, behave, wait_phase

pytestmark = pytest.mark.k8s
REPO_ROOT = Path(__file__).resolve().parents[2]


def status(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return dict(get_task(api, ns, name).get("status") or {})


def spec_file(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    """What the task's pod is handed: the spec ConfigMap's file (the job pipeline's whole input)."""
    uid = get_task(api, ns, name)["metadata"]["uid"]
    cm = client.CoreV1Api(api).read_namespaced_config_map(builders.spec_configmap_name_for(name, uid), ns)
    return dict(json.loads(cm.data["spec.json"]))


def test_a_pod_that_cannot_start_is_pending_with_the_reason_then_start_failed(kube, api, ns, start_operator) -> None:
    start_operator()
    pull = {"ccr-test/waiting-reason": "ImagePullBackOff", "ccr-test/waiting-message": "Back-off pulling image x:1"}
    create_task(api, ns, new_task("no-image", annotations=pull, start_timeout_seconds=10))
    started = time.monotonic()
    pending = wait_for(
        "Pending with the reason",
        lambda: (s := status(api, ns, "no-image")).get("phase") == "Pending" and s,
        timeout=10,
    )
    assert pending["reason"] == "ImagePullBackOff" and "Back-off pulling image x:1" in pending["message"]
    table = kube.kubectl("get", "ct", "-n", ns, "no-image").stdout
    assert "Pending" in table and "ImagePullBackOff" in table
    done = wait_phase(api, ns, "no-image", "Failed", timeout=40)["status"]
    assert done["errorType"] == "start_failed" and "did not start within 10s" in done["message"]
    assert time.monotonic() - started >= 10
    wait_for("the Job to be deleted", lambda: not client.BatchV1Api(api).list_namespaced_job(ns).items, timeout=30)


def test_a_job_that_ends_without_a_result_is_failed(api, ns, start_operator) -> None:
    start_operator()
    create_task(api, ns, new_task("quiet", annotations=behave(exit_code=0)))
    st = wait_phase(api, ns, "quiet", "Succeeded", "Failed")["status"]
    assert (st["phase"], st["errorType"]) == ("Failed", "exit_code") and "without reporting a result" in st["message"]


def test_the_follow_up_example_continues_the_branch_of_the_task_it_follows(kube, api, ns, start_operator) -> None:
    """``kubectl apply`` of the two examples: the follow-up works on the first task's branch and repository."""
    start_operator()
    first = yaml.safe_load((REPO_ROOT / "examples/claudetask.yaml").read_text())
    follow = yaml.safe_load((REPO_ROOT / "examples/claudetask-follow-up.yaml").read_text())
    done = {**RESULT, "repo": first["spec"]["repo"], "branch": "claude/readme-getting-started"}
    first["metadata"]["annotations"] = behave(message=done)
    follow["metadata"]["annotations"] = behave(run="30s")
    for body in (first, follow):
        kube.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(body))
    name, later = first["metadata"]["name"], follow["metadata"]["name"]
    assert wait_phase(api, ns, name, "Succeeded", "Failed")["status"]["phase"] == "Succeeded"
    wait_phase(api, ns, later, "Running")
    st = status(api, ns, later)
    assert st["branch"] == f"claude/{name}" and st["repo"] == first["spec"]["repo"]
    handed = spec_file(api, ns, later)
    assert handed["branch"] == f"claude/{name}" and handed["spec"]["repo"] == first["spec"]["repo"]
    assert handed["spec"]["followUpOf"] == name


def test_a_follow_up_of_a_running_task_waits_for_it(api, ns, start_operator) -> None:
    start_operator()
    create_task(api, ns, new_task("busy", annotations=behave(run="8s", message=RESULT), repo="octo/hello"))
    wait_phase(api, ns, "busy", "Running")
    create_task(api, ns, new_task("next", annotations=behave(message=RESULT), follow_up_of="busy"))
    waiting = wait_for(
        "WaitingForTask", lambda: (s := status(api, ns, "next")).get("reason") == "WaitingForTask" and s, timeout=20
    )
    assert waiting["phase"] == "Queued" and "busy" in waiting["message"] and waiting["branch"] == "claude/busy"
    assert status(api, ns, "busy")["phase"] == "Running"  # it really waited: no Job while the first runs
    assert not [j for j in client.BatchV1Api(api).list_namespaced_job(ns).items if "next" in j.metadata.name]
    assert wait_phase(api, ns, "next", "Succeeded", "Failed", timeout=60)["status"]["phase"] == "Succeeded"
    done_first, done_next = status(api, ns, "busy"), status(api, ns, "next")
    assert done_first["completionTime"] <= done_next["startTime"]


def test_a_follow_up_of_no_task_is_refused(api, ns, start_operator) -> None:
    start_operator()
    create_task(api, ns, new_task("orphan", follow_up_of="never-was"))
    # refused once the index had its chance to catch up (reconcile.FOLLOW_UP_WAIT_SECONDS)
    st = wait_phase(api, ns, "orphan", "Failed", timeout=60)["status"]
    assert st["errorType"] == "invalid" and "never-was" in st["message"]


def test_the_operators_default_deadline_applies_to_tasks_without_one(api, ns, start_operator) -> None:
    start_operator(default_timeout_seconds=120)
    create_task(api, ns, new_task("default-deadline", annotations=behave(run="20s")))
    wait_phase(api, ns, "default-deadline", "Running")
    job = client.BatchV1Api(api).read_namespaced_job(builders.job_name_for("default-deadline"), ns)
    assert job.spec.active_deadline_seconds == 120 + 1 + builders.DEADLINE_MARGIN_SECONDS
    assert spec_file(api, ns, "default-deadline")["spec"]["timeoutSeconds"] == 120
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "default-deadline", {"spec": {"cancel": True}}
    )
