"""The operator's configuration: ``ccr.core.settings.OperatorSettings`` plus the knobs only the operator
loop itself needs. Every field is an environment variable ``CCR_<NAME>`` the Helm chart sets."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from ccr.core.settings import OperatorSettings

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class OperatorConfig(OperatorSettings):
    resync_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Every unfinished task is re-checked this often (the safety net for missed events).",
    )
    archive_wait_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        description="A finished Job whose transcript nobody archived gets its TTL after this long anyway.",
    )
    job_pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description='Annotations for every job pod, as JSON (e.g. {"sidecar.istio.io/inject": "false"}).',
    )
    pod_annotation_prefixes: str = Field(
        default="",
        description="Comma-separated annotation prefixes copied from a ClaudeTask to its job pod (e.g. for "
        "sidecar injection); empty: none.",
    )
    liveness_port: int = Field(default=8080, ge=0, le=65535, description="/healthz port; 0 disables it.")

    def pod_annotations(self, task_annotations: dict[str, str]) -> dict[str, str]:
        """The job pod's annotations: the configured ones plus the task's under the allowed prefixes."""
        prefixes = tuple(p.strip() for p in self.pod_annotation_prefixes.split(",") if p.strip())
        passed = {k: v for k, v in task_annotations.items() if k.startswith(prefixes)} if prefixes else {}
        return {**self.job_pod_annotations, **passed}

    def watched_namespaces(self) -> list[str]:
        """CCR_NAMESPACES split, or the operator's own namespace (POD_NAMESPACE or the pod's SA file)."""
        names = [n.strip() for n in self.namespaces.split(",") if n.strip()]
        if names:
            return names
        own = os.environ.get("POD_NAMESPACE", "").strip()
        if not own and SA_NAMESPACE_FILE.exists():
            own = SA_NAMESPACE_FILE.read_text().strip()
        return [own or "default"]
