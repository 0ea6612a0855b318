"""The one interface every flow source implements, and the records it reports besides flows.

A source yields Arrow record batches in `FLOW_SCHEMA`. What it cannot use comes back as data:
a `Skip` names the place and the reason, and `SourceStats` counts everything (records read,
flows, skips, lost events, non-flow events) so the CLI can summarise. With `strict`, the first
skip raises `BadRecord` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from synth.base.errors import BadRecord

# How many skips are kept verbatim for the summary; the rest are only counted.
KEPT_SKIPS = 20


@dataclass(frozen=True, slots=True)
class Skip:
    """A record that was not imported: `where` is `file:line`, `reason` says why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(slots=True)
class SourceStats:
    """Running counts of one source; read them once the batches are exhausted."""

    records: int = 0
    flows: int = 0
    skipped: int = 0
    skips: list[Skip] = field(default_factory=list)
    lost_events: int = 0
    lost_by_node: Counter[str] = field(default_factory=Counter)
    other_events: Counter[str] = field(default_factory=Counter)
    first_time_ns: int | None = None
    last_time_ns: int | None = None

    def skip(self, where: str, reason: str, *, strict: bool) -> None:
        """Record one skipped record, or raise when strict."""
        if strict:
            raise BadRecord(where, reason)
        self.skipped += 1
        if len(self.skips) < KEPT_SKIPS:
            self.skips.append(Skip(where, reason))

    def saw_time(self, first_ns: int, last_ns: int) -> None:
        """Widen the observed window."""
        if self.first_time_ns is None or first_ns < self.first_time_ns:
            self.first_time_ns = first_ns
        if self.last_time_ns is None or last_ns > self.last_time_ns:
            self.last_time_ns = last_ns


class FlowSource(ABC):
    """A stream of flows in `FLOW_SCHEMA` batches."""

    #: the `source` column value and the store partition (`hubble`, `calico`)
    name: str

    def __init__(self) -> None:
        self.stats = SourceStats()

    @abstractmethod
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield record batches in `FLOW_SCHEMA` until the input ends."""

    def facts(self) -> dict[str, object]:
        """Collection facts written into each stored file's metadata."""
        return {"source": self.name}
