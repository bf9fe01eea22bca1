"""The restricted Pod Security Standard, asserted field by field on a pod spec (a dict, camelCase).

Reusable wherever a pod spec is built: the chart's Deployments (tests/chart) and the Job the operator
builds (``assert_restricted(build_job(...)["spec"]["template"]["spec"])``).

``assert_restricted`` checks exactly the controls of the ``restricted`` profile (which includes
``baseline``), as the apiserver's PodSecurity admission evaluates them for Kubernetes v1.25+:
https://kubernetes.io/docs/concepts/security/pod-security-standards/
``assert_hardened`` adds this project's own rules on top: read-only root filesystem with a writable
emptyDir /tmp, and an explicit decision about the ServiceAccount token.

Every violation is collected and reported at once, each with the field path that breaks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# restricted: "Volume Types" — only these (besides inline types that carry no host access).
ALLOWED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# restricted: capabilities may add only NET_BIND_SERVICE.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# baseline: "Sysctls" — the safe set.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
# baseline: "SELinux" — allowed types; user and role must not be set.
ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# baseline: "AppArmor"; restricted: "Seccomp".
ALLOWED_PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


class PodSecurityViolation(AssertionError):
    """One or more controls of the standard are violated; the message lists each with its field path."""


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            yield f"spec.{field}[{i}]({c.get('name', '?')})", c


def restricted_violations(pod_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """Every violation of the restricted profile (baseline included), as 'path: what' strings."""
    errors: list[str] = []
    spec = pod_spec
    psc = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    if not spec.get("containers"):
        errors.append("spec.containers: a pod spec without containers is not a pod spec")

    # --- baseline -------------------------------------------------------------------------------
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field) is True:
            errors.append(f"spec.{field}: host namespaces are forbidden")
    if (psc.get("windowsOptions") or {}).get("hostProcess") is True:
        errors.append("spec.securityContext.windowsOptions.hostProcess: forbidden")
    for i, vol in enumerate(spec.get("volumes") or []):
        types = [k for k in vol if k != "name"]
        if "hostPath" in types:
            errors.append(f"spec.volumes[{i}]({vol.get('name')}): hostPath volumes are forbidden")
        bad = [t for t in types if t not in ALLOWED_VOLUME_TYPES]
        if bad:
            errors.append(f"spec.volumes[{i}]({vol.get('name')}): volume type {bad} is not allowed (restricted)")
    for i, sysctl in enumerate(psc.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            errors.append(f"spec.securityContext.sysctls[{i}]: {sysctl.get('name')} is not a safe sysctl")

    def check_selinux(path: str, opts: dict[str, Any] | None) -> None:
        if not opts:
            return
        if opts.get("type", "") not in ALLOWED_SELINUX_TYPES:
            errors.append(f"{path}.seLinuxOptions.type: {opts.get('type')} is not allowed")
        for key in ("user", "role"):
            if opts.get(key):
                errors.append(f"{path}.seLinuxOptions.{key}: must not be set")

    def check_profile(path: str, profile: dict[str, Any] | None, what: str) -> None:
        if profile and profile.get("type") not in ALLOWED_PROFILE_TYPES:
            errors.append(f"{path}.{what}.type: {profile.get('type')} (want RuntimeDefault or Localhost)")

    check_selinux("spec.securityContext", psc.get("seLinuxOptions"))
    check_profile("spec.securityContext", psc.get("appArmorProfile"), "appArmorProfile")
    for key, value in (annotations or {}).items():
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            errors.append(f"metadata.annotations[{key}]: AppArmor profile {value} is not allowed")

    # --- restricted: pod-level facts some container controls may rely on -------------------------
    if psc.get("runAsUser") == 0:
        errors.append("spec.securityContext.runAsUser: 0 (root) is forbidden")
    if psc.get("runAsNonRoot") is False:
        errors.append("spec.securityContext.runAsNonRoot: false is forbidden")
    pod_nonroot = psc.get("runAsNonRoot") is True
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ALLOWED_PROFILE_TYPES:
        errors.append(f"spec.securityContext.seccompProfile.type: {pod_seccomp} (want RuntimeDefault or Localhost)")

    for path, c in containers:
        sc = c.get("securityContext") or {}
        # baseline
        if sc.get("privileged") is True:
            errors.append(f"{path}.securityContext.privileged: true is forbidden")
        if (sc.get("windowsOptions") or {}).get("hostProcess") is True:
            errors.append(f"{path}.securityContext.windowsOptions.hostProcess: forbidden")
        if sc.get("procMount") not in (None, "Default"):
            errors.append(f"{path}.securityContext.procMount: {sc.get('procMount')} (want Default)")
        check_selinux(f"{path}.securityContext", sc.get("seLinuxOptions"))
        check_profile(f"{path}.securityContext", sc.get("appArmorProfile"), "appArmorProfile")
        for j, port in enumerate(c.get("ports") or []):
            if port.get("hostPort"):
                errors.append(f"{path}.ports[{j}].hostPort: {port['hostPort']} (host ports are forbidden)")
        # restricted
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{path}.securityContext.allowPrivilegeEscalation: must be set to false")
        if sc.get("runAsNonRoot") is False or not (pod_nonroot or sc.get("runAsNonRoot") is True):
            errors.append(f"{path}.securityContext.runAsNonRoot: must be true (here or in the pod's securityContext)")
        if sc.get("runAsUser") == 0:
            errors.append(f"{path}.securityContext.runAsUser: 0 (root) is forbidden")
        c_seccomp = (sc.get("seccompProfile") or {}).get("type")
        if c_seccomp is not None and c_seccomp not in ALLOWED_PROFILE_TYPES:
            errors.append(f"{path}.securityContext.seccompProfile.type: {c_seccomp} (want RuntimeDefault or Localhost)")
        if c_seccomp is None and pod_seccomp is None:
            errors.append(f"{path}.securityContext.seccompProfile: must be set (here or in the pod's securityContext)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            errors.append(f"{path}.securityContext.capabilities.drop: must contain ALL")
        added = set(caps.get("add") or []) - ALLOWED_ADDED_CAPABILITIES
        if added:
            errors.append(f"{path}.securityContext.capabilities.add: {sorted(added)} (only NET_BIND_SERVICE)")
    return errors


def assert_restricted(pod_spec: dict[str, Any], annotations: dict[str, str] | None = None) -> None:
    """Fail unless the pod spec meets the restricted Pod Security Standard (baseline included)."""
    errors = restricted_violations(pod_spec, annotations)
    if errors:
        raise PodSecurityViolation("not restricted:\n  " + "\n  ".join(errors))


def hardening_violations(pod_spec: dict[str, Any], *, service_account_token: bool) -> list[str]:
    """This project's rules beyond the standard (see the module docstring)."""
    errors: list[str] = []
    if pod_spec.get("automountServiceAccountToken") is not service_account_token:
        errors.append(
            f"spec.automountServiceAccountToken: {pod_spec.get('automountServiceAccountToken')!r}, "
            f"want an explicit {service_account_token}"
        )
    psc = pod_spec.get("securityContext") or {}
    for path, c in _containers(pod_spec):
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{path}.securityContext.readOnlyRootFilesystem: must be true")
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(uid, int) or uid < 1000:
            errors.append(f"{path}: runAsUser {uid!r}; want an explicit non-system uid (the images use 10001)")
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    for path, c in _containers(pod_spec):
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
        tmp = mounts.get("/tmp")
        if tmp is None or "emptyDir" not in volumes.get(tmp["name"], {}):
            errors.append(f"{path}.volumeMounts: /tmp must be a writable emptyDir (the root filesystem is read-only)")
    return errors


def assert_hardened(
    pod_spec: dict[str, Any], *, service_account_token: bool, annotations: dict[str, str] | None = None
) -> None:
    """assert_restricted, plus read-only root filesystem, emptyDir /tmp and an explicit token decision."""
    errors = restricted_violations(pod_spec, annotations) + hardening_violations(
        pod_spec, service_account_token=service_account_token
    )
    if errors:
        raise PodSecurityViolation("not hardened:\n  " + "\n  ".join(errors))
