"""The chart on the real control plane (tests/k8s): helm install, Pod Security admission, the operator
running with the chart's own ServiceAccount and RBAC, upgrade, uninstall keeping the ClaudeTasks.

One release per module (installing is the slow part); the tests run in order against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from waiting import wait_for  # tests/k8s, put on sys.path by tests/chart/conftest.py

from tests.chart.helm import CHART, KUBE_VERSION, REPO, helm
from tests.chart.pss import assert_restricted

pytestmark = pytest.mark.k8s

RELEASE = "ccr"
FULLNAME = "ccr-claude-code-runner"
GROUP, VERSION, PLURAL = "ccr.dev", "v1alpha1", "claudetasks"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


class Release:
    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube = kube
        self.ns = namespace

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return helm(*args, "--kubeconfig", self.kube.kubeconfig, "--namespace", self.ns, check=check)

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kube.kubectl(*args, "-n", self.ns, "-o", "json").stdout)

    def manifest(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.helm("get", "manifest", RELEASE).stdout) if d]

    def pods(self, selector: str) -> list[dict[str, Any]]:
        return self.kubectl_json("get", "pods", "-l", selector)["items"]

    def events(self) -> str:
        return self.kube.kubectl("get", "events", "-n", self.ns, check=False).stdout


@pytest.fixture(scope="module")
def release(kube: Any) -> Iterator[Release]:
    ns = f"chart-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(ns)
    kube.kubectl("label", "namespace", ns, "--overwrite", *[f"{k}={v}" for k, v in RESTRICTED.items()])
    wait_for(
        "the default ServiceAccount",
        lambda: kube.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0,
        timeout=30,
    )
    rel = Release(kube, ns)
    yield rel
    rel.helm("uninstall", RELEASE, check=False)
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_namespace_enforces_restricted(release: Release):
    """Control: a privileged pod is refused here, so admitted pods below really passed PodSecurity."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]},
    }
    proc = release.kube.kubectl(
        "create", "-n", release.ns, "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False
    )
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr, proc.stderr


def test_helm_install(release: Release):
    out = release.helm(
        "install",
        RELEASE,
        str(CHART),
        "--set",
        "claude.oauthToken=sk-ant-oat01-chart-test",
        "--set",
        "github.token=ghp_charttest",
        # No storage provisioner on the test control plane: the data volume is an emptyDir here.
        "--set",
        "api.persistence.enabled=false",
    ).stdout
    assert "STATUS: deployed" in out
    assert f"kubectl port-forward -n {release.ns} svc/{FULLNAME} 7334:7334" in out  # NOTES.txt
    crd = json.loads(release.kube.kubectl("get", "crd", f"{PLURAL}.{GROUP}", "-o", "json").stdout)
    assert crd["spec"]["names"]["kind"] == "ClaudeTask"


def test_the_apiserver_admits_every_pod_of_the_chart(release: Release):
    for component in ("api", "operator"):
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        pods = wait_for(
            f"a {component} pod (refused by admission if missing; events: see below)",
            lambda s=selector: release.pods(s),
            timeout=60,
        )
        spec = pods[0]["spec"]
        assert_restricted(spec, pods[0]["metadata"].get("annotations"))
        assert spec["serviceAccountName"] == f"{FULLNAME}-{component}"


def test_every_pod_template_passes_a_server_side_dry_run(release: Release):
    """The same pod specs, created directly as Pods with --dry-run=server: a refusal names the field."""
    for obj in release.manifest():
        if obj["kind"] != "Deployment":
            continue
        tpl = obj["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"dry-{obj['metadata']['name']}"[:63], "labels": {"dry-run": "yes"}},
            "spec": tpl["spec"],
        }
        proc = release.kube.kubectl(
            "create", "-n", release.ns, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
        )
        assert proc.returncode == 0, f"{obj['metadata']['name']}: {proc.stderr}"


