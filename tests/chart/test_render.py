"""helm lint / helm template for the default values and every ci/*-values.yaml, and what they render:
the restricted Pod Security Standard on every pod, the settings the components read, the NetworkPolicy."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    container_env,
    helm,
    of_kind,
    one,
    pod_templates,
    template,
    template_error,
)
from tests.chart.pss import assert_hardened, assert_restricted


def operator_settings_class():
    """The operator's whole configuration: OperatorConfig (OperatorSettings plus the loop's own knobs)."""
    try:
        from ccr.operator.config import OperatorConfig
    except ImportError:  # pragma: no cover - before the operator package existed
        from ccr.core.settings import OperatorSettings as OperatorConfig
    return OperatorConfig


def operator_settings_from(env: dict, monkeypatch: pytest.MonkeyPatch):
    """The operator's configuration exactly as the rendered Deployment's environment gives it."""
    for key in list(os.environ):
        if key.startswith("CCR_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if isinstance(value, str):
            monkeypatch.setenv(key, value)
    return operator_settings_class()()


VALUES = [None, *CI_VALUES]
IDS = ["no-values", *[p.name.removesuffix("-values.yaml") for p in CI_VALUES]]


def test_there_are_several_ci_values_files():
    names = {p.name for p in CI_VALUES}
    assert {
        "default-values.yaml",
        "existing-secrets-values.yaml",
        "ingress-networkpolicy-values.yaml",
        "watch-namespaces-values.yaml",
    } <= names


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_helm_lint_strict(values: Path | None):
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "--namespace", NAMESPACE]
    if values:
        args += ["-f", str(values)]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_template_renders_the_components(values: Path | None):
    objs = template(values)
    op = one(objs, "Deployment", "operator")
    api = one(objs, "Deployment", "api")
    one(objs, "Service", "api")
    crds = of_kind(objs, "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == ["claudetasks.ccr.dev"]
    # One operator, never two racing: a single replica replaced by Recreate.
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}
    assert op["spec"]["template"]["spec"]["containers"][0]["args"] == ["operator"]
    assert api["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve"]
    assert api["spec"]["strategy"] == {"type": "Recreate"}
    for o in objs:
        if o["kind"] != "CustomResourceDefinition":
            labels = o["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == "ccr"
            assert labels["app.kubernetes.io/part-of"] == "claude-code-runner"


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_every_pod_is_restricted_and_hardened(values: Path | None):
    objs = template(values)
    pods = dict(pod_templates(objs))
    assert len(pods) == 2, pods.keys()
    for name, tpl in pods.items():
        annotations = tpl.get("metadata", {}).get("annotations")
        assert_restricted(tpl["spec"], annotations)
        # Operator and API talk to the API server: they need their token, and say so explicitly.
        assert_hardened(tpl["spec"], service_account_token=True, annotations=annotations)
        assert tpl["spec"]["enableServiceLinks"] is False, name
        for c in tpl["spec"]["containers"]:
            assert c["resources"]["limits"]["memory"], name


def test_service_accounts_do_not_automount_tokens():
    """Tokens are mounted only by the pods that need them (explicit in the pod spec), never by default."""
    for values in VALUES:
        for sa in of_kind(template(values), "ServiceAccount"):
            assert sa["automountServiceAccountToken"] is False, sa["metadata"]["name"]


def test_task_pods_get_a_tokenless_service_account_bound_to_nothing():
    objs = template()
    op = one(objs, "Deployment", "operator")
    sa_name = container_env(op)["CCR_JOB_SERVICE_ACCOUNT"]
    sa = next(s for s in of_kind(objs, "ServiceAccount") if s["metadata"]["name"] == sa_name)
    assert sa["automountServiceAccountToken"] is False
    bound = [
        s["name"] for b in of_kind(objs, "RoleBinding") + of_kind(objs, "ClusterRoleBinding") for s in b["subjects"]
    ]
    assert sa_name not in bound


# --- the settings the components read ------------------------------------------------------------------


def _settings_env_names(cls) -> set[str]:
    names: set[str] = set()
    prefix = cls.model_config.get("env_prefix", "")
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add((prefix + name).upper())
        elif isinstance(alias, str):
            names.add(alias)
        else:  # AliasChoices
            names.update(str(a) for a in alias.choices)
    return names


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_operator_env_is_exactly_the_operator_settings(values: Path | None, monkeypatch: pytest.MonkeyPatch):
    env = container_env(one(template(values), "Deployment", "operator"))
    known = _settings_env_names(operator_settings_class())
    assert set(env) - {"POD_NAMESPACE"} <= known, f"unknown to OperatorSettings: {set(env) - known}"
    assert known <= set(env), f"OperatorSettings the chart does not set: {known - set(env)}"
    # And the rendered values parse (ints, booleans, JSON annotations) into what the chart meant.
    settings = operator_settings_from(env, monkeypatch)
    assert settings.job_image.startswith("ghcr.io/claude-code-runner/ccr-job:")
    if hasattr(settings, "watched_namespaces"):
        assert settings.watched_namespaces() == env["CCR_NAMESPACES"].split(",")


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_api_env_is_known_to_the_api_settings(values: Path | None):
    from ccr.core.settings import Settings

    env = container_env(one(template(values), "Deployment", "api"))
    known = _settings_env_names(Settings)
    assert set(env) <= known, f"unknown to Settings: {set(env) - known}"
    assert env["CCR_BACKEND"] == "kubernetes"
    assert env["CCR_DATA_DIR"] == "/data"
    assert env["PORT"] == "7334"
    assert env["SESSION_SECRET"]["secretKeyRef"]["key"] == "SESSION_SECRET"
    # The API never gets the agent's credentials.
    assert "GITHUB_TOKEN" not in env and "CLAUDE_CODE_OAUTH_TOKEN" not in env


def _secrets_used(pod_spec: dict) -> set[str]:
    used = set()
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                used.add(ref["name"])
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                used.add(e["secretRef"]["name"])
    for v in pod_spec.get("volumes", []):
        if "secret" in v:
            used.add(v["secret"]["secretName"])
        for src in (v.get("projected") or {}).get("sources", []):
            if "secret" in src:
                used.add(src["secret"]["name"])
    return used


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_operator_and_api_never_mount_the_agent_credentials(values: Path | None):
    """The operator only names the credential Secrets in the Jobs it builds; neither it nor the API reads them."""
    objs = template(values)
    op_env = container_env(one(objs, "Deployment", "operator"))
    credentials = {op_env["CCR_CLAUDE_SECRET"], op_env["CCR_GITHUB_SECRET"]}
    for name, tpl in pod_templates(objs):
        assert not _secrets_used(tpl["spec"]) & credentials, name


def test_generated_session_secret_is_long_and_kept_in_a_secret():
    objs = template()
    secret = next(s for s in of_kind(objs, "Secret") if "SESSION_SECRET" in s.get("data", {}))
    import base64

    assert len(base64.b64decode(secret["data"]["SESSION_SECRET"])) >= 32


def test_secrets_from_values_land_in_every_task_namespace():
    objs = template(CHART / "ci" / "watch-namespaces-values.yaml")
    by_ns: dict[str, set[str]] = {}
    for s in of_kind(objs, "Secret"):
        by_ns.setdefault(s["metadata"]["namespace"], set()).update(s["data"])
    assert {"GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"} <= by_ns["team-a"]
    assert {"GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"} <= by_ns["team-b"]
    env = container_env(one(objs, "Deployment", "operator"))
    assert env["CCR_NAMESPACES"] == "team-a,team-b"
    assert container_env(one(objs, "Deployment", "api"))["CCR_NAMESPACE"] == "team-b"


def test_existing_secrets_are_used_by_name_and_nothing_secret_is_created():
    objs = template(CHART / "ci" / "existing-secrets-values.yaml")
    assert of_kind(objs, "Secret") == []
    env = container_env(one(objs, "Deployment", "operator"))
    assert env["CCR_CLAUDE_SECRET"] == "my-claude"
    assert env["CCR_GITHUB_SECRET"] == "my-github"
    assert env["CCR_JOB_SERVICE_ACCOUNT"] == ""
    api = one(objs, "Deployment", "api")
    assert container_env(api)["SESSION_SECRET"]["secretKeyRef"]["name"] == "my-session"
    vols = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == "my-ccr-data"
    assert of_kind(objs, "PersistentVolumeClaim") == []


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"claude.existingSecret": "x", "claude.oauthToken": "y"}, "claude.existingSecret is set"),
        ({"github.existingSecret": "x", "github.token": "y"}, "github.existingSecret is set"),
        ({"operator.watchNamespaces[0]": "a", "api.taskNamespace": "b"}, "which the operator does not watch"),
        ({"api.bogus": "1"}, "additional properties 'bogus' not allowed"),
        ({"tasks.networkPolicy.blockedCIDRs[0]": "everything"}, "blockedCIDRs"),
        ({"api.sessionSecret.value": "short"}, "sessionSecret"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
    ],
)
def test_contradictory_or_unknown_values_fail(sets: dict[str, str], message: str):
    assert message in template_error(sets=sets)


# --- NetworkPolicy for task pods ----------------------------------------------------------------------


def _task_policy(values: Path | None = None):
    return next(
        n
        for n in of_kind(template(values), "NetworkPolicy")
        if n["metadata"]["labels"]["app.kubernetes.io/component"] == "task"
    )


def test_task_network_policy_blocks_cluster_lan_and_metadata():
    pol = _task_policy()["spec"]
    assert set(pol["policyTypes"]) == {"Ingress", "Egress"}
    assert pol["ingress"] == []
    egress = pol["egress"]
    # DNS only to the cluster DNS pods.
    dns = egress[0]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert all("ipBlock" not in peer for peer in dns["to"])
    # Everything else: public addresses, port 443 only.
    web = egress[1]
    assert web["ports"] == [{"port": 443, "protocol": "TCP"}]
    v4 = next(p["ipBlock"] for p in web["to"] if p["ipBlock"]["cidr"] == "0.0.0.0/0")
    for blocked in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"):
        assert blocked in v4["except"]
    v6 = next(p["ipBlock"] for p in web["to"] if p["ipBlock"]["cidr"] == "::/0")
    assert "fc00::/7" in v6["except"] and "fe80::/10" in v6["except"]
    assert len(egress) == 2


def test_task_network_policy_covers_each_watched_namespace():
    pols = [n for n in of_kind(template(CHART / "ci" / "watch-namespaces-values.yaml"), "NetworkPolicy")]
    assert sorted(p["metadata"]["namespace"] for p in pols) == ["team-a", "team-b"]


def test_task_network_policy_options():
    pol = _task_policy(CHART / "ci" / "ingress-networkpolicy-values.yaml")["spec"]
    web = pol["egress"][1]
    assert [p["ipBlock"]["cidr"] for p in web["to"]] == ["0.0.0.0/0"]  # ipv6: false
    assert "100.96.0.0/12" in web["to"][0]["ipBlock"]["except"]
    assert pol["egress"][2]["to"][0]["ipBlock"]["cidr"] == "192.168.1.20/32"
    assert not [n for n in of_kind(template(sets={"tasks.networkPolicy.enabled": "false"}), "NetworkPolicy")]


def test_task_network_policy_selects_the_pods_the_operator_builds():
    """The policy's podSelector must match the labels builders.build_job puts on task pods, or it
    silently protects nothing."""
    from ccr.core.model import JobInput, TaskSpec
    from ccr.core.settings import OperatorSettings
    from ccr.operator import builders

    task = {"metadata": {"name": "t1", "namespace": NAMESPACE, "uid": "0000-1111"}}
    job = builders.build_job(task, JobInput(id="t", spec=TaskSpec(prompt="hi")), OperatorSettings())
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    selector = _task_policy()["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    # ... and selects nothing else the chart runs.
    for _, tpl in pod_templates(template()):
        assert not selector.items() <= tpl["metadata"]["labels"].items()


# --- the Job the operator builds, configured by the chart -----------------------------------------------


@pytest.mark.parametrize("values", VALUES, ids=IDS)
def test_the_job_the_operator_builds_from_chart_settings_is_restricted(
    values: Path | None, monkeypatch: pytest.MonkeyPatch
):
    from ccr.core.model import JobInput, TaskSpec
    from ccr.operator import builders

    env = container_env(one(template(values), "Deployment", "operator"))
    settings = operator_settings_from(env, monkeypatch)
    task = {"metadata": {"name": "t1", "namespace": NAMESPACE, "uid": "0000-1111"}}
    job = builders.build_job(task, JobInput(id="t", spec=TaskSpec(prompt="hi")), settings)
    tpl = job["spec"]["template"]
    assert_hardened(tpl["spec"], service_account_token=False, annotations=tpl["metadata"].get("annotations"))
    assert tpl["spec"].get("serviceAccountName", "") == env["CCR_JOB_SERVICE_ACCOUNT"]


# --- values.yaml documentation -----------------------------------------------------------------------


def test_every_value_is_documented():
    """helm-docs style: every key carries a `# --` comment, or sits inside a documented key."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_until_indent: int | None = None
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        if documented_until_indent is not None:
            if indent > documented_until_indent:
                continue
            documented_until_indent = None
        above = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#"):
            above.append(lines[j].strip())
            j -= 1
        doc = any(a.startswith("# --") for a in above)
        is_parent = rest == "" and i + 1 < len(lines) and not lines[i + 1].strip().startswith("-")
        if doc:
            documented_until_indent = indent
        elif not is_parent:
            undocumented.append(f"line {i + 1}: {key}")
    assert not undocumented, "values without a `# --` comment:\n" + "\n".join(undocumented)


