"""The flows a writer must not store again: stored identities, per partition, and the anti-join.

A writer (an import, a collection) asks `SeenFlows.novel` for the rows of one partition that are not
stored yet, before it compacts them. The identities of the partition's committed rows are read once
from `ids/` (through the loader the store gives), kept while the writer writes that partition, and
grow with what the writer stores; the writer holds the store's lock, so nobody else adds to them.
Only the most recently used partitions stay in memory: a long collection moves on hour by hour.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.store.identity import ID_KEYS, ID_SCHEMA, SET_SOURCES, identities, occurrences

_PARTITIONS_KEPT = 4


class SeenFlows:
    """Identities of the stored flows of recently written partitions, and of this writer's own."""

    def __init__(self, load: Callable[[str], pa.Table]) -> None:
        self._load = load
        self._known: OrderedDict[str, pa.Table] = OrderedDict()
        # Multiset sources: how many rows of each identity this writer was given, stored or not.
        self._given: dict[str, pa.Table] = {}

    def novel(self, partition: str, source: str, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """The rows of `table` not stored yet, and their identities (ID_SCHEMA); remembers them as stored."""
        ids = identities(table, source)
        if source in SET_SOURCES:  # identical rows are one flow: keep the first of each identity
            first = occurrences(ids) == 0
            ids = ids.append_column("occurrence", pa.array(np.zeros(ids.num_rows, np.int32)))
            ids = ids.append_column("__row", pa.array(np.arange(ids.num_rows, dtype=np.int64)))
            if not first.all():
                ids = ids.filter(pa.array(first))
        else:
            ids = ids.append_column("occurrence", pa.array(self._numbered(partition, ids)))
            ids = ids.append_column("__row", pa.array(np.arange(ids.num_rows, dtype=np.int64)))
        known = self._known_ids(partition)
        if known.num_rows:
            ids = ids.join(known, keys=list(ID_KEYS), join_type="left anti", use_threads=False)
            ids = ids.take(pc.sort_indices(ids.column("__row")))
        kept = ids.select(list(ID_KEYS)).cast(ID_SCHEMA)
        self._known[partition] = pa.concat_tables([known, kept]) if known.num_rows else kept
        if ids.num_rows == table.num_rows:
            return table, kept
        return table.take(ids.column("__row")), kept

    def _known_ids(self, partition: str) -> pa.Table:
        if partition in self._known:
            self._known.move_to_end(partition)
            return self._known[partition]
        while len(self._known) >= _PARTITIONS_KEPT:
            self._known.popitem(last=False)
        known = self._load(partition).cast(ID_SCHEMA)
        self._known[partition] = known
        return known

    def _numbered(self, partition: str, ids: pa.Table) -> np.ndarray:
        """Occurrence numbers that continue across this writer's batches of the partition."""
        numbers = occurrences(ids)
        given = self._given.get(partition)
        if given is not None and given.num_rows:
            positioned = ids.select(["time", "key"]).append_column(
                "__row", pa.array(np.arange(ids.num_rows, dtype=np.int64)))
            earlier = positioned.join(given, keys=["time", "key"], join_type="inner", use_threads=False)
            offsets = np.zeros(ids.num_rows, dtype=np.int32)
            offsets[earlier.column("__row").to_numpy()] = earlier.column("given").to_numpy()
            numbers = numbers + offsets
        counts = _totals(ids.append_column("given", pa.array(np.ones(ids.num_rows, np.int32))))
        if given is not None:
            counts = _totals(pa.concat_tables([given, counts]))
        self._given[partition] = counts
        return numbers.astype(np.int32)


_GIVEN_SCHEMA = pa.schema([("time", pa.int64()), ("key", pa.uint64()), ("given", pa.int32())])


def _totals(given: pa.Table) -> pa.Table:
    """`given` summed per identity."""
    summed = given.group_by(["time", "key"], use_threads=False).aggregate([("given", "sum")])
    return summed.select(["time", "key", "given_sum"]).rename_columns(["time", "key", "given"]).cast(_GIVEN_SCHEMA)
