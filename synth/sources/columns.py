"""Build `FLOW_SCHEMA` record batches straight from Python values, column by column.

Sources append one value per column per flow (no per-flow objects) and call `to_batch()`.
Columns with a fixed vocabulary are kept as dictionary indices from the start, label maps as flat
key/value lists with offsets, so building a batch is a handful of bulk Arrow conversions.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import pyarrow as pa

from synth.store.schema import DIRECTIONS, FLOW_SCHEMA, KINDS, PROTOCOLS, SOURCES, VERDICTS

VERDICT_INDEX = {v: i for i, v in enumerate(VERDICTS)}
DIRECTION_INDEX = {v: i for i, v in enumerate(DIRECTIONS)}
PROTOCOL_INDEX = {v: i for i, v in enumerate(PROTOCOLS)}
KIND_INDEX = {v: i for i, v in enumerate(KINDS)}
SOURCE_INDEX = {v: i for i, v in enumerate(SOURCES)}

_DICTIONARIES = {
    "source": pa.array(SOURCES, pa.string()),
    "verdict": pa.array(VERDICTS, pa.string()),
    "direction": pa.array(DIRECTIONS, pa.string()),
    "protocol": pa.array(PROTOCOLS, pa.string()),
    "src_kind": pa.array(KINDS, pa.string()),
    "dst_kind": pa.array(KINDS, pa.string()),
}

Labels = tuple[tuple[str, str], ...]


class _MapColumn:
    """A map<string,string> column kept as offsets + flat keys + flat values."""

    __slots__ = ("keys", "offsets", "values")

    def __init__(self) -> None:
        self.offsets = [0]
        self.keys: list[str] = []
        self.values: list[str] = []

    def append(self, items: Labels) -> None:
        for k, v in items:
            self.keys.append(k)
            self.values.append(v)
        self.offsets.append(len(self.keys))

    def array(self) -> pa.Array:
        return pa.MapArray.from_arrays(
            pa.array(self.offsets, pa.int32()), pa.array(self.keys, pa.string()), pa.array(self.values, pa.string())
        )


class _ListColumn:
    """A list<string> column kept as offsets + flat values; an empty list stands for none."""

    __slots__ = ("offsets", "values")

    def __init__(self) -> None:
        self.offsets = [0]
        self.values: list[str] = []

    def append(self, items: Iterable[str]) -> None:
        self.values.extend(items)
        self.offsets.append(len(self.values))

    def array(self) -> pa.Array:
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(self.values, pa.string()))


class FlowColumns:
    """Column buffers for one batch of flows. Append to every column once per flow."""

    def __init__(self) -> None:
        self.time: list[int] = []
        self.count: list[int] = []
        self.source: list[int] = []
        self.verdict: list[int] = []
        self.drop_reason: list[str | None] = []
        self.direction: list[int] = []
        self.is_reply: list[bool | None] = []
        self.protocol: list[int] = []
        self.src_port: list[int | None] = []
        self.dst_port: list[int | None] = []
        self.src_ip: list[str | None] = []
        self.src_kind: list[int] = []
        self.src_namespace: list[str | None] = []
        self.src_pod: list[str | None] = []
        self.src_workload: list[str | None] = []
        self.src_labels = _MapColumn()
        self.src_ns_labels = _MapColumn()
        self.dst_ip: list[str | None] = []
        self.dst_kind: list[int] = []
        self.dst_namespace: list[str | None] = []
        self.dst_pod: list[str | None] = []
        self.dst_workload: list[str | None] = []
        self.dst_labels = _MapColumn()
        self.dst_ns_labels = _MapColumn()
        self.dst_names = _ListColumn()
        self.dst_service: list[str | None] = []
        self.dst_service_port: list[int | None] = []
        self.node: list[str | None] = []
        self.policies = _ListColumn()
        self.flows_started: list[int | None] = []
        self.flows_completed: list[int | None] = []
        self.dns_query: list[str | None] = []
        self.dns_answers = _ListColumn()
        self.http_method: list[str | None] = []
        self.http_path: list[str | None] = []

    def __len__(self) -> int:
        return len(self.time)

    def to_batch(self) -> pa.RecordBatch:
        """The buffered flows as one record batch in FLOW_SCHEMA."""
        arrays = []
        for f in FLOW_SCHEMA:
            column = getattr(self, f.name)
            if f.name in _DICTIONARIES:
                arrays.append(pa.DictionaryArray.from_arrays(pa.array(column, pa.int32()), _DICTIONARIES[f.name]))
            elif isinstance(column, _MapColumn | _ListColumn):
                arrays.append(column.array())
            elif pa.types.is_dictionary(f.type):
                arrays.append(pa.array(column, pa.string()).dictionary_encode())
            else:
                arrays.append(pa.array(column, f.type))
        return pa.RecordBatch.from_arrays(arrays, schema=FLOW_SCHEMA)


def dictionary_column(name: str, indices: pa.Array) -> pa.DictionaryArray:
    """A FLOW_SCHEMA column of fixed vocabulary (`verdict`, `src_kind`, ...) from row indices into it."""
    return pa.DictionaryArray.from_arrays(indices, _DICTIONARIES[name])


def label_map(rows: Iterable[Labels]) -> pa.MapArray:
    """A map<string,string> column from label tuples."""
    offsets, keys, values = [0], [], []
    for items in rows:
        for key, value in items:
            keys.append(key)
            values.append(value)
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, pa.string()),
                                   pa.array(values, pa.string()))


@lru_cache(maxsize=65536)
def split_label(label: str) -> tuple[str, str]:
    """`key=value` → (key, value); a bare `key` has the empty value."""
    key, _, value = label.partition("=")
    return key, value


def sorted_labels(pairs: Iterable[tuple[str, str]]) -> Labels:
    """Labels as a key-sorted tuple, the last value winning for a repeated key."""
    return tuple(sorted(dict(pairs).items()))
