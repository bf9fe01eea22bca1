"""Operator benchmarks on the real control plane (tests/k8s): run ``python bench/bench_operator.py``.

1. Latency: tasks submitted one at a time; submit (create call) -> the Job seen by a watch. Target p50 < 250 ms.
2. Burst: 500 ClaudeTasks created as fast as 16 threads can; every one must have a Job or be Queued
   within 30 s. Run twice: with a limit of 1000 (500 Jobs to create) and with the default limit 2 (498
   Queued). Target: all within 30 s.
3. The operator's RSS (peak, VmHWM) after the bursts. Target < 200 MB.

The operator runs as a subprocess with exactly ``operator_rules()``, as in the tests.
Env: CCR_BENCH_TASKS (500), CCR_BENCH_LATENCY_SAMPLES (40), CCR_TEST_KUBECONFIG for an existing cluster.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "k8s"), str(ROOT / "src"), str(ROOT)]

from controlplane import ControlPlane, ExistingCluster, existing_kubeconfig  # noqa: E402
from kubernetes import client, watch  # noqa: E402
from tests.operator.conftest import OPERATOR_SA, OperatorProcess, grant, new_task, wait_for  # noqa: E402

from ccr.core.crd import build_crd  # noqa: E402
from ccr.core.model import GROUP, PLURAL, VERSION  # noqa: E402
from ccr.operator import builders, rbac  # noqa: E402

TASKS = int(os.environ.get("CCR_BENCH_TASKS", "500"))
SAMPLES = int(os.environ.get("CCR_BENCH_LATENCY_SAMPLES", "40"))
LONG_RUN = {"ccr-test/run-duration": "1h"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class JobWatch:
    """Client-side arrival time of each Job's ADDED event, by task name."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self._w = watch.Watch()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, args=(api, ns), daemon=True)
        self._thread.start()

    def _run(self, api: client.ApiClient, ns: str) -> None:
        while not self._stopped:
            try:
                for event in self._w.stream(client.BatchV1Api(api).list_namespaced_job, ns, timeout_seconds=600):
                    if event["type"] == "ADDED":
                        name = event["object"].metadata.annotations.get(builders.TASK_NAME_ANNOTATION, "")
                        with self.cond:
                            self.seen.setdefault(name, time.monotonic())
                            self.cond.notify_all()
            except Exception:  # a watch broken by the loaded apiserver: watch again (ADDED repeats; kept first)
                time.sleep(0.2)

    def wait(self, name: str, timeout: float = 10) -> float:
        with self.cond:
            self.cond.wait_for(lambda: name in self.seen, timeout)
            return self.seen[name]

    def stop(self) -> None:
        self._stopped = True
        self._w.stop()


def operator_for(cluster: Any, api: client.ApiClient, ns: str, workdir: Path, **env: str) -> OperatorProcess:
    kubeconfig = grant(cluster, api, ns, OPERATOR_SA, rbac.operator_rules())
    base = {k: v for k, v in os.environ.items() if not k.startswith("CCR_") and k != "KUBECONFIG"}
    base.update(
        {
            "KUBECONFIG": kubeconfig,
            "PYTHONPATH": str(ROOT / "src"),
            "CCR_NAMESPACES": ns,
            "CCR_POD_ANNOTATION_PREFIXES": "ccr-test/",
            "CCR_LIVENESS_PORT": "0",
            "CCR_JOB_IMAGE": "busybox:1.36",
            **env,
        }
    )
    return OperatorProcess(base, workdir / f"operator-{ns}.log").start()


def namespace(cluster: Any, api: client.ApiClient) -> str:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(name)
    wait_for("default SA", lambda: client.CoreV1Api(api).read_namespaced_service_account("default", name), 30)
    return name


def create(api: client.ApiClient, ns: str, name: str) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, new_task(name, annotations=LONG_RUN)
    )


def bench_latency(cluster: Any, api: client.ApiClient, workdir: Path) -> dict[str, float]:
    ns = namespace(cluster, api)
    op = operator_for(cluster, api, ns, workdir, CCR_MAX_CONCURRENT="1000")
    jobs = JobWatch(api, ns)
    try:
        create(api, ns, "warmup")
        jobs.wait("warmup", timeout=60)
        samples = []
        for i in range(SAMPLES):
            name = f"lat-{i}"
            t0 = time.monotonic()
            create(api, ns, name)
            samples.append((jobs.wait(name) - t0) * 1000)
            time.sleep(0.05)
        samples.sort()
        return {
            "p50_ms": statistics.median(samples),
            "p90_ms": samples[int(len(samples) * 0.9) - 1],
            "max_ms": samples[-1],
            "rss_mib": rss_kib(op.pid, "VmRSS") / 1024,
        }
    finally:
        jobs.stop()
        op.stop()


def bench_burst(cluster: Any, api: client.ApiClient, workdir: Path, limit: int) -> dict[str, float]:
    ns = namespace(cluster, api)
    op = operator_for(cluster, api, ns, workdir, CCR_MAX_CONCURRENT=str(limit))
    jobs = JobWatch(api, ns)
    custom = client.CustomObjectsApi(api)
    try:
        create(api, ns, "warmup")
        jobs.wait("warmup", timeout=60)
        names = [f"b-{i:03d}" for i in range(TASKS)]
        cpu0 = cpu_seconds(op.pid)
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: create(api, ns, n), names))
        submitted = time.monotonic() - t0

        def settled() -> bool:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
            ok = sum(
                1
                for t in items
                if t["metadata"]["name"] in jobs.seen or (t.get("status") or {}).get("phase") in ("Queued", "Running")
            )
            return ok >= TASKS + 1

        wait_for("every task to have a Job or be Queued", settled, timeout=120, interval=0.25)
        elapsed = time.monotonic() - t0
        with_job = sum(1 for n in names if n in jobs.seen)
        return {
            "submit_s": submitted,
            "all_settled_s": elapsed,
            "jobs": with_job,
            "queued": TASKS - with_job,
            "rss_peak_mib": rss_kib(op.pid) / 1024,
            "cpu_s": cpu_seconds(op.pid) - cpu0,
        }
    finally:
        jobs.stop()
        op.stop()
        client.CoreV1Api(api).delete_namespace(ns, propagation_policy="Background")


def main() -> None:
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"ccr-bench-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    existing = existing_kubeconfig()
    cluster: Any = ExistingCluster(kubeconfig=existing) if existing else ControlPlane.start()
    try:
        cluster.apply(build_crd())
        time.sleep(2)
        with cluster.api_client() as api:
            lat = bench_latency(cluster, api, workdir)
            print(
                f"submit -> Job created: p50 {lat['p50_ms']:.0f} ms, p90 {lat['p90_ms']:.0f} ms, "
                f"max {lat['max_ms']:.0f} ms over {SAMPLES} tasks (target p50 < 250 ms); "
                f"operator RSS {lat['rss_mib']:.0f} MiB",
                flush=True,
            )
            for limit in (1000, 2):
                r = bench_burst(cluster, api, workdir, limit)
                print(
                    f"burst of {TASKS}, limit {limit}: created in {r['submit_s']:.1f} s, all with a Job or "
                    f"Queued after {r['all_settled_s']:.1f} s (target 30 s): {r['jobs']} Jobs, "
                    f"{r['queued']} queued; operator peak RSS {r['rss_peak_mib']:.0f} MiB (target 200), "
                    f"operator CPU {r['cpu_s']:.1f} s; load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
