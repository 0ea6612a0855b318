"""The store opens unchanged in every hive-aware reader, with the rows and flows synth's own reader sees.

Partition values live in the paths only (`source=hubble/date=.../hour=...`), so pyarrow datasets,
pandas, DuckDB (and Spark, in tests/app/test_spark.py) agree with `Store.read`; stores written
before (schema version 1, `source` also inside each file) still read the same.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from synth.app.engine import accumulate_store
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.aggregate import FLOW_COLUMNS, finish
from synth.store.dataset import FACTS_KEY, VERSION_KEY, Store
from synth.store.maintenance import compact_store
from synth.store.schema import ADDED_COLUMNS, FLOW_SCHEMA, SCHEMA_VERSION

SAMPLES = ROOT / "sample_flows"


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the Hubble and the Calico sample flows."""
    path = tmp_path_factory.mktemp("two-sources")
    import_files(Store(str(path)), "hubble", [str(SAMPLES / "hubble-flows.json.gz")])
    import_files(Store(str(path)), "calico", [str(SAMPLES / "calico-flows.log.gz")])
    return path


def synth_totals(store: Path) -> tuple[int, Counter[str]]:
    """Rows, and flows (sum of `count`) per source, as synth's own reader sees them."""
    rows, flows = 0, Counter[str]()
    for batch in Store(str(store)).read(["source", "count"]):
        rows += batch.num_rows
        for source, count in zip(batch.column("source").to_pylist(), batch.column("count").to_pylist(), strict=True):
            flows[source] += count
    return rows, flows


def _counter(pairs: list[tuple[str, int]]) -> Counter[str]:
    return Counter({str(source): int(count) for source, count in pairs})


def test_pyarrow_dataset_with_hive_partitioning(two_sources: Path) -> None:
    rows, flows = synth_totals(two_sources)
    assert set(flows) == {"hubble", "calico"} and rows > 10_000
    dataset = ds.dataset(two_sources / "flows", partitioning="hive")
    table = dataset.to_table(columns=["source", "count"])
    assert table.num_rows == rows
    grouped = table.group_by("source").aggregate([("count", "sum")])
    assert _counter(list(zip(grouped["source"].to_pylist(), grouped["count_sum"].to_pylist(), strict=True))) == flows


def test_pandas_read_parquet(two_sources: Path) -> None:
    rows, flows = synth_totals(two_sources)
    frame = pd.read_parquet(two_sources / "flows", columns=["source", "count"])
    assert len(frame) == rows
    sums = frame.groupby("source", observed=True)["count"].sum()
    assert _counter(list(sums.items())) == flows


def test_duckdb_read_parquet_with_hive_partitioning(two_sources: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    rows, flows = synth_totals(two_sources)
    query = (
        f"SELECT source, count(*), sum(count) FROM read_parquet('{two_sources}/flows/**/*.parquet', "
        "hive_partitioning=true) GROUP BY source"
    )
    result = duckdb.sql(query).fetchall()
    assert sum(n for _source, n, _flows in result) == rows
    assert _counter([(source, total) for source, _n, total in result]) == flows


def test_files_carry_no_partition_column_and_synth_restores_it(two_sources: Path) -> None:
    store = Store(str(two_sources))
    for stored in store.files():
        names = pq.ParquetFile(stored.path).schema_arrow.names
        assert "source" not in names and "date" not in names and "hour" not in names
        (batch, *_rest) = store.read_file(stored)
        assert batch.schema.remove_metadata().equals(FLOW_SCHEMA.remove_metadata())
        assert set(batch.column("source").to_pylist()) == {stored.source}


def test_a_version_1_store_reads_the_same_and_compaction_moves_it_to_the_current_version(
    two_sources: Path, tmp_path: Path
) -> None:
    """Files of schema version 1 carried `source` inside (and no HTTP columns): rewrite the store that
    way and read it again."""
    old = Store(str(two_sources))
    expected = pa.Table.from_batches(list(old.read()), schema=FLOW_SCHEMA)
    for stored in old.files():
        target = tmp_path / Path(stored.path).relative_to(two_sources)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_batches(list(old.read_file(stored)), schema=FLOW_SCHEMA)  # with `source`
        facts = (old.open_file(stored).schema_arrow.metadata or {})[FACTS_KEY]
        table = table.drop_columns(list(ADDED_COLUMNS[3]))
        table = table.replace_schema_metadata({VERSION_KEY: b"1", FACTS_KEY: facts})
        half = table.num_rows // 2  # two files per hour, so compaction has something to rewrite
        pq.write_table(table.slice(0, half), target.with_suffix(".1.parquet"))
        pq.write_table(table.slice(half), target.with_suffix(".2.parquet"))
    v1 = Store(str(tmp_path))
    assert {"source" in pq.ParquetFile(f.path).schema_arrow.names for f in v1.files()} == {True}
    assert pa.Table.from_batches(list(v1.read()), schema=FLOW_SCHEMA).equals(expected)
    assert synth_totals(tmp_path) == synth_totals(two_sources)
    assert compact_store(v1).hours > 0
    assert synth_totals(tmp_path) == synth_totals(two_sources)
    rewritten = [f for f in v1.files() if f.path.endswith("-c.parquet")]
    assert rewritten and all(pq.ParquetFile(f.path).schema_arrow.metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
                             for f in rewritten)
    assert all("source" not in pq.ParquetFile(f.path).schema_arrow.names for f in rewritten)


def test_a_version_2_store_reads_http_columns_as_nulls_in_every_reader(two_sources: Path, tmp_path: Path) -> None:
    """Version 3 added `http_method` and `http_path`: files written before read them as nulls, through the
    store's reader and the embedded engine alike."""
    old = Store(str(two_sources))
    expected = pa.Table.from_batches(list(old.read()), schema=FLOW_SCHEMA)
    for stored in old.files():
        target = tmp_path / Path(stored.path).relative_to(two_sources)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(stored.path)
        assert set(ADDED_COLUMNS[3]) <= set(table.column_names)
        table = table.drop_columns(list(ADDED_COLUMNS[3]))
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, VERSION_KEY: b"2"}), target)
    v2 = Store(str(tmp_path))
    read = pa.Table.from_batches(list(v2.read()), schema=FLOW_SCHEMA)
    assert read.equals(expected)
    assert read.column("http_method").null_count == read.num_rows
    assert synth_totals(tmp_path) == synth_totals(two_sources)
    columns = [*FLOW_COLUMNS, *ADDED_COLUMNS[3]]
    edges = finish(accumulate_store(v2, columns), Settings()).edges
    assert edges == finish(accumulate_store(old, columns), Settings()).edges
