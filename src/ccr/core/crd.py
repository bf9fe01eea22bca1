"""The ClaudeTask CustomResourceDefinition, generated from the pydantic model.

``ccr crd`` prints it; the chart's copy is regenerated with ``make crd`` and a test fails on drift.
"""

from __future__ import annotations

from typing import Any

import yaml

from ccr.core import model

CHART_CRD_PATH = "charts/claude-code-runner/crds/claudetasks.ccr.dev.yaml"
DESCRIPTION = "A coding task for Claude Code: a prompt in, a draft pull request out."


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn a pydantic JSON schema into a Kubernetes structural schema (no $ref, anyOf-null, titles)."""
    if "$ref" in schema:
        ref = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**ref, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(options) == 1:
            return _structural({**options[0], **rest}, defs)
        raise ValueError(f"cannot express anyOf {schema['anyOf']} structurally")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "$defs") or (key == "default" and value is None):
            continue
        if key == "format" and value != "date-time":
            continue  # the apiserver knows date-time; pydantic's other formats carry no meaning there
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020 gives the bound; Kubernetes' OpenAPI v3 wants the bound plus a boolean.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            continue  # `false` is a CRD's default: unknown fields are pruned
        else:
            out[key] = value
    return out


def _schema_of(cls: type[model._Camel]) -> dict[str, Any]:
    raw = cls.model_json_schema(by_alias=True, mode="serialization" if cls is model.TaskStatus else "validation")
    return _structural(raw, raw.get("$defs", {}))


def build_crd() -> dict[str, Any]:
    spec = _schema_of(model.TaskSpec)
    status = _schema_of(model.TaskStatus)
    status.pop("required", None)  # status fields appear over time
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    spec["description"] = "What the task asks for. Credentials never go here."
    status["description"] = "Written only by the operator."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.PLURAL}.{model.GROUP}"},
        "spec": {
            "group": model.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.KIND,
                "plural": model.PLURAL,
                "singular": model.SINGULAR,
                "shortNames": list(model.SHORT_NAMES),
                "listKind": f"{model.KIND}List",
                "categories": ["ccr"],
            },
            "versions": [
                {
                    "name": model.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
                        {"name": "Repo", "type": "string", "jsonPath": ".status.repo"},
                        {"name": "PR", "type": "string", "jsonPath": ".status.prUrl"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                        {"name": "Error", "type": "string", "jsonPath": ".status.errorType", "priority": 1},
                        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": DESCRIPTION,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd() -> str:
    header = "# Generated by `ccr crd` from src/ccr/core/model.py. Do not edit; run `make crd`.\n"
    return header + yaml.dump(build_crd(), Dumper=_NoAliases, sort_keys=False, width=120)
