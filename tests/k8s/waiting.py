"""Polling helper of the Kubernetes-tier tests (tests/k8s, tests/operator, tests/chart)."""

from __future__ import annotations

import time
from collections.abc import Callable
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
