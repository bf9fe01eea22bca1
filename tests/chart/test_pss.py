"""The restricted-PSS checker (pss.py) is itself tested: a good pod passes, each single violation fails,
and on the real control plane the apiserver's PodSecurity admission agrees with it, case by case."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.chart.pss import PodSecurityViolation, assert_hardened, assert_restricted, restricted_violations


def good_pod() -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "c",
                "image": "busybox:1.36",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def _c(pod: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = pod["containers"][0]["securityContext"]
    return sc


# Each case: one change that breaks the restricted profile (name -> mutation).
VIOLATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    # (the apiserver's validation refuses privileged together with allowPrivilegeEscalation: false)
    "privileged": lambda p: (_c(p).update(privileged=True), _c(p).pop("allowPrivilegeEscalation")),
    "allowPrivilegeEscalation unset": lambda p: _c(p).pop("allowPrivilegeEscalation"),
    "allowPrivilegeEscalation true": lambda p: _c(p).update(allowPrivilegeEscalation=True),
    "runAsNonRoot unset": lambda p: p["securityContext"].pop("runAsNonRoot"),
    "container runAsNonRoot false": lambda p: _c(p).update(runAsNonRoot=False),
    "runAsUser 0": lambda p: _c(p).update(runAsUser=0),
    "pod runAsUser 0": lambda p: p["securityContext"].update(runAsUser=0),
    "seccomp unset": lambda p: p["securityContext"].pop("seccompProfile"),
    "seccomp Unconfined": lambda p: _c(p).update(seccompProfile={"type": "Unconfined"}),
    "capabilities not dropped": lambda p: _c(p).pop("capabilities"),
    "capability added": lambda p: _c(p)["capabilities"].update(add=["SYS_ADMIN"]),
    "hostNetwork": lambda p: p.update(hostNetwork=True),
    "hostPID": lambda p: p.update(hostPID=True),
    "hostIPC": lambda p: p.update(hostIPC=True),
    "hostPath volume": lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/etc"}}),
    "hostPort": lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 8080}]),
    # (validation allows Unmasked only in a user namespace)
    "procMount Unmasked": lambda p: (_c(p).update(procMount="Unmasked"), p.update(hostUsers=False)),
    "unsafe sysctl": lambda p: p["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    "SELinux user": lambda p: _c(p).update(seLinuxOptions={"user": "system_u"}),
    "AppArmor unconfined": lambda p: _c(p).update(appArmorProfile={"type": "Unconfined"}),
    "init container escalates": lambda p: p.setdefault("initContainers", []).append(
        {"name": "i", "image": "busybox:1.36", "securityContext": {"capabilities": {"drop": ["ALL"]}}}
    ),
}


def mutated(name: str) -> dict[str, Any]:
    pod = copy.deepcopy(good_pod())
    VIOLATIONS[name](pod)
    return pod


def test_a_good_pod_passes():
    assert_restricted(good_pod())
    assert_hardened(good_pod(), service_account_token=False)


@pytest.mark.parametrize("name", VIOLATIONS)
def test_each_violation_fails(name: str):
    with pytest.raises(PodSecurityViolation):
        assert_restricted(mutated(name))


@pytest.mark.parametrize(
    "change",
    [
        lambda p: _c(p).update(readOnlyRootFilesystem=False),
        lambda p: p.update(automountServiceAccountToken=True),
        lambda p: p.pop("automountServiceAccountToken"),
        lambda p: p["containers"][0].update(volumeMounts=[]),
        lambda p: p["securityContext"].pop("runAsUser"),
    ],
    ids=["writable root", "token mounted", "token implicit", "no /tmp", "image's uid"],
)
def test_hardening_violations_fail(change: Callable[[dict[str, Any]], None]):
    pod = copy.deepcopy(good_pod())
    change(pod)
    assert_restricted(pod)  # still within the standard ...
    with pytest.raises(PodSecurityViolation):
        assert_hardened(pod, service_account_token=False)  # ... but not our hardening


# --- the apiserver agrees ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restricted_ns(kube: Any) -> Iterator[str]:
    ns = f"pss-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(ns)
    kube.kubectl(
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    deadline = time.monotonic() + 30
    while kube.kubectl("get", "sa", "default", "-n", ns, check=False).returncode != 0:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.3)
    yield ns
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _admitted(kube: Any, ns: str, spec: dict[str, Any]) -> tuple[bool, str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pss-probe"}, "spec": spec}
    proc = kube.kubectl("create", "-n", ns, "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    return proc.returncode == 0, proc.stderr


@pytest.mark.k8s
def test_the_apiserver_admits_the_good_pod(kube: Any, restricted_ns: str):
    ok, err = _admitted(kube, restricted_ns, good_pod())
    assert ok, err


@pytest.mark.k8s
@pytest.mark.parametrize("name", VIOLATIONS)
def test_the_apiserver_refuses_what_the_checker_refuses(kube: Any, restricted_ns: str, name: str):
    spec = mutated(name)
    assert restricted_violations(spec)
    ok, err = _admitted(kube, restricted_ns, spec)
    assert not ok and "violates PodSecurity" in err, f"{name}: the apiserver admitted it ({err})"
