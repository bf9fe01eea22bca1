"""Helpers of the Kubernetes-tier tests (tests/k8s, tests/operator, tests/chart)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
    """Call ``check`` until it returns something truthy (a 404 counts as "not yet"); return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except client.ApiException as exc:
            last = exc
            if exc.status != 404:
                raise
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def fresh_namespace(kube: Any, api: client.ApiClient, prefix: str) -> Iterator[str]:
    """A namespace of its own for one test, ready once its default ServiceAccount exists; removed after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)
    wait_for(
        "the default ServiceAccount",
        lambda: client.CoreV1Api(api).read_namespaced_service_account("default", name),
        timeout=30,
    )
    yield name
    client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
