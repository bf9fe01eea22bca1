"""Small pure pieces: the RBAC rule lists, the configuration, the store's record mapping."""

from __future__ import annotations

from ccr.core.model import Phase
from ccr.kube.store import record_of
from ccr.operator import rbac
from ccr.operator.config import OperatorConfig


def _verbs(rules: list[dict], group: str, resource: str) -> set[str]:
    return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}


def test_rules_are_minimal_and_never_touch_secrets() -> None:
    op, api = rbac.operator_rules(), rbac.api_rules()
    assert _verbs(op, "ccr.dev", "claudetasks") == {"get", "list", "watch"}  # status only through /status
    assert _verbs(op, "ccr.dev", "claudetasks/status") == {"get", "patch"}
    assert "create" in _verbs(op, "batch", "jobs")
    assert _verbs(api, "ccr.dev", "claudetasks") >= {"create", "patch", "watch"}
    for rules in (op, api):
        assert not any("secrets" in r["resources"] or "*" in r["verbs"] or "*" in r["resources"] for r in rules)


def test_config_namespaces_and_pod_annotations(monkeypatch) -> None:
    monkeypatch.setenv("CCR_NAMESPACES", " a, b ,")
    monkeypatch.setenv("CCR_POD_ANNOTATION_PREFIXES", "ccr-test/")
    monkeypatch.setenv("CCR_JOB_POD_ANNOTATIONS", '{"sidecar.istio.io/inject": "false"}')
    cfg = OperatorConfig()
    assert cfg.watched_namespaces() == ["a", "b"]
    assert cfg.pod_annotations({"ccr-test/exit-code": "1", "other": "x"}) == {
        "sidecar.istio.io/inject": "false",
        "ccr-test/exit-code": "1",
    }
    monkeypatch.delenv("CCR_NAMESPACES")
    monkeypatch.setenv("POD_NAMESPACE", "ccr-system")
    assert OperatorConfig().watched_namespaces() == ["ccr-system"]


def test_record_of_a_claudetask() -> None:
    obj = {
        "metadata": {"name": "abc", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 2},
        "spec": {"prompt": "hi", "repo": "o/r"},
        "status": {"phase": "Running", "podName": "p"},
    }
    rec = record_of(obj)
    assert rec.id == "abc" and rec.spec.repo == "o/r" and rec.status.phase == Phase.RUNNING
    assert rec.generation == 2
    broken = record_of({"metadata": {"name": "x"}, "spec": {"prompt": " "}, "status": {"phase": "Nope"}})
    assert broken.spec.prompt == " " and broken.status.phase == Phase.PENDING
