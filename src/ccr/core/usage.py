"""What the subscription has left and what the tasks spent, derived from the tasks themselves (pure).

Every run reports the windows of the subscription's limits as Claude last saw them (``rate_limits`` in its
result and status) and its cost and tokens (``usage``); this module folds them into one view for
``GET /usage``, ``/metrics`` and the dashboard's usage panel. Nothing is stored besides the tasks, so the
view is the same in both backends and after a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ccr.core import lifecycle
from ccr.core.model import RateLimit
from ccr.core.store import TaskRecord

DAYS = 14  # days of spending shown


class Day(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    date: dt.date
    tasks: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


class UsageView(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    windows: list[RateLimit]  # each window's latest report, across all tasks
    limited_until: dt.datetime | None  # new tasks are held back until then (a task is paused by the limit)
    paused: int  # tasks paused now
    days: list[Day]  # newest first, the last DAYS days
    total_cost_usd: float
    total_input_tokens: int
    total_output_tokens: int


def summarize(tasks: Iterable[TaskRecord], now: dt.datetime) -> UsageView:
    latest: dict[str, RateLimit] = {}
    days: dict[dt.date, Day] = {}
    total_cost, total_in, total_out, paused = 0.0, 0, 0, 0
    statuses = []
    first_day = (now - dt.timedelta(days=DAYS - 1)).date()
    for task in tasks:
        status = task.status
        statuses.append(status)
        paused += status.phase.value == "Paused"
        for window in status.rate_limits or ():
            known = latest.get(window.window)
            if known is None or (window.seen_at or now) >= (known.seen_at or now):
                latest[window.window] = window
        usage = status.usage
        if usage is None:
            continue
        cost, tokens_in, tokens_out = usage.cost_usd or 0.0, usage.input_tokens or 0, usage.output_tokens or 0
        total_cost, total_in, total_out = total_cost + cost, total_in + tokens_in, total_out + tokens_out
        when = (status.completion_time or status.start_time or task.created).date()
        if when >= first_day:
            day = days.setdefault(when, Day(date=when))
            day.tasks += 1
            day.cost_usd += cost
            day.input_tokens += tokens_in
            day.output_tokens += tokens_out
    return UsageView(
        windows=sorted(latest.values(), key=lambda w: w.window),
        limited_until=lifecycle.limit_until(statuses, now),
        paused=paused,
        days=sorted(days.values(), key=lambda d: d.date, reverse=True),
        total_cost_usd=round(total_cost, 6),
        total_input_tokens=total_in,
        total_output_tokens=total_out,
    )
