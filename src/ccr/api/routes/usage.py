"""The subscription's windows and the tasks' spending (``ccr.core.usage``), as JSON and as metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ccr.api.deps import StoreDep, current_user
from ccr.core.model import now
from ccr.core.usage import UsageView, summarize

router = APIRouter(tags=["usage"], dependencies=[Depends(current_user)])


@router.get("/usage", summary="The plan's usage windows as last reported, and the cost and tokens per day")
async def usage(store: StoreDep) -> UsageView:
    return summarize(await store.list(), now())


def usage_metrics(view: UsageView) -> list[str]:
    """Prometheus lines for ``/metrics``."""
    lines = [
        "# HELP ccr_rate_limit_utilization The plan's usage window as Claude last reported it (0..1).",
        "# TYPE ccr_rate_limit_utilization gauge",
        *(
            f'ccr_rate_limit_utilization{{window="{w.window}"}} {w.utilization}'
            for w in view.windows
            if w.utilization is not None
        ),
        "# HELP ccr_rate_limit_resets_at_seconds When the window resets (Unix time).",
        "# TYPE ccr_rate_limit_resets_at_seconds gauge",
        *(
            f'ccr_rate_limit_resets_at_seconds{{window="{w.window}"}} {int(w.resets_at.timestamp())}'
            for w in view.windows
            if w.resets_at is not None
        ),
        "# HELP ccr_cost_usd_total What the tasks cost, as Claude reported it.",
        "# TYPE ccr_cost_usd_total counter",
        f"ccr_cost_usd_total {view.total_cost_usd}",
        "# HELP ccr_tokens_total Tokens the tasks used.",
        "# TYPE ccr_tokens_total counter",
        f'ccr_tokens_total{{kind="input"}} {view.total_input_tokens}',
        f'ccr_tokens_total{{kind="output"}} {view.total_output_tokens}',
        "# HELP ccr_usage_limited_until_seconds New tasks are held back until then (0: not limited).",
        "# TYPE ccr_usage_limited_until_seconds gauge",
        f"ccr_usage_limited_until_seconds {int(view.limited_until.timestamp()) if view.limited_until else 0}",
    ]
    return lines
