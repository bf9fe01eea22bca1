"""Costs are shown with enough digits: a real run's $0.0038 must not read as $0.00."""

from __future__ import annotations

import pytest

from ccr.core.units import usd


@pytest.mark.parametrize(
    ("cost", "shown"),
    [
        (0.0, "$0.00"),
        (0.0038, "$0.0038"),
        (0.00054, "$0.00054"),
        (0.000012, "$0.000012"),
        (0.00000001, "$0.000000"),
        (0.0612, "$0.0612"),
        (0.5, "$0.5000"),
        (1.234, "$1.23"),
        (12.5, "$12.50"),
        (-1.0, "$0.00"),
    ],
)
def test_usd(cost: float, shown: str) -> None:
    assert usd(cost) == shown


def test_the_dashboard_and_the_pr_body_use_it() -> None:
    from ccr.core.model import JobResult, Phase, Usage
    from ccr.job import prtext

    section = prtext.outcome_section(JobResult(status=Phase.SUCCEEDED, usage=Usage(cost_usd=0.0038)), "", "")
    assert "| Cost | $0.0038 |" in section