@pytest.fixture
def chart_operator(release: Release, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The operator as a local process, configured exactly as the chart's Deployment configures it and
    authenticated as the chart's ServiceAccount (a bound token: RBAC exactly as in-cluster)."""
    deployment = next(
        o for o in release.manifest() if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{FULLNAME}-operator"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCR_") and k != "KUBECONFIG"}
    for e in container["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
    env.update(
        {
            "POD_NAMESPACE": release.ns,
            "KUBECONFIG": release.kube.service_account_kubeconfig(release.ns, f"{FULLNAME}-operator", create=False),
            "PYTHONPATH": str(REPO / "src"),
            "CCR_LIVENESS_PORT": "0",  # several operators may run on this machine at once
            "CCR_RESYNC_SECONDS": "2",
        }
    )
    log = (tmp_path / "operator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccr.operator"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    yield proc
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    log.close()
    print((tmp_path / "operator.log").read_text(errors="replace")[-5000:])


def test_the_operator_with_the_charts_permissions_turns_a_claudetask_into_a_job(
    release: Release, chart_operator: subprocess.Popen[bytes]
):
    from ccr.operator.builders import job_name_for

    task = yaml.safe_load((REPO / "examples" / "claudetask.yaml").read_text())
    release.kube.kubectl("apply", "-n", release.ns, "-f", "-", input=json.dumps(task))
    name = task["metadata"]["name"]
    job_name = job_name_for(name)

    def job() -> Any:
        assert chart_operator.poll() is None, "the operator exited"
        proc = release.kube.kubectl("get", "job", job_name, "-n", release.ns, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    created = wait_for(f"Job {job_name}", job, timeout=90)
    pod_spec = created["spec"]["template"]["spec"]
    assert_restricted(pod_spec)
    assert pod_spec["serviceAccountName"] == f"{FULLNAME}-task"
    assert pod_spec["automountServiceAccountToken"] is False
    # The Job's pod is admitted into the restricted namespace (the Job controller creates it).
    pods = wait_for("the Job's pod", lambda: release.pods(f"job-name={job_name}"), timeout=60)
    assert pods[0]["spec"]["automountServiceAccountToken"] is False
    # The operator reports progress on the task through its status.
    wait_for(
        "a phase on the ClaudeTask",
        lambda: release.kubectl_json("get", PLURAL, name).get("status", {}).get("phase"),
        timeout=60,
    )


def test_upgrade_keeps_the_generated_session_secret(release: Release):
    def session_secret() -> str:
        return release.kubectl_json("get", "secret", f"{FULLNAME}-session")["data"]["SESSION_SECRET"]

    before = session_secret()
    out = release.helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "operator.maxConcurrent=3").stdout
    assert "STATUS: deployed" in out
    assert session_secret() == before
    op = release.kubectl_json("get", "deployment", f"{FULLNAME}-operator")
    env = {e["name"]: e.get("value") for e in op["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CCR_MAX_CONCURRENT"] == "3"


def test_uninstall_keeps_the_crd_and_the_claudetasks(release: Release):
    release.kube.kubectl("apply", "-n", release.ns, "-f", str(REPO / "examples" / "claudetask-follow-up.yaml"))
    before = {t["metadata"]["name"] for t in release.kubectl_json("get", PLURAL)["items"]}
    assert "readme-getting-started-2" in before
    out = release.helm("uninstall", RELEASE).stdout
    assert "uninstalled" in out
    wait_for(
        "the operator Deployment to go",
        lambda: (
            release.kube.kubectl("get", "deployment", f"{FULLNAME}-operator", "-n", release.ns, check=False).returncode
            != 0
        ),
        timeout=30,
    )
    release.kube.kubectl("get", "crd", f"{PLURAL}.{GROUP}")
    after = {t["metadata"]["name"] for t in release.kubectl_json("get", PLURAL)["items"]}
    assert after == before


def test_reinstall_over_kept_crd_and_tasks(release: Release):
    """Install again after uninstall: the kept CRD is skipped, not an error, and the tasks are still there."""
    out = release.helm("install", RELEASE, str(CHART), "--set", "api.persistence.enabled=false").stdout
    assert "STATUS: deployed" in out
    assert release.kubectl_json("get", PLURAL)["items"]


def test_offline_rendering_uses_the_clusters_kubernetes_version(release: Release):
    """tests/chart/helm.py renders with --kube-version KUBE_VERSION: keep it the tier's version."""
    server = json.loads(release.kube.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert [server["major"], server["minor"].rstrip("+")] == KUBE_VERSION.split(".")[:2]
