"""The pure builders: names, the Job and the spec ConfigMap, field by field."""

from __future__ import annotations

import json
import re

import pytest

from ccr.core import constants
from ccr.core.model import JobInput, TaskSpec
from ccr.operator import builders
from ccr.operator.config import OperatorConfig

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TASK = {"metadata": {"name": "fix-the-bug", "namespace": "ns1", "uid": "0000-1111"}}


@pytest.mark.parametrize(
    "name",
    ["a", "fix-the-bug", "x" * 253, "a.b.c", "a" * 60 + ".b", "-".join(["ab"] * 80), "9.9.9", "a--b"],
)
def test_job_name_is_a_valid_label_and_deterministic(name: str) -> None:
    job = builders.job_name_for(name)
    assert LABEL.match(job), job
    assert len(job) <= 52
    assert job == builders.job_name_for(name)


def test_job_names_are_unique_when_readable_parts_collide() -> None:
    names = ["a.b", "a-b", "A-b", "x" * 100, "x" * 101]
    assert len({builders.job_name_for(n) for n in names}) == len(names)
    assert builders.job_name_for("fix-the-bug").startswith("ccr-fix-the-bug-")


def test_spec_configmap_carries_the_task_as_a_file() -> None:
    job = JobInput(id="fix-the-bug", spec=TaskSpec(prompt="do it", repo="o/r"), branch="claude/first")
    cm = builders.build_spec_configmap(TASK, job)
    assert cm["metadata"]["name"] == builders.job_name_for("fix-the-bug") + "-0000-111"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "0000-1111"
    assert cm["immutable"] is True
    payload = json.loads(cm["data"]["spec.json"])
    assert payload == {"id": "fix-the-bug", "spec": job.spec.dump(), "branch": "claude/first"}


def test_job_spec() -> None:
    settings = OperatorConfig(
        job_image="img:1", claude_secret="cs", github_secret="gs", cancel_grace_seconds=20, job_cpu_limit="3"
    )
    task = JobInput(id="fix-the-bug", spec=TaskSpec(prompt="secret plan", timeout_seconds=600))
    job = builders.build_job(TASK, task, settings, {"a/b": "c"})
    meta = job["metadata"]
    assert meta["name"] == builders.job_name_for("fix-the-bug")
    assert meta["namespace"] == "ns1"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ccr.dev/v1alpha1",
            "kind": "ClaudeTask",
            "name": "fix-the-bug",
            "uid": "0000-1111",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600 + 20 + builders.DEADLINE_MARGIN_SECONDS
    assert "ttlSecondsAfterFinished" not in spec
    tmpl = spec["template"]
    assert tmpl["metadata"]["labels"][constants.TASK_UID_LABEL] == "0000-1111"
    assert tmpl["metadata"]["annotations"]["a/b"] == "c"
    pod = tmpl["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] > 20
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["image"] == "img:1"
    assert c["args"] == ["--spec", "/etc/ccr/task/spec.json"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    sc = c["securityContext"]
    assert sc["runAsUser"] == 10001 and sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["limits"]["cpu"] == "3"
    env = {e["name"]: e for e in c["env"]}
    assert env["GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "gs",
        "key": "GITHUB_TOKEN",
        "optional": True,
    }
    assert env["CLAUDE_CODE_OAUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "cs"
    assert env["HOME"]["value"] == "/home/ccr" and env["CCR_WORKDIR"]["value"] == "/workspace"
    assert env["CCR_CANCEL_GRACE_SECONDS"]["value"] == "20"
    assert "secret plan" not in json.dumps(job)  # the prompt travels only in the ConfigMap
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts == {
        "/etc/ccr/task": "task",
        "/etc/ccr/claude": "claude",
        "/home/ccr": "home",
        "/workspace": "workspace",
        "/tmp": "tmp",
    }
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["claude"]["secret"]["optional"] is True
    assert vols["task"]["configMap"]["name"] == builders.spec_configmap_name_for("fix-the-bug", "0000-1111")
    assert all("emptyDir" in vols[n] for n in ("home", "workspace", "tmp"))
