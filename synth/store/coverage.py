"""How complete the recording is: the observation window, hours without flows, the inputs and what they lost.

Read from the store for the PR description: hourly flow counts (streamed, two columns), the
import ledger (files, with the lost-event counters their sources reported) and the facts of
live collections (the file of a collection with the most flows holds its final totals).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from synth.store.dataset import ImportEntry, Store
from synth.store.files import FACTS_KEY

__all__ = ["Gap", "Source", "Window", "hourly_flows", "observation_window", "recorded_sources"]

NS = 1_000_000_000
NS_PER_HOUR = 3600 * NS


@dataclass(frozen=True, slots=True)
class Source:
    """One input of the store: an imported file or a live collection, and the events it lost."""

    source: str
    kind: str  # file | collector
    name: str
    flows: int
    first_seen: datetime | None
    last_seen: datetime | None
    lost_events: int
    lost_by_node: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """Consecutive hours of the window in which nothing at all was recorded."""

    start: datetime
    end: datetime
    hours: int


@dataclass(frozen=True, slots=True)
class Window:
    """The observation window in whole hours, the first and last flow, and the hours without flows."""

    start: datetime
    end: datetime
    first_flow: datetime
    last_flow: datetime
    hours: int
    hours_with_flows: int
    stored_flows: int
    gaps: tuple[Gap, ...]


def from_ns(value: int) -> datetime:
    """Nanoseconds since the epoch as a UTC datetime, to the second."""
    return datetime.fromtimestamp(value // NS, tz=UTC)


def hourly_flows(store: Store, since_ns: int | None = None, until_ns: int | None = None) -> Counter[int]:
    """Flows (the `count` column) per hour since the epoch, in the window, all namespaces."""
    return _scan(store, since_ns, until_ns)[0]


def _scan(store: Store, since_ns: int | None, until_ns: int | None) -> tuple[Counter[int], int | None, int | None]:
    """One pass over two columns: flows per hour, first and last flow time."""
    counts: Counter[int] = Counter()
    low: int | None = None
    high: int | None = None
    for batch in store.read(["time", "count"], since_ns, until_ns):
        times = batch.column("time").cast(pa.int64())
        first, last = (v.as_py() for v in pc.min_max(times).values())
        low = first if low is None else min(low, first)
        high = last if high is None else max(high, last)
        table = pa.table({"hour": pc.divide(times, NS_PER_HOUR), "count": batch.column("count")})
        grouped = table.group_by("hour", use_threads=False).aggregate([("count", "sum")])
        for hour, count in zip(
            grouped.column("hour").to_pylist(), grouped.column("count_sum").to_pylist(), strict=True
        ):
            counts[hour] += count
    return counts, low, high


def observation_window(store: Store, since_ns: int | None = None, until_ns: int | None = None) -> Window:
    """The window asked for (or the flows' own, widened to whole hours) and how much of it holds flows."""
    counts, first, last = _scan(store, since_ns, until_ns)
    if first is None or last is None:
        raise ValueError("no flows in the window")  # generate refused this already
    start_hour = (since_ns if since_ns is not None else first) // NS_PER_HOUR
    end_hour = -(-(until_ns if until_ns is not None else last + 1) // NS_PER_HOUR)
    gaps: list[Gap] = []
    for hour in range(start_hour, end_hour):
        if counts.get(hour):
            continue
        start = from_ns(hour * NS_PER_HOUR)
        if gaps and gaps[-1].end == start:
            previous = gaps.pop()
            gaps.append(Gap(previous.start, start + timedelta(hours=1), previous.hours + 1))
        else:
            gaps.append(Gap(start, start + timedelta(hours=1), 1))
    hours = end_hour - start_hour
    return Window(
        start=from_ns(start_hour * NS_PER_HOUR),
        end=from_ns(end_hour * NS_PER_HOUR),
        first_flow=from_ns(first),
        last_flow=from_ns(last),
        hours=hours,
        hours_with_flows=hours - sum(g.hours for g in gaps),
        stored_flows=sum(counts.values()),
        gaps=tuple(gaps),
    )


def recorded_sources(store: Store, since_ns: int | None = None, until_ns: int | None = None) -> tuple[Source, ...]:
    """Imported files (from the ledger) and live collections (from file facts) that overlap the window."""
    source_of_import: dict[str, str] = {}
    collections: dict[str, tuple[dict[str, Any], int, int]] = {}
    for stored in store.files():
        facts = json.loads((store.open_file(stored).schema_arrow.metadata or {}).get(FACTS_KEY, b"{}"))
        if "import" in facts:
            source_of_import[str(facts["import"])] = str(facts.get("source", "?"))
        collection = facts.get("collection")
        if collection:
            hour_end = stored.hour_start_ns + NS_PER_HOUR - 1
            best, low, high = collections.get(str(collection), (facts, stored.hour_start_ns, hour_end))
            if _int(facts.get("flows")) > _int(best.get("flows")):
                best = facts
            collections[str(collection)] = (best, min(low, stored.hour_start_ns), max(high, hour_end))
    result = [
        _file_source(entry, str(entry.facts.get("source") or source_of_import.get(entry.id, "?")))
        for entry in store.imports()
        if _overlaps(entry.facts.get("first_ns"), entry.facts.get("last_ns"), since_ns, until_ns)
    ]
    for facts, low, high in collections.values():
        if _overlaps(low, high, since_ns, until_ns):
            result.append(
                Source(
                    source=str(facts.get("source", "?")),
                    kind="collector",
                    name=str(facts.get("server", "?")),
                    flows=_int(facts.get("flows")),
                    first_seen=from_ns(low),
                    last_seen=from_ns(high),
                    lost_events=_int(facts.get("lost_events")),
                    lost_by_node=_by_node(facts.get("lost_by_node")),
                )
            )
    return tuple(sorted(result, key=lambda s: (s.first_seen or from_ns(0), s.kind, s.name)))


def _file_source(entry: ImportEntry, source: str) -> Source:
    first, last = entry.facts.get("first_ns"), entry.facts.get("last_ns")
    return Source(
        source=source,
        kind="file",
        # The file name only: the ledger holds absolute paths, which say nothing to a reviewer.
        name=posixpath.basename(entry.input.replace("\\", "/")) or entry.input,
        flows=entry.flows,
        first_seen=from_ns(first) if isinstance(first, int) else None,
        last_seen=from_ns(last) if isinstance(last, int) else None,
        lost_events=_int(entry.facts.get("lost_events")),
        lost_by_node=_by_node(entry.facts.get("lost_by_node")),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _overlaps(first: object, last: object, since_ns: int | None, until_ns: int | None) -> bool:
    if not isinstance(first, int) or not isinstance(last, int):
        return True
    return (since_ns is None or last >= since_ns) and (until_ns is None or first < until_ns)


def _by_node(value: object) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((str(node), _int(count)) for node, count in value.items()))
