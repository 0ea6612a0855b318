"""Distinct values as small integer ids, computed without a Python object per flow.

Grouping many flows by strings and label maps is what costs most per flow (hashing strings and
nested lists). Parquet already holds each column dictionary-encoded, so a row's values are a few
integer codes: packed into bytes, they are equal exactly when the values are, and Arrow's hash finds
the distinct ones in one pass. Only those distinct combinations (label sets, endpoints: hundreds
per batch, not flows) are then looked at in Python and given ids that are stable across batches.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synth.core.identity import Labels

SEPARATOR = "\x1f"
"""Between the `k=v` entries of a label set's key."""


class LabelSets:
    """Label maps as small integer ids, without building a string per flow.

    Each row's map is reduced to the bytes of its entries' dictionary codes, which are equal exactly
    when the entries are; only the distinct label sets of a batch are then looked at in Python.
    Id 0 is the empty set; the key of a set (`k=v<US>k=v...`, keys sorted as stored) names it, so two
    maps that spell the same key share an id. A map with a null value counts as empty.
    """

    def __init__(self) -> None:
        self.labels: dict[str, Labels] = {"": ()}
        self.keys: list[str] = [""]
        self._ids: dict[str, int] = {"": 0}
        self._lock = threading.Lock()  # batches may be encoded on several threads at once

    def encode(self, column: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The id of each row's label map (null maps get 0)."""
        maps: pa.MapArray = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        keys, key_dictionary = _codes(maps.keys)
        items, item_dictionary = _codes(maps.items)
        key_values, item_values = key_dictionary.to_pylist(), item_dictionary.to_pylist()
        width = max(len(item_values), 1)
        size = np.int32 if width * len(key_values) < 2**31 else np.int64
        codes = keys.astype(size) * width + items
        offsets = maps.offsets.to_numpy(zero_copy_only=False).astype(np.int64) * codes.itemsize
        packed = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(maps), [None, pa.py_buffer(offsets), pa.py_buffer(codes)]
        )
        if maps.null_count:
            packed = pc.if_else(maps.is_valid(), packed, pa.scalar(b"", pa.large_binary()))
        encoded = packed.dictionary_encode()
        with self._lock:
            lookup = [self._id(np.frombuffer(value, size), key_values, item_values, width)
                      for value in encoded.dictionary.to_pylist()]
        return pc.take(pa.array(lookup, pa.int32()), encoded.indices)

    def _id(self, codes: np.ndarray, keys: list[object], items: list[object], width: int) -> int:
        entries = tuple((keys[code // width], items[code % width]) for code in codes.tolist())
        labels: Labels = () if any(value is None for _, value in entries) else entries
        key = SEPARATOR.join(f"{k}={v}" for k, v in labels)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self.keys)
            self.keys.append(key)
            self.labels[key] = labels
        return found


class RowIds:
    """Combinations of several columns' values as ids: `encode` gives each row the id of its
    combination, `table` gives the combinations back as columns (row `i` is id `i`).

    A batch's distinct combinations are matched to the ones seen before by a text key (values
    joined by the unit separator, `=` before each non-null one), all in Arrow; Python only stores
    combinations never seen before. The values are names and addresses, which never hold that
    separator.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._keys: list[str] = []
        self._known = pa.array([], pa.string())
        self._rows: list[tuple[object, ...]] = []
        self._lock = threading.Lock()  # batches may be encoded on several threads at once

    def encode(self, columns: Sequence[pa.Array]) -> pa.Array:
        """The id of each row's combination of `columns` (in `schema`'s order; nulls are values too)."""
        codes, dictionaries = zip(*(_codes(column) for column in columns), strict=True)
        indices, distinct = _distinct_rows(codes, [len(dictionary) for dictionary in dictionaries])
        width = len(columns)
        values = [pc.take(dictionaries[i], pa.array(distinct[:, i])) for i in range(width)]
        keys = pc.binary_join_element_wise(
            *(pc.fill_null(pc.binary_join_element_wise("", value.cast(pa.string()), "="), "") for value in values),
            SEPARATOR,
        )
        with self._lock:
            found = pc.index_in(keys, value_set=self._known)
            if found.null_count:
                self._learn(keys, values, found)
                found = pc.index_in(keys, value_set=self._known)
        return pc.take(found.cast(pa.int32()), indices)

    def _learn(self, keys: pa.Array, values: list[pa.Array], found: pa.Array) -> None:
        new = pc.is_null(found)
        fresh = [value.filter(new).to_pylist() for value in values]
        self._keys.extend(keys.filter(new).to_pylist())
        self._rows.extend(zip(*fresh, strict=True))
        self._known = pa.array(self._keys, pa.string())

    def table(self) -> pa.Table:
        """Every combination seen, in id order, as columns of `schema`."""
        return pa.table(
            {field.name: pa.array([row[i] for row in self._rows], field.type) for i, field in enumerate(self.schema)}
        )


def _distinct_rows(codes: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[pa.Array, np.ndarray]:
    """Each row's index among the distinct rows of the codes, and those rows (one column per code).

    The codes of a row are one number in mixed radix when the sizes allow (one 8-byte hash per row),
    else the row's bytes."""
    if math.prod(sizes) < 2**62:
        combined = np.zeros(len(codes[0]), np.int64)
        for code, size in zip(codes, sizes, strict=True):
            combined *= size
            combined += code
        encoded = pa.array(combined).dictionary_encode()
        rest = encoded.dictionary.to_numpy().copy()
        distinct = np.empty((len(rest), len(sizes)), np.int64)
        for position in reversed(range(len(sizes))):
            distinct[:, position] = rest % sizes[position]
            rest //= sizes[position]
        return encoded.indices, distinct
    matrix = np.ascontiguousarray(np.column_stack(codes), dtype=np.int32)
    packed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * len(sizes)), len(matrix), [None, pa.py_buffer(matrix)])
    encoded = packed.dictionary_encode()
    return encoded.indices, np.frombuffer(b"".join(encoded.dictionary.to_pylist()), np.int32).reshape(-1, len(sizes))


def _codes(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of an array and the values they stand for (null is a value of its own)."""
    encoded = values if pa.types.is_dictionary(values.type) else values.dictionary_encode(null_encoding="encode")
    dictionary, indices = encoded.dictionary, encoded.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(dictionary))
        dictionary = pa.concat_arrays([dictionary, pa.nulls(1, dictionary.type)])
    return indices.to_numpy(zero_copy_only=False), dictionary
