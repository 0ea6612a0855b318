"""The Spark engine gives the embedded engine's edge table, row by row (Spark in local mode)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Run

from synth.app.flows import aggregate_store
from synth.base.config import Settings
from synth.store.dataset import Store

pytest.importorskip("pyspark")
pytestmark = pytest.mark.spark
if shutil.which("java") is None:
    pytest.skip("no Java runtime for Spark", allow_module_level=True)


def test_spark_edges_equal_embedded_edges_row_by_row(sample_store: Path, synth: Callable[..., Run]) -> None:
    from synth.app.spark import spark_session

    store = Store(str(sample_store))
    embedded = aggregate_store(store, Settings())
    with spark_session("local[2]") as spark:
        from synth.app.spark import _aggregate

        files = [f"file://{f.path}" for f in store.files()]
        on_spark = _aggregate(spark, files, Settings(), None, None, None)
        filtered = _aggregate(spark, files, Settings(), ["payments"], None, 1795132800 * 10**9)
    assert on_spark.table.num_rows == embedded.table.num_rows > 20
    for left, right in zip(on_spark.edges, embedded.edges, strict=True):
        assert left == right
    assert on_spark.table.equals(embedded.table)
    assert on_spark.identities == embedded.identities
    assert on_spark.names == embedded.names
    expected = aggregate_store(store, Settings(), namespaces=["payments"], until_ns=1795132800 * 10**9)
    assert filtered.table.num_rows > 0 and filtered.table.equals(expected.table)


def test_cli_engine_spark(sample_store: Path, synth: Callable[..., Run]) -> None:
    embedded = synth("edges", "-n", "payments", "-o", "json", "--store", sample_store)
    spark = synth(
        "edges",
        "-n",
        "payments",
        "-o",
        "json",
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--store",
        sample_store,
    )
    assert spark.code == 0, spark.err
    assert json.loads(spark.out) == json.loads(embedded.out)


def test_spark_reads_the_store_unchanged(sample_store: Path) -> None:
    """Spark's own partition discovery over `flows/`: the rows and flows synth's reader sees."""
    from pyspark.sql import functions as F  # noqa: N812

    from synth.app.spark import spark_session

    expected_rows, expected_flows = 0, Counter[str]()
    for batch in Store(str(sample_store)).read(["source", "count"]):
        expected_rows += batch.num_rows
        for source, count in zip(batch.column("source").to_pylist(), batch.column("count").to_pylist(), strict=True):
            expected_flows[source] += count
    with spark_session("local[2]") as spark:
        flows = spark.read.parquet(f"file://{sample_store}/flows")
        rows = flows.count()
        sums = {r["source"]: r["flows"] for r in flows.groupBy("source").agg(F.sum("count").alias("flows")).collect()}
    assert rows == expected_rows > 10_000
    assert sums == dict(expected_flows)
