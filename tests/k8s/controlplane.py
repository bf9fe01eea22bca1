"""A real Kubernetes control plane as local processes, for the k8s test tier (issue 4).

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (standing in for the kubelets, with
one fake Node) are started from binaries built by ``scripts/k8s-test-bin.sh``.  Everything lives in a fresh
temporary directory on free ports, so two runs on one machine never collide, and everything is stopped by
process group at the end.

Use from pytest through the session fixture ``kube`` (see ``tests/k8s/conftest.py``), or directly::

    with ControlPlane.start() as cp:
        print(cp.kubeconfig, cp.server)

If ``CCR_TEST_KUBECONFIG`` (or ``KUBECONFIG`` together with ``CCR_USE_EXISTING_CLUSTER=1``) is set, the
fixture uses that cluster instead (``ExistingCluster``); the pod-behaviour annotations and log files of
kwok then do not apply (``cluster.simulated`` is False) and pods run their real containers.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as _dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MANIFESTS = HERE / "manifests"
BUILD_SCRIPT = REPO / "scripts" / "k8s-test-bin.sh"

K8S_VERSION = os.environ.get("K8S_VERSION", "v1.34.4")
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

SERVICE_CIDR = "10.96.0.0/12"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
NODE_NAME = "kwok-node-0"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

# Pod-behaviour annotations understood by manifests/kwok-stages.yaml (documented in README.md).
ANN_START_DELAY = "ccr-test/start-delay"
ANN_RUN_DURATION = "ccr-test/run-duration"
ANN_EXIT_CODE = "ccr-test/exit-code"
ANN_TERMINATION_MESSAGE = "ccr-test/termination-message"
ANN_REASON = "ccr-test/reason"
ANN_WAITING_REASON = "ccr-test/waiting-reason"
ANN_WAITING_MESSAGE = "ccr-test/waiting-message"


class ControlPlaneError(RuntimeError):
    pass


class BinariesMissing(ControlPlaneError):
    pass


# --------------------------------------------------------------------------------------------------------
# binaries


def default_cache_dir() -> Path:
    root = os.environ.get("CCR_K8S_CACHE") or str(Path.home() / ".cache" / "ccr" / "k8s")
    return Path(root) / K8S_VERSION


def find_bin_dir() -> Path:
    """The directory holding all REQUIRED_BINARIES, or BinariesMissing with a helpful message."""
    tried: list[str] = []
    for var in ("CCR_K8S_BIN_DIR", "KUBEBUILDER_ASSETS"):
        value = os.environ.get(var)
        if value:
            if all(os.access(Path(value) / b, os.X_OK) for b in REQUIRED_BINARIES):
                return Path(value)
            tried.append(f"${var}={value}")
    cache = default_cache_dir()
    if all(os.access(cache / b, os.X_OK) for b in REQUIRED_BINARIES):
        return cache
    tried.append(str(cache))
    raise BinariesMissing(
        f"Kubernetes test binaries ({', '.join(REQUIRED_BINARIES)}) not found in {', '.join(tried)}; "
        f"build them with `bash scripts/k8s-test-bin.sh` (cold build takes a while) or point "
        f"CCR_K8S_BIN_DIR at a directory holding them"
    )


def kubectl_binary(bin_dir: Path | None = None) -> str:
    if bin_dir is not None and os.access(bin_dir / "kubectl", os.X_OK):
        return str(bin_dir / "kubectl")
    with contextlib.suppress(BinariesMissing):
        found = find_bin_dir() / "kubectl"
        if os.access(found, os.X_OK):
            return str(found)
    path = shutil.which("kubectl")
    if path is None:
        raise BinariesMissing("kubectl not found (build it with scripts/k8s-test-bin.sh)")
    return path


# --------------------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no leftovers even if pytest is SIGKILLed


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def cri_log_line(text: str, stream: str = "stdout", when: _dt.datetime | None = None) -> str:
    """One line of a container log file in the CRI format kwok (and the kubelet) read."""
    when = when or _dt.datetime.now(_dt.UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return f"{stamp} {stream} F {text}\n"


def append_log(path: str | os.PathLike[str], *lines: str, stream: str = "stdout") -> None:
    """Append lines (without newline) to a CRI log file that a Logs/ClusterLogs object points at."""
    with open(path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(cri_log_line(line, stream))
        fh.flush()


# --------------------------------------------------------------------------------------------------------
# PKI


@dataclass
class PKI:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    @classmethod
    def generate(cls, directory: Path) -> PKI:
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=ccr-test-ca",
            cwd=directory,
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=directory)
        _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
        sans_apiserver = ",".join(
            [
                "IP:127.0.0.1",
                f"IP:{SERVICE_IP}",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        )
        certs = {
            # name: (subject, extendedKeyUsage, subjectAltName)
            "apiserver": ("/CN=kube-apiserver", "serverAuth", sans_apiserver),
            "kwok-serving": ("/CN=kwok-node-0", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
            "admin": ("/O=system:masters/CN=ccr-test-admin", "clientAuth", None),
            "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth", None),
            "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
            "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
            "kwok": ("/O=system:masters/CN=kwok-controller", "clientAuth", None),
        }

        def issue(name: str, subject: str, usage: str, sans: str | None) -> None:
            _openssl(
                "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory
            )
            ext = [
                f"extendedKeyUsage={usage}",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "basicConstraints=CA:FALSE",
            ]
            if sans:
                ext.append(f"subjectAltName={sans}")
            (directory / f"{name}.ext").write_text("\n".join(ext) + "\n")
            _openssl(
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                str(int.from_bytes(os.urandom(8), "big")),
                "-out",
                f"{name}.crt",
                "-days",
                "365",
                "-extfile",
                f"{name}.ext",
                cwd=directory,
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            for fut in [pool.submit(issue, name, *spec) for name, spec in certs.items()]:
                fut.result()
        return pki


def write_kubeconfig(
    path: Path,
    server: str,
    ca_file: str,
    *,
    user: str,
    cert: str | None = None,
    key: str | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> Path:
    auth: dict[str, Any] = {}
    if cert and key:
        auth = {"client-certificate": cert, "client-key": key}
    if token:
        auth = {"token": token}
    ca_data = base64.b64encode(Path(ca_file).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ccr-test", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "ccr-test", "context": {"cluster": "ccr-test", "user": user, "namespace": namespace}}],
        "current-context": "ccr-test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------------------------------------
# processes


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        logf = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                env=env,
                close_fds=True,
            )
        finally:
            logf.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # the group may still hold children (none of these components fork, but be thorough)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def rss_kib(self) -> int:
        if not self.alive():
            return 0
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return 0
        return 0


# --------------------------------------------------------------------------------------------------------
# the cluster


class _ClusterHelpers:
    """What both a started ControlPlane and an ExistingCluster offer to tests."""

    kubeconfig: str
    server: str
    simulated: bool  # True when pods are kwok fakes (annotations and log files apply)

    def api_client(self, kubeconfig: str | None = None) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig or self.kubeconfig, client_configuration=cfg)
        return client.ApiClient(cfg)

    def kubectl(
        self,
        *args: str,
        kubeconfig: str | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        argv = [kubectl_binary(getattr(self, "bin_dir", None)), "--kubeconfig", kubeconfig or self.kubeconfig, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply(self, manifest: str | dict[str, Any] | Sequence[dict[str, Any]], namespace: str | None = None) -> None:
        if not isinstance(manifest, str):
            docs = [manifest] if isinstance(manifest, dict) else list(manifest)
            manifest = yaml.safe_dump_all(docs)
        args = ["apply", "--server-side", "--force-conflicts", "-f", "-"]
        if namespace:
            args += ["-n", namespace]
        self.kubectl(*args, input=manifest)

    def create_namespace(self, name: str) -> str:
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            try:
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
        return name

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
        audiences: list[str] | None = None,
    ) -> str:
        """A bound token for ServiceAccount namespace/name through the TokenRequest API."""
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            if create:
                try:
                    core.create_namespaced_service_account(
                        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                    )
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
            spec = client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=expiration_seconds)
            tr = core.create_namespaced_service_account_token(
                name, namespace, client.AuthenticationV1TokenRequest(spec=spec)
            )
            return str(tr.status.token)

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> str:
        """A kubeconfig authenticating as system:serviceaccount:<namespace>:<name> (TokenRequest token)."""
        token = self.service_account_token(namespace, name, **kwargs)
        src = yaml.safe_load(Path(self.kubeconfig).read_text())
        ctx_name = src.get("current-context") or src["contexts"][0]["name"]
        ctx = next(c for c in src["contexts"] if c["name"] == ctx_name)["context"]
        cluster = next(c for c in src["clusters"] if c["name"] == ctx["cluster"])
        out = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": f"{namespace}-{name}", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "sa",
                    "context": {"cluster": cluster["name"], "user": f"{namespace}-{name}", "namespace": namespace},
                }
            ],
            "current-context": "sa",
        }
        if path is None:
            fd, tmp = tempfile.mkstemp(
                prefix=f"kubeconfig-{namespace}-{name}-", suffix=".yaml", dir=getattr(self, "dir", None)
            )
            os.close(fd)
            path = tmp
        Path(path).write_text(yaml.safe_dump(out, sort_keys=False))
        Path(path).chmod(0o600)
        return str(path)

    # --- kwok pod behaviour for pods made by other code (an operator's Jobs) -------------------------
    def pod_behaviour(
        self,
        namespace: str,
        annotations: dict[str, str],
        *,
        match_labels: dict[str, str] | None = None,
        name: str | None = None,
        timeout: float = 30,
    ) -> str:
        """Give every pod created from now on in `namespace` these (ccr-test/...) annotations.

        For pods the test does not write itself (the operator's Job pods): a CEL MutatingAdmissionPolicy
        (beta in 1.34, enabled on the test control plane) bound to the namespace, optionally only to pods
        with `match_labels`. Returns the policy name (delete with `clear_pod_behaviour`). Waits until
        the apiserver applies it (a dry-run pod shows the annotations). Later calls with the same `name`
        replace the annotations; the default name is per namespace.
        """
        if not self.simulated:
            raise ControlPlaneError("pod behaviour annotations are a kwok feature; this cluster runs real pods")
        name = name or f"ccr-test-pods-{namespace}"
        cel_map = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in annotations.items()) + "}"
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1beta1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "failurePolicy": "Fail",
                "reinvocationPolicy": "IfNeeded",
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {
                            "expression": f"Object{{metadata: Object.metadata{{annotations: {cel_map}}}}}"
                        },
                    }
                ],
            },
        }
        match: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        if match_labels:
            match["objectSelector"] = {"matchLabels": match_labels}
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1beta1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "matchResources": match},
        }
        self.apply([policy, binding])
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "ccr-probe-", "namespace": namespace, "labels": match_labels or {}},
            "spec": {"containers": [{"name": "probe", "image": "probe"}]},
        }
        deadline = time.monotonic() + timeout
        while True:
            out = self.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(probe))
            got = json.loads(out.stdout)["metadata"].get("annotations") or {}
            if all(got.get(k) == v for k, v in annotations.items()):
                return name
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"MutatingAdmissionPolicy {name} not effective after {timeout}s: {got}")
            time.sleep(0.2)

    def clear_pod_behaviour(self, name: str) -> None:
        self.kubectl("delete", "mutatingadmissionpolicybinding,mutatingadmissionpolicy", name, "--ignore-not-found")

    # --- kwok pod logs -------------------------------------------------------------------------------
    def pod_logs_from_file(
        self,
        namespace: str,
        path: str | os.PathLike[str],
        *,
        pod: str | None = None,
        containers: list[str] | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Make the pod log API serve (and follow) `path` for pods in `namespace`.

        With `pod`, a namespaced kwok `Logs` object named after that pod is created (it wins over any
        ClusterLogs); without, a `ClusterLogs` matching every pod of the namespace. The file must hold CRI
        log lines: write it with `append_log()`. Only for the simulated control plane.
        """
        if not self.simulated:
            raise ControlPlaneError("pod log files are a kwok feature; this cluster runs real containers")
        Path(path).touch()
        entry: dict[str, Any] = {"logsFile": str(path), "follow": True}
        if containers:
            entry["containers"] = containers
        if pod:
            obj: dict[str, Any] = {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Logs",
                "metadata": {"name": pod, "namespace": namespace},
                "spec": {"logs": [entry]},
            }
        else:
            obj = {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": name or f"ns-{namespace}"},
                "spec": {"selector": {"matchNamespaces": [namespace]}, "logs": [entry]},
            }
        self.apply(obj)
        return obj


@dataclass
class ControlPlane(_ClusterHelpers):
    """Local processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok."""

    dir: Path
    bin_dir: Path
    components: list[Component] = field(default_factory=list)
    kubeconfig: str = ""
    server: str = ""
    simulated: bool = True
    node_name: str = NODE_NAME
    ports: dict[str, int] = field(default_factory=dict)
    startup_seconds: float = 0.0
    keep_dir: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # seconds since start when each step was done
    _t0: float = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def start(cls, bin_dir: Path | None = None, workdir: Path | None = None, timeout: float = 90) -> ControlPlane:
        """Start a control plane; retried (fresh ports) if a port picked as free was taken meanwhile."""
        bin_dir = bin_dir or find_bin_dir()
        for attempt in range(3):
            root = Path(tempfile.mkdtemp(prefix="ccr-k8s-", dir=workdir))
            cp = cls(dir=root, bin_dir=bin_dir, keep_dir=os.environ.get("CCR_K8S_KEEP") == "1")
            try:
                cp._start(timeout)
            except BaseException as exc:
                logs = cp.describe_failure()
                cp.stop()
                if not isinstance(exc, ControlPlaneError):
                    raise
                if "address already in use" in logs and attempt < 2:
                    continue
                raise ControlPlaneError(f"{exc}\n{logs}") from None
            cp.startup_seconds = round(time.monotonic() - cp._t0, 2)
            return cp
        raise AssertionError("unreachable")

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self._t0, 2)

    def _start(self, timeout: float) -> None:
        self._t0 = time.monotonic()
        deadline = self._t0 + timeout
        pki = PKI.generate(self.dir / "pki")
        self._mark("pki")
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        (self.dir / "logs").mkdir()
        (self.dir / "pod-logs").mkdir()

        # kubeconfigs
        kc = self.dir / "kubeconfig"
        kc.mkdir()
        ca = pki.path("ca.crt")
        self.kubeconfig = str(
            write_kubeconfig(
                kc / "admin.yaml", self.server, ca, user="admin", cert=pki.path("admin.crt"), key=pki.path("admin.key")
            )
        )
        kubeconfigs = {
            comp: str(
                write_kubeconfig(
                    kc / f"{comp}.yaml",
                    self.server,
                    ca,
                    user=comp,
                    cert=pki.path(f"{comp}.crt"),
                    key=pki.path(f"{comp}.key"),
                )
            )
            for comp in ("controller-manager", "scheduler", "kwok")
        }

        # etcd
        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                self._bin("etcd"),
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
        )
        self._wait("etcd", deadline, lambda: _http_ok(f"{etcd_url}/health", want=b'"health":"true"'))

        # kube-apiserver
        self._spawn(
            "kube-apiserver",
            [
                self._bin("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki.path('apiserver.crt')}",
                f"--tls-private-key-file={pki.path('apiserver.key')}",
                f"--client-ca-file={ca}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction,ServiceAccount",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.path('sa.pub')}",
                f"--service-account-signing-key-file={pki.path('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--kubelet-client-certificate={pki.path('apiserver-kubelet-client.crt')}",
                f"--kubelet-client-key={pki.path('apiserver-kubelet-client.key')}",
                f"--kubelet-certificate-authority={ca}",
                "--kubelet-preferred-address-types=InternalIP",
                "--endpoint-reconciler-type=none",  # a loopback advertise address is not a valid endpoint
                # lets tests script the pods other code creates (pod_behaviour): CEL mutating admission policies
                "--feature-gates=MutatingAdmissionPolicy=true",
                "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        ctx = ssl.create_default_context(cafile=ca)
        self._wait("kube-apiserver", deadline, lambda: _http_ok(f"{self.server}/readyz", ctx=ctx))

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        self._spawn(
            "kube-controller-manager",
            [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kubeconfigs['controller-manager']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller-manager']}",
                f"--service-account-private-key-file={pki.path('sa.key')}",
                f"--root-ca-file={ca}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={ca}",
                f"--cluster-signing-key-file={pki.path('ca.key')}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cluster-cidr={POD_CIDR}",
                "--controllers=*",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
                # quick GC/TTL reaction for tests
                "--concurrent-gc-syncs=10",
                "--concurrent-ttl-after-finished-syncs=5",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                self._bin("kube-scheduler"),
                f"--kubeconfig={kubeconfigs['scheduler']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        # the kwok CRDs for pod logs must exist before kwok starts watching them
        self.kubectl(
            "apply", "-f", str(MANIFESTS / "kwok-crd-logs.yaml"), "-f", str(MANIFESTS / "kwok-crd-clusterlogs.yaml")
        )
        self._mark("kwok CRDs")

        self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={kubeconfigs['kwok']}",
                f"--config={MANIFESTS / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--node-name={NODE_NAME}",
                f"--node-port={self.ports['kwok']}",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                f"--tls-cert-file={pki.path('kwok-serving.crt')}",
                f"--tls-private-key-file={pki.path('kwok-serving.key')}",
                "--enable-crds=Logs,ClusterLogs",
                "--cidr=10.244.0.1/16",
            ],
            env={**os.environ, "HOME": str(self.dir)},
        )  # kwok would otherwise read ~/.kwok

        self.create_node()
        self._mark("node created")
        self._wait(
            "kube-controller-manager",
            deadline,
            lambda: _http_ok(f"https://127.0.0.1:{self.ports['controller-manager']}/healthz", ctx=insecure),
        )
        self._wait(
            "kube-scheduler",
            deadline,
            lambda: _http_ok(f"https://127.0.0.1:{self.ports['scheduler']}/healthz", ctx=insecure),
        )
        self._wait("kwok", deadline, lambda: _http_ok(f"https://127.0.0.1:{self.ports['kwok']}/healthz", ctx=insecure))
        self._wait("node Ready", deadline, self._node_ready)
        # ServiceAccount admission needs the namespace's "default" ServiceAccount before pods can be made
        self._wait("default ServiceAccount", deadline, self._default_sa_exists)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        comp = Component(name, argv, self.dir / "logs" / f"{name}.log")
        comp.start(env)
        self.components.append(comp)
        return comp

    def _wait(self, what: str, deadline: float, check: Any) -> None:
        while True:
            for comp in self.components:
                if not comp.alive():
                    raise ControlPlaneError(
                        f"{comp.name} exited while waiting for {what} "
                        f"(code {comp.proc.returncode if comp.proc else '?'})"
                    )
            try:
                if check():
                    self._mark(what)
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def create_node(self, name: str = NODE_NAME) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
        }
        self.kubectl("create", "-f", "-", input=json.dumps(node))

    def _node_ready(self) -> bool:
        out = self.kubectl("get", "node", self.node_name, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        node = json.loads(out.stdout)
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        endpoint = node.get("status", {}).get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port")
        return conds.get("Ready") == "True" and endpoint == self.ports["kwok"]

    def _default_sa_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def stop(self) -> None:
        for comp in reversed(self.components):
            comp.stop()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- diagnostics ---------------------------------------------------------------------------------
    def describe_failure(self) -> str:
        parts = [f"control plane directory: {self.dir}"]
        for comp in self.components:
            state = "running" if comp.alive() else f"exited {comp.proc.returncode if comp.proc else '?'}"
            parts.append(f"--- {comp.name} ({state}), last lines of {comp.log}:\n{comp.tail()}")
        return "\n".join(parts)

    def rss_kib(self) -> dict[str, int]:
        return {c.name: c.rss_kib() for c in self.components}

    def log_of(self, component: str) -> str:
        return (self.dir / "logs" / f"{component}.log").read_text(errors="replace")


@dataclass
class ExistingCluster(_ClusterHelpers):
    """A cluster a kubeconfig points at (kind, k3s, ...): pods run real containers."""

    kubeconfig: str
    server: str = ""
    simulated: bool = False
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ccr-k8s-existing-")))
    startup_seconds: float = 0.0

    def __post_init__(self) -> None:
        cfg = yaml.safe_load(Path(self.kubeconfig).read_text())
        ctx_name = cfg.get("current-context") or cfg["contexts"][0]["name"]
        ctx = next(c for c in cfg["contexts"] if c["name"] == ctx_name)["context"]
        self.server = next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"])["cluster"]["server"]

    def stop(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None, want: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            body = resp.read()
            return resp.status == 200 and (want is None or want in body)
    except (urllib.error.URLError, OSError):
        return False


def existing_kubeconfig() -> str | None:
    if os.environ.get("CCR_TEST_KUBECONFIG"):
        return os.environ["CCR_TEST_KUBECONFIG"]
    if os.environ.get("CCR_USE_EXISTING_CLUSTER") == "1":
        return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------------------------------------
# pytest integration: one cluster per pytest session, however many conftests import the fixture

_CONFIG_ATTR = "_ccr_k8s_cluster"


def session_cluster(config: Any) -> ControlPlane | ExistingCluster:
    """The session's cluster, started on first use and stopped when pytest ends (config cleanup)."""
    import pytest

    cached = getattr(config, _CONFIG_ATTR, None)
    if isinstance(cached, BaseException):
        raise cached
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    kubeconfig = existing_kubeconfig()
    cluster: ControlPlane | ExistingCluster
    if kubeconfig:
        cluster = ExistingCluster(kubeconfig=kubeconfig)
    else:
        try:
            bin_dir = find_bin_dir()
        except BinariesMissing as exc:
            if in_ci():
                err = ControlPlaneError(f"CI=true and {exc}")
                setattr(config, _CONFIG_ATTR, err)
                raise err from None
            pytest.skip(str(exc))
        try:
            cluster = ControlPlane.start(bin_dir)
        except BaseException as exc:
            setattr(config, _CONFIG_ATTR, exc)
            raise
    setattr(config, _CONFIG_ATTR, cluster)
    config.add_cleanup(cluster.stop)
    return cluster


def terminal_summary(terminalreporter: Any, config: Any) -> None:
    """One line for the pytest summary: start-up time, steps and memory of the session's control plane."""
    cluster = getattr(config, _CONFIG_ATTR, None)
    if isinstance(cluster, ControlPlane):
        rss = cluster.rss_kib()
        per = ", ".join(f"{k} {v // 1024}" for k, v in rss.items())
        terminalreporter.write_line(
            f"k8s control plane: started in {cluster.startup_seconds:.1f}s; "
            f"RSS {sum(rss.values()) // 1024} MiB ({per}); dir {cluster.dir}"
        )
    elif isinstance(cluster, ExistingCluster):
        terminalreporter.write_line(f"k8s: existing cluster {cluster.server} ({cluster.kubeconfig})")


def kube_fixture() -> Any:
    """Build the session fixture `kube`; import it into a conftest: `from controlplane import kube`."""
    import pytest

    @pytest.fixture(scope="session")
    def kube(request: Any) -> Iterator[ControlPlane | ExistingCluster]:
        yield session_cluster(request.config)

    return kube


kube = kube_fixture()


def _main() -> None:
    """python tests/k8s/controlplane.py: a control plane for manual use; Ctrl-C or SIGTERM stops it."""

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    cp = ControlPlane.start()
    try:
        rss = cp.rss_kib()
        print(f"up in {cp.startup_seconds:.1f}s {cp.timings}", flush=True)
        print(f"RSS {sum(rss.values()) // 1024} MiB: {rss}", flush=True)
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cp.stop()


if __name__ == "__main__":
    _main()
