"""The same aggregation on Apache Spark, for stores one machine cannot aggregate in time.

Spark reads the store's Parquet files (a local path or `s3a://`), does the per-flow work (reply
and verdict filters, label keys, owner groups, the group-by into endpoint-pair partials) and hands
the partials, the pods' label sets and the DNS names to the embedded engine's `Accumulator`, whose
`finish` chooses identities and builds the edges. Both engines therefore share every rule that
decides an edge, and give the identical table. The only module that imports pyspark.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from synth.app.flows import require_flows
from synth.base.config import Settings
from synth.base.errors import UsageError
from synth.core.aggregate import GROUP_KEYS, Accumulator, EdgeSet, finish
from synth.core.identity import owner_of_pod
from synth.store.dataset import Store
from synth.store.schema import ALLOWED_VERDICTS, POLICY_DROP_REASONS

_NS_PER_HOUR = 3_600_000_000_000
_SEPARATOR = "\x1f"


def _spark_path(store: Store, path: str) -> str:
    if "://" not in store.root_text:
        return f"file://{path}"
    scheme = store.root_text.split("://", 1)[0]
    return f"{'s3a' if scheme in ('s3', 's3a') else scheme}://{path}"


@contextmanager
def spark_session(master: str | None) -> Iterator[Any]:
    """A Spark session for one aggregation (local mode on every core unless a master URL is given)."""
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - pyspark is an optional extra
    except ImportError as e:
        raise UsageError("--engine spark needs pyspark: pip install 'synth[spark]' (and a Java runtime)") from e
    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName("synth-edges")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config("spark.sql.shuffle.partitions", "8")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def aggregate_spark(
    store: Store,
    settings: Settings,
    *,
    namespaces: Sequence[str] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    master: str | None = None,
) -> EdgeSet:
    """Edges computed on Spark; the same table as `synth.core.aggregate.aggregate` on the same store."""
    require_flows(store, since_ns, until_ns)
    files = [_spark_path(store, f.path) for f in store.files(since_ns, until_ns)]
    with spark_session(master) as spark:
        return _aggregate(spark, files, settings, namespaces, since_ns, until_ns)


def _aggregate(
    spark: Any,
    files: list[str],
    settings: Settings,
    namespaces: Sequence[str] | None,
    since_ns: int | None,
    until_ns: int | None,
) -> EdgeSet:
    from pyspark.sql import functions as F  # noqa: N812, PLC0415 - optional extra, its conventional name

    flows = spark.read.option("recursiveFileLookup", "true").parquet(*files)
    if since_ns is not None:
        flows = flows.where(F.col("time") >= since_ns)
    if until_ns is not None:
        flows = flows.where(F.col("time") < until_ns)
    accumulator = Accumulator(namespaces)
    _count_window(F, flows, accumulator)
    _remember_names(F, flows, accumulator)
    flows = _endpoint_columns(F, _with_owners(F, spark, flows), accumulator)
    _merge_partials(F, flows, accumulator, namespaces)
    return finish(accumulator, settings)


def _count_window(F: Any, flows: Any, accumulator: Accumulator) -> None:  # noqa: N803 - pyspark's functions
    stats = accumulator.stats
    totals = flows.agg(
        F.count(F.lit(1)).alias("n"),
        F.min("time").alias("first"),
        F.max("time").alias("last"),
        F.collect_set(F.floor(F.col("time") / _NS_PER_HOUR)).alias("hours"),
    ).first()
    stats.flows, stats.first_ns, stats.last_ns = totals["n"], totals["first"], totals["last"]
    stats.hours.update(int(h) for h in totals["hours"])


def _remember_names(F: Any, flows: Any, accumulator: Accumulator) -> None:  # noqa: N803
    """DNS names for addresses: from DNS answers (query → addresses) and from flows' destination names."""
    for row in (
        flows.where(F.size("dns_answers") > 0)
        .select("dns_query", F.explode("dns_answers").alias("address"))
        .distinct()
        .collect()
    ):
        if row["dns_query"] and row["address"]:
            accumulator.remember_name(row["address"], row["dns_query"])
    for row in (
        flows.where(F.size("dst_names") > 0).select("dst_ip", F.explode("dst_names").alias("name")).distinct().collect()
    ):
        if row["dst_ip"] and row["name"]:
            accumulator.remember_name(row["dst_ip"], row["name"])


