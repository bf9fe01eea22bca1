"""The committed CRD is exactly what the model generates, and it speaks the model's vocabulary."""

from pathlib import Path

import yaml

from ccr.core import model
from ccr.core.crd import CHART_CRD_PATH, build_crd, render_crd

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_matches_the_model() -> None:
    committed = (ROOT / CHART_CRD_PATH).read_text()
    assert committed == render_crd(), "the CRD drifted from src/ccr/core/model.py: run `make crd`"


def test_crd_names_and_columns() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "claudetasks.ccr.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("ClaudeTask", "claudetasks", ["ct"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority", 0) == 0]
    assert columns == ["Phase", "Reason", "Repo", "PR", "Age"]


def test_schema_is_structural_and_bounded() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "$defs", "title:"):
        assert forbidden not in text
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["prompt"]
    assert spec["properties"]["prompt"]["maxLength"] == model.PROMPT_MAX_CHARS
    status = schema["properties"]["status"]["properties"]
    assert status["phase"]["enum"] == [p.value for p in model.Phase]
    assert status["errorType"]["enum"] == [e.value for e in model.ErrorType]


def test_exclusive_bounds_are_written_as_kubernetes_wants_them() -> None:
    """OpenAPI v3 as the apiserver reads it: ``exclusiveMinimum`` is a boolean beside ``minimum``."""
    budget = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "maxBudgetUsd"
    ]
    assert (budget["minimum"], budget["exclusiveMinimum"]) == (0, True)
