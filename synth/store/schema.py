"""Arrow schemas of the two tables the stages exchange: stored flows and aggregated edges.

`FLOW_SCHEMA` is what every source writes and the store's reader returns. `EDGE_SCHEMA` is what
aggregation returns and generation reads. `SCHEMA_VERSION` is written into every Parquet file; a
reader refuses files of a version it does not know instead of misreading them.

Version 2 keeps the partition column (`source`) in the file paths only (`FILE_SCHEMA`), so every
hive-aware reader (pyarrow datasets, pandas, DuckDB, Spark) opens the store unchanged; the store's
reader restores it from the path. Version 1 files also carried it inside and are still read.
Version 3 adds the HTTP request of L7 flows (`http_method`, `http_path`); the store's reader gives
older files those columns as nulls (`ADDED_COLUMNS`).
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3
READABLE_VERSIONS = frozenset({1, 2, 3})
#: columns whose value is the file's partition (`source=hubble/...`), kept in the path and not in the file
PARTITION_COLUMNS = ("source",)

VERDICTS = ("forwarded", "dropped", "audit", "redirected", "error", "unknown")
DIRECTIONS = ("ingress", "egress", "unknown")
PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6", "unknown")
KINDS = ("pod", "host", "remote-node", "kube-apiserver", "world", "ingress", "health", "unknown")
SOURCES = ("hubble", "calico")

# Verdicts that mean the traffic really happened (AUDIT: "would be dropped", so it is real traffic).
ALLOWED_VERDICTS = frozenset({"forwarded", "redirected", "audit"})
# Drop reasons that are policy decisions; any other drop is a datapath condition, not an attempt.
POLICY_DROP_REASONS = frozenset({"POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED", ""})

_DICT = pa.dictionary(pa.int32(), pa.string())
_LABELS = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("ns", tz="UTC")


def _endpoint_fields(side: str) -> list[pa.Field]:
    return [
        pa.field(f"{side}_ip", pa.string()),
        pa.field(f"{side}_kind", _DICT, nullable=False),
        pa.field(f"{side}_namespace", pa.string()),
        pa.field(f"{side}_pod", pa.string()),
        pa.field(f"{side}_workload", pa.string()),
        pa.field(f"{side}_labels", _LABELS),
        pa.field(f"{side}_ns_labels", _LABELS),
    ]


FLOW_SCHEMA = pa.schema(
    [
        pa.field("time", _TIME, nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("source", _DICT, nullable=False),
        pa.field("verdict", _DICT, nullable=False),
        pa.field("drop_reason", _DICT),
        pa.field("direction", _DICT, nullable=False),
        pa.field("is_reply", pa.bool_()),
        pa.field("protocol", _DICT, nullable=False),
        pa.field("src_port", pa.int32()),
        pa.field("dst_port", pa.int32()),
        *_endpoint_fields("src"),
        *_endpoint_fields("dst"),
        pa.field("dst_names", pa.list_(pa.string())),
        pa.field("dns_query", pa.string()),
        pa.field("dns_answers", pa.list_(pa.string())),
        pa.field("http_method", pa.string()),
        pa.field("http_path", pa.string()),
        pa.field("dst_service", pa.string()),
        pa.field("dst_service_port", pa.int32()),
        pa.field("node", pa.string()),
        pa.field("policies", pa.list_(pa.string())),
        pa.field("flows_started", pa.int64()),
        pa.field("flows_completed", pa.int64()),
    ],
    metadata={b"synth.schema_version": str(SCHEMA_VERSION).encode()},
)
"""One row per flow, or per pre-aggregated flow record (`count` > 1)."""

ADDED_COLUMNS = {3: ("http_method", "http_path")}
"""Columns each schema version added, by version: files written before it read them as nulls."""

FILE_SCHEMA = pa.schema(
    [field for field in FLOW_SCHEMA if field.name not in PARTITION_COLUMNS], metadata=FLOW_SCHEMA.metadata
)
"""The columns inside each stored file: the flow schema without the partition columns."""

EDGE_SCHEMA = pa.schema(
    [
        pa.field("src_kind", pa.string(), nullable=False),
        pa.field("src_namespace", pa.string()),
        pa.field("src_selector", pa.string(), nullable=False),
        pa.field("dst_kind", pa.string(), nullable=False),
        pa.field("dst_namespace", pa.string()),
        pa.field("dst_selector", pa.string(), nullable=False),
        pa.field("protocol", pa.string(), nullable=False),
        pa.field("port", pa.int32()),
        pa.field("allowed", pa.bool_(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("first_seen", _TIME, nullable=False),
        pa.field("last_seen", _TIME, nullable=False),
        pa.field("src_workloads", pa.list_(pa.string()), nullable=False),
        pa.field("dst_workloads", pa.list_(pa.string()), nullable=False),
        pa.field("src_pods", pa.list_(pa.string()), nullable=False),
        pa.field("dst_pods", pa.list_(pa.string()), nullable=False),
        pa.field("dst_names", pa.list_(pa.string()), nullable=False),
        pa.field("dst_services", pa.list_(pa.string()), nullable=False),
        pa.field("verdicts", pa.map_(pa.string(), pa.int64()), nullable=False),
    ]
)
"""One row per label-level dependency: who talks to whom, on which port, how often, when.

`allowed` splits real traffic (forwarded, redirected, audit) from denied attempts (policy drops),
so a denied attempt never widens the evidence of an allow rule.
"""

EDGE_KEY = (
    "src_kind",
    "src_namespace",
    "src_selector",
    "dst_kind",
    "dst_namespace",
    "dst_selector",
    "protocol",
    "port",
    "allowed",
)