def test_schema_is_strict_everywhere():
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose = []

    def walk(node, path):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                loose.append(path)
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(schema, "")
    assert not loose, f"objects that accept unknown keys: {loose}"
    # Every key of values.yaml is in the schema (so the defaults themselves are checked).
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def keys(node, schema_node, path):
        for k, v in node.items():
            props = schema_node.get("properties", {})
            assert k in props, f"{path}.{k} missing from values.schema.json"
            if isinstance(v, dict) and "properties" in props[k]:
                keys(v, props[k], f"{path}.{k}")

    keys(values, schema, "")


def test_notes_say_how_to_reach_the_dashboard_and_what_to_do_first(tmp_path: Path):
    """NOTES.txt is not rendered by `helm template`; render it through a copy of the chart."""
    import shutil

    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_test.tpl").write_text('{{- define "ccr.test.notes" -}}\n' + notes + "{{- end }}\n")
    (chart / "templates" / "notes_test.yaml").write_text('notes: {{ include "ccr.test.notes" . | toJson }}\n')

    def render(values: Path | None = None, sets: dict[str, str] | None = None) -> str:
        objs = template(values, sets, chart=chart)
        return next(o["notes"] for o in objs if "notes" in o)

    default = render()
    assert f"kubectl port-forward -n {NAMESPACE} svc/ccr-claude-code-runner 7334:7334" in default
    assert "creates the admin account" in default
    assert f'kubectl logs -n {NAMESPACE} deploy/ccr-claude-code-runner-api | grep "setup code"' in default
    assert "kubectl create secret generic ccr-claude-code-runner-claude" in default
    assert "kubectl create secret generic ccr-claude-code-runner-github" in default
    assert "kubectl get claudetasks" in default
    ingress = render(CHART / "ci" / "ingress-networkpolicy-values.yaml")
    assert "https://ccr.home.example/" in ingress
    assert "kubectl create secret" not in ingress
    assert "WARNING" not in default
    assert "WARNING: tasks.networkPolicy.enabled is false" in render(sets={"tasks.networkPolicy.enabled": "false"})


