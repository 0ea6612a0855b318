"""Compaction keeps every fact edges, generation and evidence use, in far fewer rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_FLOWS, Run

from synth.store.compact import compact_table
from synth.store.dataset import Store
from synth.store.schema import FLOW_SCHEMA
from synth.store.writer import PartitionWriter


def _table(store: Path) -> pa.Table:
    return pa.Table.from_batches(list(Store(str(store)).read()), schema=FLOW_SCHEMA)


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synth.app.ingest import import_files

    path = tmp_path_factory.mktemp("raw")
    original = PartitionWriter.COMPACT_INTERVAL_NS
    PartitionWriter.COMPACT_INTERVAL_NS = 0
    try:
        import_files(Store(str(path)), "hubble", [str(p) for p in SAMPLE_FLOWS])
    finally:
        PartitionWriter.COMPACT_INTERVAL_NS = original
    return path


def test_counts_and_first_last_times_survive_compaction(raw_store: Path) -> None:
    raw = _table(raw_store)
    compacted = compact_table(raw)
    assert compacted.num_rows < raw.num_rows * 0.8
    assert sum(compacted.column("count").to_pylist()) == sum(raw.column("count").to_pylist())
    key = ["src_pod", "dst_pod", "dst_port", "verdict", "direction"]

    def window(table: pa.Table) -> dict[tuple[object, ...], tuple[int, int, int]]:
        requests = table.filter(pa.compute.invert(pa.compute.fill_null(table.column("is_reply"), False)))
        rows = requests.select([*key, "time", "count"]).to_pylist()
        result: dict[tuple[object, ...], tuple[int, int, int]] = {}
        for row in rows:
            k = tuple(row[c] for c in key)
            low, high, n = result.get(k, (row["time"], row["time"], 0))
            result[k] = (min(low, row["time"]), max(high, row["time"]), n + row["count"])
        return result

    assert window(compacted) == window(raw)


def test_generate_is_byte_identical_from_raw_and_compacted_stores(raw_store: Path, sample_store: Path, tmp_path: Path,
                                                                  synth: Callable[..., Run]) -> None:
    outputs = []
    for store in (raw_store, sample_store):
        out = tmp_path / store.name
        assert synth("generate", "-n", "payments", "-n", "shop", "--store", store, "--out", out).code == 0
        outputs.append({p.relative_to(out): p.read_text() for p in sorted(out.rglob("*.yaml"))})
    assert outputs[0] == outputs[1]
    assert _table(sample_store).num_rows < _table(raw_store).num_rows


def test_compact_command_rewrites_hours_into_one_file(raw_store: Path, tmp_path: Path,
                                                      synth: Callable[..., Run]) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(raw_store, store)
    before = _table(store)
    result = synth("compact", "--older-than", "0s", "--store", store)
    assert result.code == 0 and result.out.startswith("compacted ")
    after = _table(store)
    assert sum(after.column("count").to_pylist()) == sum(before.column("count").to_pylist())
    assert after.num_rows < before.num_rows
    hours = {f.hour_start_ns for f in Store(str(store)).files()}
    assert len(Store(str(store)).files()) == len(hours)
    assert synth("compact", "--older-than", "0s", "--store", store).out.strip() == "nothing to compact"
    assert not (store / ".compact-journal.json").exists()


def test_a_busy_hour_is_compacted_in_runs_of_bounded_rows(raw_store: Path, sample_store: Path, tmp_path: Path,
                                                           synth: Callable[..., Run],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction holds at most `CHUNK_ROWS` stored rows at once: an hour with more becomes several files,
    each no larger, with the same flows, and generation gives the same policies."""
    from synth.store import maintenance

    store = tmp_path / "store"
    for stored in Store(str(raw_store)).files():  # each hour as four files, as a collection's flushes leave it
        target = store / Path(stored.path).relative_to(raw_store)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(stored.path)
        step = -(-table.num_rows // 4)
        for part in range(4):
            pq.write_table(table.slice(part * step, step), target.with_suffix(f".{part}.parquet"))
    sizes = [pq.ParquetFile(f.path).metadata.num_rows for f in Store(str(store)).files()]
    limit = 2 * max(sizes) + 1  # two of an hour's four files at a time
    monkeypatch.setattr(maintenance, "CHUNK_ROWS", limit)
    before = _table(store)
    report = maintenance.compact_store(Store(str(store)))
    assert report.hours > 0 and report.files_after < report.files_before
    after = Store(str(store)).files()
    assert all(pq.ParquetFile(f.path).metadata.num_rows <= limit for f in after)
    hours = [f.hour_start_ns for f in after]
    assert max(hours.count(hour) for hour in hours) > 1  # the bound made some hour several files
    assert sum(_table(store).column("count").to_pylist()) == sum(before.column("count").to_pylist())
    outputs = []
    for source in (store, sample_store):
        out = tmp_path / f"out-{source.name}"
        assert synth("generate", "-n", "payments", "-n", "shop", "--store", source, "--out", out).code == 0
        outputs.append({p.relative_to(out): p.read_text() for p in sorted(out.rglob("*.yaml"))})
    assert outputs[0] == outputs[1]
