"""The "Done when" list of issue 5 on the real control plane: kwok runs the job pods, the ``ccr-test/*``
annotations (passed through from the ClaudeTask by CCR_POD_ANNOTATION_PREFIXES) choose the exit code and
termination message, and the operator runs as a subprocess with the chart's ServiceAccount permissions."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from ccr.core import constants
from ccr.core.model import GROUP, PLURAL, VERSION
from ccr.operator import builders, rbac
from tests.operator.conftest import (
    OPERATOR_SA,
    create_task,
    get_task,
    list_tasks,
    new_task,
    phase_of,
    wait_for,
)

pytestmark = pytest.mark.k8s

RESULT = {
    "type": "ccr",
    "event": "result",
    "status": "Succeeded",
    "repo": "octo/hello",
    "branch": "claude/t",
    "prUrl": "https://github.com/octo/hello/pull/7",
    "sessionId": "s-1",
    "usage": {"costUsd": 0.42, "inputTokens": 100, "outputTokens": 50, "turns": 4, "durationMs": 1234},
}


def behave(
    exit_code: int = 0, message: dict[str, Any] | str | None = None, run: str = "1s", start_delay: str = "0s"
) -> dict[str, str]:
    ann = {"ccr-test/exit-code": str(exit_code), "ccr-test/run-duration": run, "ccr-test/start-delay": start_delay}
    if message is not None:
        ann["ccr-test/termination-message"] = message if isinstance(message, str) else json.dumps(message)
    return ann


def jobs_of(api: client.ApiClient, ns: str) -> list[client.V1Job]:
    return (
        client.BatchV1Api(api)
        .list_namespaced_job(ns, label_selector=f"{constants.MANAGED_BY_LABEL}={constants.MANAGED_BY}")
        .items
    )


def pods_of(api: client.ApiClient, ns: str, uid: str) -> list[client.V1Pod]:
    return client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"{constants.TASK_UID_LABEL}={uid}").items


def wait_phase(api: client.ApiClient, ns: str, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_task(api, ns, name)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    return wait_for(f"{name} to reach {phases}", check, timeout=timeout)  # type: ignore[no-any-return]


def test_yaml_task_gets_the_expected_job_runs_and_succeeds(kube, api, ns, start_operator) -> None:
    op = start_operator()
    manifest = new_task(
        "hello-yaml", repo="octo/hello", timeout_seconds=600, annotations=behave(message=RESULT, run="4s")
    )
    kube.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(manifest))
    task = get_task(api, ns, "hello-yaml")
    uid = task["metadata"]["uid"]
    job_name = builders.job_name_for("hello-yaml")

    job = wait_for("the Job", lambda: client.BatchV1Api(api).read_namespaced_job(job_name, ns), timeout=30)
    # owner reference, deadline, no retries
    (owner,) = job.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid, owner.controller) == (
        f"{GROUP}/{VERSION}",
        "ClaudeTask",
        "hello-yaml",
        uid,
        True,
    )
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == 600 + 1 + builders.DEADLINE_MARGIN_SECONDS
    assert job.spec.ttl_seconds_after_finished is None  # set only once the transcript is archived
    pod_spec = job.spec.template.spec
    assert pod_spec.automount_service_account_token is False
    assert pod_spec.restart_policy == "Never"
    assert pod_spec.security_context.run_as_non_root is True
    assert pod_spec.security_context.seccomp_profile.type == "RuntimeDefault"
    (c,) = pod_spec.containers
    assert c.image == "busybox:1.36"
    assert c.command == ["python3", "-m", "ccr.job"] and c.args == ["--spec", "/etc/ccr/task/spec.json"]
    sc = c.security_context
    assert (sc.run_as_user, sc.run_as_non_root, sc.allow_privilege_escalation, sc.read_only_root_filesystem) == (
        10001,
        True,
        False,
        True,
    )
    assert sc.capabilities.drop == ["ALL"] and sc.seccomp_profile.type == "RuntimeDefault"
    assert c.termination_message_policy == "FallbackToLogsOnError"
    env = {e.name: e for e in c.env}
    assert env["GITHUB_TOKEN"].value_from.secret_key_ref.name == "ccr-github"
    assert env["GITHUB_TOKEN"].value_from.secret_key_ref.optional is True
    assert env["CLAUDE_CODE_OAUTH_TOKEN"].value_from.secret_key_ref.name == "ccr-claude"
    assert env["HOME"].value == "/home/ccr" and env["CCR_WORKDIR"].value == "/workspace"
    assert all("fix it" not in (e.value or "") for e in c.env)  # the prompt is never in env
    mounts = {m.mount_path: m.name for m in c.volume_mounts}
    assert mounts == {
        "/etc/ccr/task": "task",
        "/etc/ccr/claude": "claude",
        "/home/ccr": "home",
        "/workspace": "workspace",
        "/tmp": "tmp",
    }
    cm = client.CoreV1Api(api).read_namespaced_config_map(builders.spec_configmap_name_for("hello-yaml", uid), ns)
    assert pod_spec.volumes[0].config_map.name == cm.metadata.name
    assert json.loads(cm.data["spec.json"])["spec"]["prompt"] == "fix it"
    assert cm.metadata.owner_references[0].uid == uid

    # Running from the Job's creation; podName when the pod exists; startTime once the pod runs.
    wait_for("startTime", lambda: (get_task(api, ns, "hello-yaml").get("status") or {}).get("startTime"), timeout=30)
    st = get_task(api, ns, "hello-yaml")["status"]
    assert st["phase"] == "Running", st  # the pod runs for 4 s
    assert st["jobName"] == job_name and st.get("startTime") and st["podName"].startswith(job_name)
    table = kube.kubectl("get", "ct", "-n", ns, "hello-yaml").stdout
    assert "octo/hello" in table and ("Running" in table or "Succeeded" in table), table

    done = wait_phase(api, ns, "hello-yaml", "Succeeded", "Failed", "Cancelled", timeout=60)
    st = done["status"]
    assert st["phase"] == "Succeeded", (st, op.log())
    assert st["prUrl"] == RESULT["prUrl"]
    assert st["usage"]["costUsd"] == 0.42 and st["usage"]["turns"] == 4
    assert st["completionTime"] and st["podName"].startswith(job_name)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Complete"]["status"] == "True"
    assert conds["PullRequestOpened"]["status"] == "True"
    assert all(c["observedGeneration"] == done["metadata"]["generation"] for c in st["conditions"])
    table = kube.kubectl("get", "ct", "-n", ns).stdout
    assert "Succeeded" in table and "pull/7" in table
    # no finalizer anywhere (nothing can get stuck while the operator is down), no kopf annotations
    assert not done["metadata"].get("finalizers")
    assert not client.BatchV1Api(api).read_namespaced_job(job_name, ns).metadata.finalizers
    assert not [k for k in done["metadata"].get("annotations", {}) if "kopf" in k or k.startswith("ccr.dev/")]

    # Events on the transitions, no kopf bookkeeping in status
    def reasons() -> set[str]:
        events = client.CoreV1Api(api).list_namespaced_event(ns, field_selector="involvedObject.name=hello-yaml")
        return {e.reason for e in events.items}

    wait_for("the Events", lambda: {"Starting", "Running", "Succeeded"} <= reasons(), timeout=20)
    assert set(st) <= {
        "phase",
        "reason",
        "changes",
        "authTarget",
        "conditions",
        "jobName",
        "podName",
        "repo",
        "branch",
        "prUrl",
        "errorType",
        "message",
        "resetTime",
        "startTime",
        "completionTime",
        "usage",
        "sessionId",
        "observedGeneration",
    }


def test_failures_are_classified(api, ns, start_operator) -> None:
    start_operator()
    auth = {**RESULT, "status": "Failed", "errorType": "auth_expired", "message": "Please run /login", "prUrl": None}
    create_task(api, ns, new_task("exit-three", annotations=behave(exit_code=3)))
    create_task(api, ns, new_task("auth", annotations=behave(exit_code=1, message=auth)))
    a = wait_phase(api, ns, "exit-three", "Succeeded", "Failed")["status"]
    assert (a["phase"], a["errorType"]) == ("Failed", "exit_code")
    assert "code 3" in a["message"]
    b = wait_phase(api, ns, "auth", "Succeeded", "Failed")["status"]
    assert (b["phase"], b["errorType"]) == ("Failed", "auth_expired")
    assert b["message"] == "Please run /login"


def test_cancel_ends_cancelled_and_removes_the_pod(api, ns, start_operator) -> None:
    start_operator()
    task = create_task(api, ns, new_task("long", annotations=behave(run="1h")))
    wait_for("podName", lambda: (get_task(api, ns, "long").get("status") or {}).get("podName"), timeout=30)
    wait_for(
        "a running pod",
        lambda: [p for p in pods_of(api, ns, task["metadata"]["uid"]) if p.status.phase == "Running"],
        timeout=30,
    )
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "long", {"spec": {"cancel": True}}
    )
    st = wait_phase(api, ns, "long", "Cancelled", "Failed", "Succeeded", timeout=60)["status"]
    assert (st["phase"], st["errorType"]) == ("Cancelled", "cancelled")
    wait_for("the pod to be gone", lambda: not pods_of(api, ns, task["metadata"]["uid"]), timeout=60)
    wait_for("the Job to be gone", lambda: not jobs_of(api, ns), timeout=30)


def test_deleting_the_task_removes_job_and_pods(api, ns, start_operator) -> None:
    start_operator()
    task = create_task(api, ns, new_task("doomed", annotations=behave(run="1h")))
    uid = task["metadata"]["uid"]
    wait_for("a pod", lambda: pods_of(api, ns, uid), timeout=30)
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "doomed")
    wait_for(
        "the task to be gone", lambda: "doomed" not in {t["metadata"]["name"] for t in list_tasks(api, ns)}, timeout=20
    )
    wait_for("Job and pods gone", lambda: not jobs_of(api, ns) and not pods_of(api, ns, uid), timeout=60)


def test_limit_two_with_five_tasks(api, ns, start_operator) -> None:
    start_operator(max_concurrent=2)
    names = [f"q{i}" for i in range(5)]
    for name in names:
        create_task(api, ns, new_task(name, annotations=behave(message=RESULT, run="3s")))
    peak_jobs = peak_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        active = [
            j
            for j in jobs_of(api, ns)
            if not any(c.status == "True" and c.type in ("Complete", "Failed") for c in (j.status.conditions or []))
        ]
        phases = [(t.get("status") or {}).get("phase") for t in list_tasks(api, ns)]
        peak_jobs = max(peak_jobs, len(active))
        peak_running = max(peak_running, phases.count("Running"))
        assert len(active) <= 2 and phases.count("Running") <= 2, (active, phases)
        if phases.count("Succeeded") == 5:
            break
        time.sleep(0.1)
    phases = {t["metadata"]["name"]: t["status"]["phase"] for t in list_tasks(api, ns)}
    assert phases == dict.fromkeys(names, "Succeeded")
    assert peak_jobs == 2 and peak_running == 2


def test_fifty_tasks_survive_two_operator_kills(api, ns, start_operator) -> None:
    op = start_operator(max_concurrent=20)
    created: Counter[str] = Counter()
    stop = threading.Event()

    def count_job_creations() -> None:
        w = watch.Watch()
        for event in w.stream(client.BatchV1Api(api).list_namespaced_job, ns, timeout_seconds=240):
            if event["type"] == "ADDED":
                created[event["object"].metadata.name] += 1
            if stop.is_set():
                w.stop()

    watcher = threading.Thread(target=count_job_creations, daemon=True)
    watcher.start()
    names = [f"r{i:02d}" for i in range(50)]
    for i, name in enumerate(names):
        create_task(api, ns, new_task(name, annotations=behave(message=RESULT, run="2s")))
        if i in (15, 35):
            op.kill()
            time.sleep(1)
            op.start()
    op.kill()
    time.sleep(2)
    op.start()

    def all_done() -> bool:
        phases = [(t.get("status") or {}).get("phase") for t in list_tasks(api, ns)]
        return phases.count("Succeeded") == 50

    wait_for("all 50 to succeed", all_done, timeout=240, interval=1)
    stop.set()
    # Exactly one Job per task: one Job name each, created once.
    jobs = jobs_of(api, ns)
    by_task = Counter(j.metadata.annotations[constants.TASK_NAME_ANNOTATION] for j in jobs)
    assert by_task == Counter(dict.fromkeys(names, 1))
    assert all(n == 1 for n in created.values()), created
    assert op.starts == 4


def test_invalid_specs(api, ns, start_operator) -> None:
    start_operator()
    with pytest.raises(client.ApiException) as refused:
        create_task(api, ns, new_task("bad-repo", repo="not a repo"))
    assert refused.value.status == 422
    with pytest.raises(client.ApiException):
        create_task(api, ns, new_task("bad-timeout", timeout_seconds=5))
    # what the schema lets through but the model refuses: a blank prompt
    create_task(api, ns, new_task("blank", prompt="   "))
    st = wait_phase(api, ns, "blank", "Failed", "Succeeded", "Running")["status"]
    assert (st["phase"], st["errorType"]) == ("Failed", "invalid")
    assert "prompt" in st["message"]
    time.sleep(3)
    assert not jobs_of(api, ns)


def test_operator_runs_with_exactly_the_chart_permissions(kube, api, ns, start_operator) -> None:
    start_operator()
    create_task(api, ns, new_task("perm", annotations=behave(message=RESULT)))
    wait_phase(api, ns, "perm", "Succeeded")
    role = client.RbacAuthorizationV1Api(api).read_namespaced_role(OPERATOR_SA, ns)
    assert [api.sanitize_for_serialization(r) for r in role.rules] == rbac.operator_rules()
    sa = f"system:serviceaccount:{ns}:{OPERATOR_SA}"
    can = kube.kubectl("auth", "can-i", "list", "secrets", "-n", ns, f"--as={sa}", check=False)
    assert can.stdout.strip() == "no"
    can = kube.kubectl("auth", "can-i", "create", "jobs", "-n", ns, f"--as={sa}", check=False)
    assert can.stdout.strip() == "yes"


def test_job_deleted_out_of_band_fails_with_a_reason(api, ns, start_operator) -> None:
    start_operator()
    create_task(api, ns, new_task("lost", annotations=behave(run="1h")))
    wait_phase(api, ns, "lost", "Running")
    job = builders.job_name_for("lost")
    client.BatchV1Api(api).delete_namespaced_job(job, ns, propagation_policy="Background")
    st = wait_phase(api, ns, "lost", "Failed", "Succeeded", "Cancelled", timeout=60)["status"]
    assert st["phase"] == "Failed" and st["message"]
    assert phase_of(api, ns, "lost") == "Failed"


def test_evicted_pod_fails_the_task_with_a_reason(api, ns, start_operator) -> None:
    start_operator()
    task = create_task(api, ns, new_task("evicted", annotations=behave(run="1h")))
    uid = task["metadata"]["uid"]
    pods = wait_for(
        "a running pod", lambda: [p for p in pods_of(api, ns, uid) if p.status.phase == "Running"], timeout=30
    )
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pods[0].metadata.name, namespace=ns))
    client.CoreV1Api(api).create_namespaced_pod_eviction(pods[0].metadata.name, ns, eviction)
    st = wait_phase(api, ns, "evicted", "Failed", "Succeeded", "Cancelled", timeout=60)["status"]
    assert (st["phase"], st["errorType"]) == ("Failed", "exit_code")
    assert st["message"], st
    time.sleep(3)  # and it stays that way: one Job, not re-run
    assert len(jobs_of(api, ns)) == 1 and phase_of(api, ns, "evicted") == "Failed"


def test_a_task_recreated_under_the_same_name_gets_its_own_job(api, ns, start_operator) -> None:
    start_operator()
    first = create_task(api, ns, new_task("again", annotations=behave(run="1h")))
    wait_phase(api, ns, "again", "Running")
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "again")
    wait_for("deleted", lambda: "again" not in {t["metadata"]["name"] for t in list_tasks(api, ns)}, timeout=20)
    second = create_task(api, ns, new_task("again", annotations=behave(message=RESULT)))
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    st = wait_phase(api, ns, "again", "Succeeded", "Failed", timeout=90)["status"]
    assert st["phase"] == "Succeeded", st
    (job,) = jobs_of(api, ns)
    assert job.metadata.owner_references[0].uid == second["metadata"]["uid"]