def _api_env(values: Path | None = None, sets: dict[str, str] | None = None) -> dict:
    return container_env(one(template(values, sets), "Deployment", "api"))


def test_the_api_answers_to_its_ingress_host_and_service_names_only():
    """CCR_ALLOWED_HOSTS as the chart sets it, read by the API's own HostPolicy (the DNS rebinding guard)."""
    from ccr.api.guard import HostPolicy

    svc = "ccr-claude-code-runner"
    default = HostPolicy.for_server("0.0.0.0", _api_env()["CCR_ALLOWED_HOSTS"])
    for host in (
        svc,
        f"{svc}.{NAMESPACE}",
        f"{svc}.{NAMESPACE}.svc.cluster.local:7334",
        "10.42.0.17:7334",
        "localhost",
    ):
        assert default.allows(host), host  # in-cluster clients, the kubelet's probes (pod IP), port-forward
    assert not default.allows("ccr.home.example") and not default.allows("rebind.attacker.example")

    ingress = HostPolicy.for_server(
        "0.0.0.0", _api_env(CHART / "ci" / "ingress-networkpolicy-values.yaml")["CCR_ALLOWED_HOSTS"]
    )
    for host in ("ccr.home.example", "ccr.lan", "eu.ccr.home.example", f"{svc}.{NAMESPACE}.svc"):
        assert ingress.allows(host), host
    assert not ingress.allows("other.example")


def test_no_proxy_is_trusted_unless_the_user_says_so():
    assert _api_env()["CCR_TRUSTED_PROXIES"] == ""
    assert _api_env(CHART / "ci" / "ingress-networkpolicy-values.yaml")["CCR_TRUSTED_PROXIES"] == "10.42.0.0/16"
