"""What a store holds, for `synth store info`: its imports, sources, window, flows, files and size.

Reads the import ledger and two columns of every file (`time`, `count`), file by file, so it runs
in bounded memory on any store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from synth.base.errors import StoreError
from synth.store.dataset import ImportEntry, Store


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What one source (`hubble`, `calico`) contributed to the store."""

    source: str
    files: int
    rows: int
    flows: int
    bytes: int
    first_ns: int | None
    last_ns: int | None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """A store's contents in totals; `sources` sorted by name, `imports` oldest first."""

    root: str
    imports: tuple[ImportEntry, ...]
    sources: tuple[SourceInfo, ...]
    files: int
    rows: int
    flows: int
    bytes: int
    first_ns: int | None
    last_ns: int | None


@dataclass(slots=True)
class _Totals:
    files: int = 0
    rows: int = 0
    flows: int = 0
    bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.flows += int(pc.sum(batch.column("count")).as_py() or 0)
        times = pc.min_max(batch.column("time").cast(pa.int64()))
        low, high = int(times["min"].as_py()), int(times["max"].as_py())
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)


def store_info(store: Store) -> StoreInfo:
    """Count what the store holds; StoreError when there is no store at that path."""
    store.refuse_file()
    imports = tuple(store.imports())
    if not store.exists() and not imports:
        raise StoreError(f"{store.root_text}: no store here; run `synth import hubble FILE...` to create one")
    totals: dict[str, _Totals] = {}
    for stored in store.files():
        source = totals.setdefault(stored.source, _Totals())
        source.files += 1
        source.bytes += store.size(stored)
        for batch in store.read_file(stored, ["time", "count"]):
            source.add(batch)
    sources = tuple(
        SourceInfo(name, t.files, t.rows, t.flows, t.bytes, t.first_ns, t.last_ns) for name, t in sorted(totals.items())
    )
    firsts = [s.first_ns for s in sources if s.first_ns is not None]
    lasts = [s.last_ns for s in sources if s.last_ns is not None]
    return StoreInfo(
        root=store.root_text,
        imports=imports,
        sources=sources,
        files=sum(s.files for s in sources),
        rows=sum(s.rows for s in sources),
        flows=sum(s.flows for s in sources),
        bytes=sum(s.bytes for s in sources),
        first_ns=min(firsts) if firsts else None,
        last_ns=max(lasts) if lasts else None,
    )