def _with_owners(F: Any, spark: Any, flows: Any) -> Any:  # noqa: N803
    """Owners of pods whose source did not report one: a small table, guessed once per pod name here."""
    pods = [
        flows.where((F.col(f"{side}_kind") == "pod") & F.col(f"{side}_workload").isNull()).select(
            F.col(f"{side}_pod").alias("pod")
        )
        for side in ("src", "dst")
    ]
    unowned = pods[0].union(pods[1]).where(F.col("pod").isNotNull()).distinct().collect()
    owners = spark.createDataFrame(
        [(row["pod"], owner_of_pod(row["pod"])) for row in unowned] or [("", "")], "pod string, owner string"
    )
    for side in ("src", "dst"):
        flows = flows.join(
            F.broadcast(
                owners.withColumnRenamed("pod", f"{side}_owner_pod").withColumnRenamed("owner", f"{side}_owner")
            ),
            F.col(f"{side}_pod") == F.col(f"{side}_owner_pod"),
            "left",
        ).drop(f"{side}_owner_pod")
    return flows


def _endpoint_columns(F: Any, flows: Any, accumulator: Accumulator) -> Any:  # noqa: N803
    """Each side's labels key, owner group and address, as the embedded engine computes them."""
    for side in ("src", "dst"):
        is_pod = F.col(f"{side}_kind") == "pod"
        entries = F.transform(
            F.map_entries(F.col(f"{side}_labels")), lambda e: F.concat(e["key"], F.lit("="), e["value"])
        )
        flows = (
            flows.withColumn(
                f"{side}_labels_key",
                F.when(is_pod, F.coalesce(F.concat_ws(_SEPARATOR, entries), F.lit(""))).otherwise(""),
            )
            .withColumn(
                f"{side}_group",
                F.when(is_pod, F.coalesce(F.col(f"{side}_workload"), F.col(f"{side}_owner"), F.lit(""))).otherwise(""),
            )
            .withColumn(f"{side}_addr", F.when(is_pod, F.lit(None).cast("string")).otherwise(F.col(f"{side}_ip")))
            .withColumn(f"{side}_namespace", F.when(is_pod, F.col(f"{side}_namespace")).otherwise(F.lit(None)))
        )
        endpoints = (
            flows.where(is_pod)
            .select(
                f"{side}_namespace",
                f"{side}_group",
                f"{side}_labels_key",
                f"{side}_pod",
                F.map_entries(F.col(f"{side}_labels")).alias("entries"),
            )
            .dropDuplicates([f"{side}_namespace", f"{side}_group", f"{side}_labels_key", f"{side}_pod"])
        )
        for row in endpoints.collect():
            key = row[f"{side}_labels_key"]
            accumulator.labels.setdefault(key, tuple((e["key"], e["value"]) for e in row["entries"] or ()))
            accumulator.remember_endpoint(row[f"{side}_namespace"], row[f"{side}_group"], key, row[f"{side}_pod"])
    return flows


def _merge_partials(F: Any, flows: Any, accumulator: Accumulator, namespaces: Sequence[str] | None) -> None:  # noqa: N803
    """Replies and verdicts counted, requests grouped into endpoint-pair partials."""
    stats = accumulator.stats
    reply = F.coalesce(F.col("is_reply"), F.lit(False))
    allowed = F.col("verdict").isin(sorted(ALLOWED_VERDICTS))
    dropped = F.col("verdict") == "dropped"
    policy_drop = dropped & F.coalesce(F.col("drop_reason"), F.lit("")).isin(sorted(POLICY_DROP_REASONS))
    counts = flows.agg(
        F.sum(reply.cast("long")).alias("replies"),
        F.sum((~reply & dropped & ~policy_drop).cast("long")).alias("datapath"),
        F.sum((~reply & ~allowed & ~dropped).cast("long")).alias("unjudged"),
    ).first()
    stats.replies += counts["replies"] or 0
    stats.datapath_drops += counts["datapath"] or 0
    stats.unjudged += counts["unjudged"] or 0

    requests = flows.where(~reply).withColumn("allowed", allowed).where(allowed | policy_drop)
    if namespaces:
        wanted = sorted(set(namespaces))
        requests = requests.where(F.col("src_namespace").isin(wanted) | F.col("dst_namespace").isin(wanted))
    grouped = requests.groupBy(*GROUP_KEYS).agg(
        F.sum("count").alias("count_sum"),
        F.min("time").alias("time_min"),
        F.max("time").alias("time_max"),
        F.collect_set("src_pod").alias("src_pod_distinct"),
        F.collect_set("dst_pod").alias("dst_pod_distinct"),
        F.collect_set("dst_service").alias("dst_service_distinct"),
    )
    for row in grouped.collect():  # times are epoch nanoseconds (nanosAsLong), as merge_row takes them
        accumulator.merge_row(row.asDict())
