"""Which queued tasks start now: the same pure rule in both backends.

Tasks resuming after a pause first, then the highest priority, then the earliest submitted; at most
``limit`` running at once; one run per branch at a time (a follow-up of a running task waits for it, then
continues the same branch and PR); and nothing new while the subscription's limit is known to be used up
(``hold``). A task whose branch is busy does not block the ones behind it: it keeps its place for the next
round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable


@dataclasses.dataclass(frozen=True)
class Entry:
    """A task as the queue sees it. ``created`` is any value that sorts chronologically."""

    key: Hashable
    name: str  # the task's id, for "waiting for task X"
    priority: int
    created: str
    lane: str | None  # the task's branch; None while it is not known
    resuming: bool = False  # back from a pause: before every new task


@dataclasses.dataclass(frozen=True)
class Admission:
    start: list[Entry]
    blocked: dict[Hashable, Entry]  # a queued task -> the running task that holds its branch
    held: list[Entry] = dataclasses.field(default_factory=list)  # kept back by ``hold`` (the usage limit)


def order(entry: Entry) -> tuple[bool, int, str, str]:
    """Resuming first, higher priority first, then older first; the name breaks ties so the order is total."""
    return (not entry.resuming, -entry.priority, entry.created, entry.name)


def admit(
    queued: Iterable[Entry],
    running: Iterable[Entry],
    limit: int,
    hold: Callable[[Entry], bool] = lambda entry: False,
) -> Admission:
    busy = list(running)
    holders = {e.lane: e for e in busy if e.lane is not None}
    free = limit - len(busy)
    start: list[Entry] = []
    blocked: dict[Hashable, Entry] = {}
    held: list[Entry] = []
    for entry in sorted(queued, key=order):
        holder = holders.get(entry.lane) if entry.lane is not None else None
        if holder is not None:
            blocked[entry.key] = holder
            continue
        if hold(entry):
            held.append(entry)
            continue
        if free <= 0:
            continue
        start.append(entry)
        free -= 1
        if entry.lane is not None:
            holders[entry.lane] = entry
    return Admission(start, blocked, held)
