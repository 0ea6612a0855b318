"""Flow identity: the same flow is stored once, however many times and however it arrives.

A flow can reach the store twice: a file imported again from stdin, gzip then plain, a collection
and an export of the same hours, a Calico cluster's `flows.log` and its Elasticsearch export. So
every row is given an identity before the writer compacts it, from its own columns (which every
decoder of a source fills alike), and the identities of the stored rows are kept beside the
flows (`ids/`, partitioned like them). A new row whose identity is already stored is dropped.

- Hubble: the time to the nanosecond, the node that saw it, and what it was (protocol, addresses,
  ports, verdict, drop reason, direction, reply, DNS query, and the HTTP method and path of an L7
  request, which only such rows mix in, so the identities of other rows are those of stores written
  before HTTP was kept). Two rows that agree on all of these are one flow seen twice, so duplicates
  are dropped within a batch as well.
- Calico: a record stands for `num_flows` flows of one node and interval; its identity is every
  column but the node (the node's own `flows.log` lacks the `host` that Elasticsearch adds). Two
  nodes can report records that then agree on everything, so Calico identities are a multiset:
  the n-th record with an identity is new when fewer than n are stored.

An identity is the row's time and a 64-bit hash of the rest, plus its occurrence number (0 for
Hubble); a collision would need the same nanosecond as well. Hashing is vectorized: distinct values
of each column are hashed once (blake2b), rows combine them with numpy.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ID_SCHEMA = pa.schema([
    pa.field("time", pa.int64(), nullable=False),
    pa.field("key", pa.uint64(), nullable=False),
    pa.field("occurrence", pa.int32(), nullable=False),
])
"""One row per stored flow (before compaction): what `ids/` files hold."""

ID_KEYS = ("time", "key", "occurrence")

HUBBLE_KEY = (
    "node", "protocol", "src_ip", "dst_ip", "src_port", "dst_port", "verdict", "drop_reason", "direction",
    "is_reply", "dns_query",
)
HUBBLE_OPTIONAL_KEY = ("http_method", "http_path")
"""Mixed into the identity of the rows that have them only."""
#: columns left out of a Calico record's identity: `time` is kept apart, `source` is the partition
CALICO_LEFT_OUT = frozenset({"time", "source", "node"})
#: sources whose identical rows are one flow (a set); the others' are distinct records (a multiset)
SET_SOURCES = frozenset({"hubble"})

_SEPARATOR = "\x1f"
_NULL = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def identity_columns(source: str, names: list[str]) -> list[str]:
    """The columns (besides `time`) that make up a row's identity for this source."""
    if source in SET_SOURCES:
        return [name for name in HUBBLE_KEY if name in names]
    return [name for name in names if name not in CALICO_LEFT_OUT]


def identities(table: pa.Table, source: str) -> pa.Table:
    """`time` and `key` of every row of a FLOW_SCHEMA table, in row order (no occurrence yet)."""
    key = np.zeros(table.num_rows, dtype=np.uint64)
    for name in identity_columns(source, table.column_names):
        key = _mix(key ^ _column_hash(table.column(name)))
    if source in SET_SOURCES:
        for name in (n for n in HUBBLE_OPTIONAL_KEY if n in table.column_names):
            present = pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False)
            if present.any():
                key = np.where(present, _mix(key ^ _column_hash(table.column(name))), key)
    times = table.column("time").cast(pa.int64())
    return pa.table({"time": times, "key": pa.array(key, pa.uint64())})


def occurrences(ids: pa.Table) -> np.ndarray:
    """For each row, how many earlier rows of `ids` have the same time and key (0, 1, 2...)."""
    if ids.num_rows == 0:
        return np.zeros(0, dtype=np.int32)
    times, keys = ids.column("time").to_numpy(), ids.column("key").to_numpy()
    order = np.lexsort((keys, times))
    times, keys = times[order], keys[order]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (times[1:] == times[:-1]) & (keys[1:] == keys[:-1])
    position = np.arange(len(order))
    group_start = np.maximum.accumulate(np.where(same, 0, position))
    result = np.empty(len(order), dtype=np.int32)
    result[order] = position - group_start
    return result


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def _column_hash(column: pa.ChunkedArray) -> np.ndarray:
    """A uint64 per row, equal when the values are equal (null has its own)."""
    array = column.combine_chunks()
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        nulls = pc.is_null(array).to_numpy(zero_copy_only=False)
        mixed: np.ndarray = np.where(nulls, _NULL, _mix(values + _NULL))
        return mixed
    encoded = _as_text(array).dictionary_encode(null_encoding="encode")
    distinct = np.array([_text_hash(value) for value in encoded.dictionary.to_pylist()], dtype=np.uint64)
    if not len(distinct):
        return np.zeros(0, np.uint64)
    hashed: np.ndarray = distinct[encoded.indices.to_numpy(zero_copy_only=False)]
    return hashed


def _as_text(array: pa.Array) -> pa.Array:
    """Strings, maps and lists as one string per row (map entries are `key=value`, sorted as stored)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return array.dictionary_decode()
    if pa.types.is_map(kind):
        joined = pc.binary_join_element_wise(array.keys, array.items, "=")
        return pc.binary_join(pa.ListArray.from_arrays(array.offsets, joined, mask=pc.is_null(array)), _SEPARATOR)
    if pa.types.is_list(kind):
        return pc.binary_join(array, _SEPARATOR)
    return array.cast(pa.string())


def _text_hash(value: str | None) -> int:
    if value is None:
        return int(_NULL)
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")
