"""The "Done when" list of issue 4, each shown on the real control plane (or the CCR_TEST_KUBECONFIG cluster)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from controlplane import (
    ANN_EXIT_CODE,
    ANN_RUN_DURATION,
    ANN_START_DELAY,
    ANN_TERMINATION_MESSAGE,
    ANN_WAITING_MESSAGE,
    ANN_WAITING_REASON,
    ControlPlane,
    append_log,
)
from kubernetes import client
from waiting import fresh_namespace, wait_for

pytestmark = pytest.mark.k8s

IMAGE = "busybox:1.36"  # only pulled on a real cluster; kwok never runs it


@pytest.fixture
def api(kube) -> Iterator[client.ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def ns(kube, api) -> Iterator[str]:
    yield from fresh_namespace(kube, api, "t")


def job_manifest(
    name: str,
    *,
    command: str = "echo hello",
    annotations: dict[str, str] | None = None,
    backoff_limit: int = 0,
    ttl: int | None = None,
    owner: client.V1OwnerReference | None = None,
) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, owner_references=[owner] if owner else None),
        spec=client.V1JobSpec(
            backoff_limit=backoff_limit,
            ttl_seconds_after_finished=ttl,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations or {}),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="main", image=IMAGE, command=["sh", "-c", command])],
                ),
            ),
        ),
    )


def job_pods(api: client.ApiClient, ns: str, job: str) -> list[client.V1Pod]:
    return client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"job-name={job}").items


def job_condition(api: client.ApiClient, ns: str, job: str, cond: str) -> bool:
    status = client.BatchV1Api(api).read_namespaced_job_status(job, ns).status
    return any(c.type == cond and c.status == "True" for c in (status.conditions or []))


# ---------------------------------------------------------------------------------------------------------


def test_version_is_real(kube, api):
    info = client.VersionApi(api).get_code()
    assert info.major == "1"
    if isinstance(kube, ControlPlane):
        assert info.git_version == "v1.34.4"


def test_crd_applied_object_created_and_schema_violation_rejected(kube, api, ns):
    group = f"g{uuid.uuid4().hex[:6]}.test.ccr.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "colour": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                },
                                "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                            },
                        }
                    },
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    try:
        wait_for(
            "CRD Established",
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (ext.read_custom_resource_definition(f"widgets.{group}").status.conditions or [])
            ),
        )
        co = client.CustomObjectsApi(api)

        def create(name: str, spec: dict[str, Any]) -> dict[str, Any]:
            body = {"apiVersion": f"{group}/v1alpha1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
            return co.create_namespaced_custom_object(group, "v1alpha1", ns, "widgets", body)

        # discovery may lag Established by a moment
        ok = wait_for("custom object created", lambda: create("good", {"size": 3, "colour": "red", "junk": 1}))
        assert ok["spec"] == {"size": 3, "colour": "red"}  # unknown field pruned by the structural schema
        assert co.get_namespaced_custom_object(group, "v1alpha1", ns, "widgets", "good")["spec"]["size"] == 3

        for bad in ({"size": "big"}, {"size": 0}, {"colour": "red"}, {"size": 2, "colour": "green"}):
            with pytest.raises(client.ApiException) as err:
                create("bad", bad)
            assert err.value.status == 422, (bad, err.value.body)

        # the status subresource ignores spec changes and the main resource ignores status changes
        co.patch_namespaced_custom_object_status(
            group, "v1alpha1", ns, "widgets", "good", {"status": {"phase": "Ready"}, "spec": {"size": 9}}
        )
        got = co.get_namespaced_custom_object(group, "v1alpha1", ns, "widgets", "good")
        assert got["status"] == {"phase": "Ready"}
        assert got["spec"]["size"] == 3
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def test_job_pod_is_scheduled_runs_and_succeeds(kube, api, ns):
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(ns, job_manifest("ok", command="echo done"))

    pod = wait_for("the Job's pod", lambda: job_pods(api, ns, "ok"))[0]
    pod = wait_for("the pod scheduled", lambda: (p := job_pods(api, ns, "ok")[0]).spec.node_name and p)
    if isinstance(kube, ControlPlane):
        assert pod.spec.node_name == kube.node_name
    phases: set[str] = set()

    def succeeded() -> bool:
        p = job_pods(api, ns, "ok")[0]
        phases.add(p.status.phase)
        return p.status.phase == "Succeeded"

    wait_for("pod Succeeded", succeeded, interval=0.05, timeout=120)
    if isinstance(kube, ControlPlane):
        assert "Running" in phases  # default behaviour: Running for 1 s, then exit 0
    pod = job_pods(api, ns, "ok")[0]
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0
    wait_for("Job Complete", lambda: job_condition(api, ns, "ok", "Complete"))
    assert batch.read_namespaced_job_status("ok", ns).status.succeeded == 1


def test_job_pod_fails_with_exit_code_and_termination_message(kube, api, ns):
    message = '{"status":"failed","errorType":"exit_code"}'
    job = job_manifest(
        "bad",
        command=f"printf '%s' '{message}' > /dev/termination-log; exit 3",
        annotations={ANN_EXIT_CODE: "3", ANN_TERMINATION_MESSAGE: message, ANN_RUN_DURATION: "500ms"},
    )
    client.BatchV1Api(api).create_namespaced_job(ns, job)
    wait_for("pod Failed", lambda: (p := job_pods(api, ns, "bad")) and p[0].status.phase == "Failed", timeout=120)
    term = job_pods(api, ns, "bad")[0].status.container_statuses[0].state.terminated
    assert term.exit_code == 3
    assert term.message == message
    wait_for("Job Failed", lambda: job_condition(api, ns, "bad", "Failed"))


def test_deleting_the_owner_cascades_to_job_and_pods(kube, api, ns):
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    owner = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    ref = client.V1OwnerReference(
        api_version="v1",
        kind="ConfigMap",
        name="owner",
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )
    batch.create_namespaced_job(
        ns, job_manifest("owned", owner=ref, annotations={ANN_RUN_DURATION: "1h"}, command="sleep 3600")
    )
    wait_for("pod Running", lambda: (p := job_pods(api, ns, "owned")) and p[0].status.phase == "Running", timeout=120)

    core.delete_namespaced_config_map("owner", ns, propagation_policy="Foreground")

    def gone() -> bool:
        jobs = batch.list_namespaced_job(ns).items
        return not jobs and not job_pods(api, ns, "owned")

    wait_for("Job and pods garbage-collected", gone, timeout=120)
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("owner", ns)
    assert err.value.status == 404


def test_ttl_seconds_after_finished_removes_the_job(kube, api, ns):
    batch = client.BatchV1Api(api)
    # A TTL long enough to see Complete first: with 1 s a busy poller can find the Job already gone.
    batch.create_namespaced_job(ns, job_manifest("ttl", ttl=5, annotations={ANN_RUN_DURATION: "200ms"}))
    wait_for("Job Complete", lambda: job_condition(api, ns, "ttl", "Complete"), timeout=120)

    def removed() -> bool:
        return not [j for j in batch.list_namespaced_job(ns).items if j.metadata.name == "ttl"]

    wait_for("Job removed by the TTL controller", removed, timeout=120)


def test_following_the_pod_log_returns_lines_as_they_are_appended(kube, api, ns, tmp_path):
    core = client.CoreV1Api(api)
    log_file = tmp_path / "main.log"
    if kube.simulated:
        kube.pod_logs_from_file(ns, log_file)  # every pod of the namespace reads this file
        append_log(log_file, "line 1", "line 2")
    # a real cluster runs the command; kwok ignores it and serves the file
    command = "echo line 1; echo line 2; sleep 3; echo line 3; sleep 2; echo line 4; sleep 3600"
    client.BatchV1Api(api).create_namespaced_job(
        ns, job_manifest("logs", command=command, annotations={ANN_RUN_DURATION: "1h"})
    )
    pod = wait_for(
        "pod Running", lambda: (p := job_pods(api, ns, "logs")) and p[0].status.phase == "Running" and p[0], timeout=180
    )

    resp = core.read_namespaced_pod_log(
        pod.metadata.name, ns, container="main", follow=True, _preload_content=False, _request_timeout=60
    )
    received: list[str] = []
    done = threading.Event()

    def reader() -> None:
        buf = b""
        try:
            for chunk in resp.stream(amt=64, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    received.append(line.decode())
                    if len(received) >= 4:
                        done.set()
                        return
        except Exception:  # connection closed by the test
            pass
        finally:
            done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    wait_for("first two lines", lambda: len(received) >= 2, timeout=30)
    assert received[:2] == ["line 1", "line 2"]
    if kube.simulated:
        time.sleep(0.5)
        assert len(received) == 2  # nothing more until the file grows
        append_log(log_file, "line 3")
        wait_for("line 3 while following", lambda: len(received) >= 3, timeout=15)
        append_log(log_file, "line 4")
    assert done.wait(30), received
    assert received == ["line 1", "line 2", "line 3", "line 4"]
    resp.release_conn()


def test_service_account_without_the_verb_is_refused_by_rbac(kube, api, ns, tmp_path):
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-getter"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="pod-getter"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-getter"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="limited", namespace=ns)],
        ),
    )
    kubeconfig = kube.service_account_kubeconfig(ns, "limited", tmp_path / "limited.yaml")

    with kube.api_client(kubeconfig) as sa_api:
        core = client.CoreV1Api(sa_api)
        # the token authenticates: `get` is granted (404 for a missing pod, not 401/403)
        with pytest.raises(client.ApiException) as err:
            core.read_namespaced_pod("nope", ns)
        assert err.value.status == 404
        # `list` and `create` are not granted: RBAC says 403
        with pytest.raises(client.ApiException) as err:
            core.list_namespaced_pod(ns)
        assert err.value.status == 403
        assert f"system:serviceaccount:{ns}:limited" in err.value.body
        with pytest.raises(client.ApiException) as err:
            core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
        assert err.value.status == 403

    # an invalid token is not authenticated at all
    bad = kube.service_account_kubeconfig(ns, "limited", tmp_path / "bad.yaml")
    text = (tmp_path / "bad.yaml").read_text()
    token = text.split("token: ")[1].split()[0]
    (tmp_path / "bad.yaml").write_text(text.replace(token, token[:-4] + "AAAA"))
    with kube.api_client(bad) as bad_api, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(bad_api).read_namespaced_pod("nope", ns)
    assert err.value.status == 401


# --- the kwok annotation contract other tiers rely on (README.md) ----------------------------------------


def make_pod(name: str, annotations: dict[str, str], restart_policy: str = "Never") -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            restart_policy=restart_policy,
            termination_grace_period_seconds=1,
            containers=[client.V1Container(name="main", image=IMAGE, command=["sleep", "3600"])],
        ),
    )


def test_kwok_contract_waiting_start_delay_always_and_deletion(kube, api, ns):
    if not kube.simulated:
        pytest.skip("pod behaviour annotations are a kwok feature")
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        ns, make_pod("pull", {ANN_WAITING_REASON: "ImagePullBackOff", ANN_WAITING_MESSAGE: "no such image"})
    )
    core.create_namespaced_pod(ns, make_pod("late", {ANN_START_DELAY: "2s", ANN_RUN_DURATION: "1h"}))
    core.create_namespaced_pod(ns, make_pod("server", {}, restart_policy="Always"))
    t0 = time.monotonic()

    def waiting() -> Any:
        st = core.read_namespaced_pod("pull", ns).status
        return st.container_statuses and st.container_statuses[0].state.waiting

    w = wait_for("waiting state", waiting)
    assert (w.reason, w.message) == ("ImagePullBackOff", "no such image")
    wait_for("late pod Running", lambda: core.read_namespaced_pod("late", ns).status.phase == "Running")
    assert time.monotonic() - t0 >= 1.5
    wait_for("server Running", lambda: core.read_namespaced_pod("server", ns).status.phase == "Running")
    time.sleep(2)  # longer than the default run duration: restartPolicy Always pods keep running
    assert core.read_namespaced_pod("server", ns).status.phase == "Running"
    assert core.read_namespaced_pod("pull", ns).status.phase == "Pending"

    core.delete_namespaced_pod("late", ns)
    wait_for("late pod gone", lambda: not [p for p in core.list_namespaced_pod(ns).items if p.metadata.name == "late"])


def test_pod_behaviour_for_pods_made_by_other_code(kube, api, ns):
    if not kube.simulated:
        pytest.skip("pod behaviour annotations are a kwok feature")
    message = 'line one\n{"errorType": "auth_expired"}'
    policy = kube.pod_behaviour(ns, {ANN_EXIT_CODE: "7", ANN_TERMINATION_MESSAGE: message, ANN_RUN_DURATION: "0s"})
    try:
        # the Job itself says nothing about behaviour, as an operator's Job would not
        client.BatchV1Api(api).create_namespaced_job(ns, job_manifest("plain"))
        wait_for("Job Failed", lambda: job_condition(api, ns, "plain", "Failed"), timeout=120)
        pod = job_pods(api, ns, "plain")[0]
        term = pod.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.message, term.reason) == (7, message, "Error")
        assert pod.status.phase == "Failed"
    finally:
        kube.clear_pod_behaviour(policy)
