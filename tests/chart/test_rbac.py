"""Least privilege, asserted on what the chart renders for every values file:

- no `*` anywhere (verbs, resources, apiGroups, resourceNames, nonResourceURLs);
- no list/watch/get of Secrets (nor any other Secret right), no pods/exec, attach, portforward, proxy,
  no ServiceAccount tokens, no RBAC escalation, no impersonation;
- no cluster-wide right at all (the operator serves explicit namespaces; the API one namespace);
- the rules equal ccr.operator.rbac.operator_rules() / api_rules() (drift test);
- each Role's rules carry a comment saying why (checked on the template source).

The checker itself is tested on bad rules, so a broken checker cannot pass silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import CHART, CI_VALUES, NAMESPACE, of_kind, template

VALUES = [None, *CI_VALUES]
IDS = ["no-values", *[p.name.removesuffix("-values.yaml") for p in CI_VALUES]]

# Subresources that hand out a shell, a connection or a credential.
DANGEROUS_RESOURCES = frozenset(
    {
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "pods/proxy",
        "nodes/proxy",
        "services/proxy",
        "serviceaccounts/token",
        "certificatesigningrequests/approval",
        "tokenreviews",
    }
)
DANGEROUS_VERBS = frozenset({"escalate", "bind", "impersonate", "approve", "sign", "*"})
RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings"})

Grant = tuple[str, str, str, str]  # apiGroup, resource, verb, resourceName ("" = any)


def expand(rules: list[dict[str, Any]]) -> set[Grant]:
    """Rules as a set of single grants, so two spellings of the same rights compare equal."""
    out: set[Grant] = set()
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    for n in r.get("resourceNames") or [""]:
                        out.add((g, res, v, n))
    return out


def violations(rules: list[dict[str, Any]]) -> list[str]:
    """Every least-privilege violation in a list of PolicyRules."""
    errors = []
    for i, r in enumerate(rules):
        where = f"rule[{i}] {r}"
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            if any("*" in x for x in r.get(field) or []):
                errors.append(f"{where}: wildcard in {field}")
        if r.get("nonResourceURLs"):
            errors.append(f"{where}: nonResourceURLs are cluster-level; no component needs them")
        for _g, res, verb, name in expand([r]):
            is_secret = res == "secrets" or res.startswith("secrets/")
            if is_secret and (verb in ("list", "watch") or not name):
                errors.append(f"{where}: {verb} on secrets (the components only name Secrets, never read them)")
            if res in DANGEROUS_RESOURCES:
                errors.append(f"{where}: {res} is a way into pods or credentials")
            if verb in DANGEROUS_VERBS:
                errors.append(f"{where}: verb {verb} escalates privileges")
            if res in RBAC_RESOURCES and verb not in ("get", "list", "watch"):
                errors.append(f"{where}: writes RBAC objects")
    return errors


def rbac_objects(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {k: of_kind(objs, k) for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


# --- the checker fails on what it must fail on -------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"], "resourceNames": ["ccr-github"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ],
)
def test_the_checker_rejects(rule: dict[str, Any]):
    assert violations([rule])


def test_the_checker_accepts_a_named_secret_get():
    assert not violations([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["x"]}])


# --- the chart ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_rendered_rbac_is_least_privilege(values: Path | None):
    objs = template(values)
    rbac = rbac_objects(objs)
    # No cluster-wide right for any component, in any configuration.
    assert rbac["ClusterRole"] == [] and rbac["ClusterRoleBinding"] == []
    assert rbac["Role"], "no Role rendered"
    for role in rbac["Role"]:
        errors = violations(role["rules"])
        assert not errors, f"{role['metadata']['namespace']}/{role['metadata']['name']}:\n" + "\n".join(errors)


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_rules_equal_the_code(values: Path | None):
    """Drift test: the chart grants exactly what ccr.operator.rbac says each component needs."""
    from ccr.operator import rbac as rbac_mod

    objs = template(values)
    for role in of_kind(objs, "Role"):
        want = {"operator": rbac_mod.operator_rules, "api": rbac_mod.api_rules}[component(role)]()
        assert expand(role["rules"]) == expand(want), role["metadata"]
        # Same grouping too, so the chart's comments line up with the code's.
        assert role["rules"] == want, role["metadata"]


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_bindings_give_each_role_to_its_own_service_account_only(values: Path | None):
    objs = template(values)
    sas = {s["metadata"]["name"]: component(s) for s in of_kind(objs, "ServiceAccount")}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): component(r) for r in of_kind(objs, "Role")}
    bindings = of_kind(objs, "RoleBinding")
    assert len(bindings) == len(roles)
    for b in bindings:
        key = (b["metadata"]["namespace"], b["roleRef"]["name"])
        assert b["roleRef"]["kind"] == "Role" and key in roles, b["metadata"]
        assert len(b["subjects"]) == 1
        subject = b["subjects"][0]
        assert subject["kind"] == "ServiceAccount"
        assert subject["namespace"] == NAMESPACE  # the release namespace, where the components run
        if subject["name"] in sas:
            assert sas[subject["name"]] == roles[key] == component(b)
    # Task pods' ServiceAccount is bound to nothing.
    task_sas = {n for n, c in sas.items() if c == "task"}
    assert not task_sas & {b["subjects"][0]["name"] for b in bindings}


def test_operator_gets_a_role_in_each_watched_namespace_and_the_api_in_one():
    objs = template(CHART / "ci" / "watch-namespaces-values.yaml")
    by_component: dict[str, list[str]] = {}
    for role in of_kind(objs, "Role"):
        by_component.setdefault(component(role), []).append(role["metadata"]["namespace"])
    assert sorted(by_component["operator"]) == ["team-a", "team-b"]
    assert by_component["api"] == ["team-b"]
    # Nothing in the release namespace: the operator does not watch it here.
    assert NAMESPACE not in by_component["operator"]


def test_every_rule_in_the_templates_says_why():
    for tpl in ("operator/_rules.tpl", "api/_rules.tpl"):
        lines = (CHART / "templates" / tpl).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("- apiGroups:"):
                j = i - 1
                while j > 0 and lines[j - 1].startswith("#"):
                    j -= 1
                comment = lines[j].strip()
                assert comment.startswith(("# Application:", "# Framework:")), f"{tpl}:{i + 1} has no why"
