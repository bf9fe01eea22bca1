"""Which queued tasks start now: the same pure rule in both backends.

Highest priority first, then the earliest submitted; at most ``limit`` running at once; and one run per
branch at a time (a follow-up of a running task waits for it, then continues the same branch and PR).
A task whose branch is busy does not block the ones behind it: it keeps its place for the next round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable


@dataclasses.dataclass(frozen=True)
class Entry:
    """A task as the queue sees it. ``created`` is any value that sorts chronologically."""

    key: Hashable
    name: str  # the task's id, for "waiting for task X"
    priority: int
    created: str
    lane: str | None  # the task's branch; None while it is not known


@dataclasses.dataclass(frozen=True)
class Admission:
    start: list[Entry]
    blocked: dict[Hashable, Entry]  # a queued task -> the running task that holds its branch


def order(entry: Entry) -> tuple[int, str, str]:
    """Higher priority first, then older first; the name breaks ties so the order is total."""
    return (-entry.priority, entry.created, entry.name)


def admit(queued: Iterable[Entry], running: Iterable[Entry], limit: int) -> Admission:
    busy = list(running)
    holders = {e.lane: e for e in busy if e.lane is not None}
    free = limit - len(busy)
    start: list[Entry] = []
    blocked: dict[Hashable, Entry] = {}
    for entry in sorted(queued, key=order):
        holder = holders.get(entry.lane) if entry.lane is not None else None
        if holder is not None:
            blocked[entry.key] = holder
            continue
        if free <= 0:
            continue
        start.append(entry)
        free -= 1
        if entry.lane is not None:
            holders[entry.lane] = entry
    return Admission(start, blocked)
