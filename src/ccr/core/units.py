"""How numbers are shown to people, the same in the dashboard, the API's pages and the PR body."""

from __future__ import annotations

import math

COST_MIN_DECIMALS = 4  # below $1: a real run costs $0.0038, which two decimals would show as $0.00
COST_MAX_DECIMALS = 6


def usd(cost: float) -> str:
    """``$12.50``, ``$0.0612``, ``$0.0038``, ``$0.00012``: two decimals from a dollar up; below it at least four,
    and enough for two significant digits (up to six)."""
    if cost >= 1 or cost <= 0:
        return f"${max(cost, 0):.2f}"
    significant = -math.floor(math.log10(cost)) + 1
    return f"${cost:.{min(max(significant, COST_MIN_DECIMALS), COST_MAX_DECIMALS)}f}"
