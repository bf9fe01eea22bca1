"""Liveness with counts (open), and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ccr import __version__
from ccr.api.deps import CurrentUser, SettingsDep, StoreDep
from ccr.api.routes.usage import usage_metrics
from ccr.core.model import Phase, now
from ccr.core.usage import summarize

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and task counts (no auth)")
async def health(store: StoreDep, settings: SettingsDep) -> dict[str, object]:
    counts = await store.counts()
    return {
        "ok": True,  # the original's fields: ok, tasks (a count), running
        "tasks": sum(counts.values()),
        "running": counts[Phase.RUNNING],
        "queued": counts[Phase.QUEUED] + counts[Phase.PENDING],
        "counts": {phase.value.lower(): n for phase, n in counts.items()},
        "version": __version__,
        "backend": settings.backend.value,
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(store: StoreDep, user: CurrentUser) -> str:
    counts = await store.counts()
    lines = ["# HELP ccr_tasks Tasks by phase.", "# TYPE ccr_tasks gauge"]
    lines += [f'ccr_tasks{{phase="{phase.value}"}} {n}' for phase, n in counts.items()]
    lines += usage_metrics(summarize(await store.list(), now()))
    return "\n".join(lines) + "\n"
