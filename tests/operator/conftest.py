"""Fixtures for the operator tests: the real control plane (tests/k8s), the CRD, a namespace per test, and
the operator as a real subprocess running with exactly the chart's ServiceAccount permissions."""

# ruff: noqa: F811 - fixtures take the imported `kube` fixture as a parameter of the same name, as pytest wants

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_K8S = str(Path(__file__).resolve().parents[1] / "k8s")
if _K8S not in sys.path:
    sys.path.insert(0, _K8S)

from controlplane import kube  # noqa: E402,F401  (one cluster per pytest session)
from kubernetes import client  # noqa: E402
from pydantic.alias_generators import to_camel  # noqa: E402
from waiting import fresh_namespace, wait_for  # noqa: E402

from ccr.core.model import GROUP, PLURAL, VERSION  # noqa: E402
from ccr.operator import rbac  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATOR_SA = "ccr-operator"
API_SA = "ccr-api"


@pytest.fixture(scope="session")
def crd(kube: Any) -> dict[str, Any]:
    from ccr.core.crd import build_crd

    manifest = build_crd()
    kube.apply(manifest)
    with kube.api_client() as api:
        ext = client.ApiextensionsV1Api(api)

        def established() -> bool:
            obj = ext.read_custom_resource_definition(manifest["metadata"]["name"])
            return any(c.type == "Established" and c.status == "True" for c in obj.status.conditions or [])

        wait_for("the CRD to be established", established, timeout=30)
    return manifest


@pytest.fixture
def api(kube: Any) -> Iterator[client.ApiClient]:
    with kube.api_client() as api_client:
        yield api_client


@pytest.fixture
def ns(kube: Any, api: client.ApiClient, crd: dict[str, Any]) -> Iterator[str]:
    yield from fresh_namespace(kube, api, "op")


def grant(kube: Any, api: client.ApiClient, ns: str, sa: str, rules: list[dict[str, Any]]) -> str:
    """ServiceAccount ``sa`` with exactly ``rules`` in ``ns``; returns a kubeconfig with its bound token."""
    rbac_api = client.RbacAuthorizationV1Api(api)
    rbac_api.create_namespaced_role(ns, rbac.role(sa, ns, rules))
    rbac_api.create_namespaced_role_binding(ns, rbac.role_binding(sa, ns, sa, ns))
    return str(kube.service_account_kubeconfig(ns, sa))


class OperatorProcess:
    """``python -m ccr.operator`` as a subprocess; kill() is SIGKILL (no clean shutdown)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> OperatorProcess:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccr.operator"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]


@pytest.fixture
def start_operator(
    kube: Any, api: client.ApiClient, ns: str, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []
    kubeconfigs: list[str] = []

    def start(**overrides: Any) -> OperatorProcess:
        if not kubeconfigs:
            kubeconfigs.append(grant(kube, api, ns, OPERATOR_SA, rbac.operator_rules()))
        kubeconfig = kubeconfigs[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCR_") and k != "KUBECONFIG"}
        env.update(
            {
                "KUBECONFIG": kubeconfig,
                "PYTHONPATH": str(REPO_ROOT / "src"),
                "CCR_NAMESPACES": ns,
                "CCR_RESYNC_SECONDS": "2",
                "CCR_POD_ANNOTATION_PREFIXES": "ccr-test/",
                "CCR_LIVENESS_PORT": "0",
                "CCR_CANCEL_GRACE_SECONDS": "1",
                "CCR_JOB_IMAGE": "busybox:1.36",
                "CCR_MAX_CONCURRENT": "10",
            }
        )
        env.update({f"CCR_{k.upper()}": str(v) for k, v in overrides.items()})
        op = OperatorProcess(env, tmp_path / "operator.log").start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


def new_task(
    name: str, *, prompt: str = "fix it", annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClaudeTask",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"prompt": prompt, **{to_camel(k): v for k, v in spec.items()}},
    }


def create_task(api: client.ApiClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    return obj


def get_task(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return obj


def list_tasks(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL
    )["items"]
    return items


def phase_of(api: client.ApiClient, ns: str, name: str) -> str | None:
    return (get_task(api, ns, name).get("status") or {}).get("phase")
