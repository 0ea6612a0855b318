"""Importing Calico flow data: flows.log at every aggregation level, Elasticsearch, Goldmane, Whisker."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from conftest import FIXTURES, ROOT, Run

from synth.app.flows import aggregate_store
from synth.base.config import Settings
from synth.base.errors import BadRecord, UsageError
from synth.core.enforceability import unenforceable_reason
from synth.sources.calico.files import CalicoFileSource, detect_format
from synth.sources.calico.records import PLACEHOLDERS
from synth.sources.reader import InputFile
from synth.store.dataset import Store
from synth.store.schema import FLOW_SCHEMA

CALICO = FIXTURES / "calico"
BAD = CALICO / "bad"
T0 = 1795168800 * 1_000_000_000  # 2026-11-20T10:00:00Z in ns


def read_all(path: str | Path, **options: Any) -> tuple[list[dict[str, Any]], CalicoFileSource]:
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file, **options)
        batches = list(source.batches())
    return pa.Table.from_batches(batches, schema=FLOW_SCHEMA).to_pylist(), source


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its null and empty columns, time as integer nanoseconds."""
    result = {k: v for k, v in row.items() if v not in (None, [], ())}
    result["time"] = int(row["time"].value)
    return result


# ------------------------------------------------------------------------------------------------ formats

FORMATS = {
    "flows-level0.log": ("flowlog", 6),
    "flows-level1.log": ("flowlog", 3),
    "flows-level2.log": ("flowlog", 6),
    "flows-level3.log": ("flowlog", 1),
    "es-search.json": ("elasticsearch", 3),
    "es-scroll.json": ("elasticsearch", 6),
    "es-scroll.ndjson": ("elasticsearch", 6),
    "es-sources.ndjson": ("elasticsearch", 3),
    "es-hits.ndjson": ("elasticsearch", 3),
    "goldmane.ndjson": ("goldmane", 5),
    "goldmane-list.json": ("goldmane", 1),
    "whisker-items.json": ("whisker", 4),
    "whisker-watch.sse": ("whisker", 4),
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in CALICO.iterdir() if p.is_file()) == sorted(FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_imports_without_skips(name: str) -> None:
    fmt, flows = FORMATS[name]
    rows, source = read_all(CALICO / name)
    assert source.stats.skips == [] and source.stats.skipped == 0
    assert (source.format, len(rows), source.stats.flows) == (fmt, flows, flows)
    assert source.facts()["format"] == fmt
    assert all(r["source"] == "calico" and r["is_reply"] is False and r["src_ns_labels"] == [] for r in rows)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_forcing_the_detected_format_changes_nothing(name: str) -> None:
    detected, _ = read_all(CALICO / name)
    forced, _ = read_all(CALICO / name, format=FORMATS[name][0])
    assert forced == detected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"start_time": 1, "proto": "tcp", "source_name_aggr": "-"}, "flowlog"),
        ({"start_time": 1, "proto": "tcp", "@timestamp": 1000, "host": "n"}, "elasticsearch"),
        ({"took": 1, "hits": {"hits": []}}, "elasticsearch"),
        ({"_index": "tigera_secure_ee_flows.c.1", "_source": {}}, "elasticsearch"),
        ({"error": {"type": "x"}, "status": 404}, "elasticsearch"),
        ({"Key": {}, "start_time": 1}, "goldmane"),
        ({"id": "1", "flow": {"Key": {}}}, "goldmane"),
        ({"meta": {}, "flows": []}, "goldmane"),
        ({"items": []}, "whisker"),
        ({"source_name": "a", "protocol": "tcp", "reporter": "Src"}, "whisker"),
        ({"flow": {"verdict": "FORWARDED"}, "node_name": "n"}, None),  # a Hubble record
    ],
)
def test_format_detection_from_the_first_record_keys(record: dict[str, Any], expected: str | None) -> None:
    assert detect_format(record) == expected


def test_forced_format_skips_records_of_another_kind_and_names_their_keys(
    tmp_path: Path, synth: Callable[..., Run]
) -> None:
    rows, source = read_all(CALICO / "flows-level1.log", format="goldmane")
    assert rows == [] and source.stats.skipped == 3
    assert source.stats.skips[0].reason.startswith("not a Goldmane flow (keys: action, bytes_in, bytes_out")
    result = synth("import", "calico", "--format", "whisker", CALICO / "goldmane.ndjson", "--store", tmp_path)
    assert result.code == 3 and "no flow could be read (5 records skipped" in result.err
    with (
        pytest.raises(UsageError, match="unknown Calico format 'csv'"),
        InputFile(str(CALICO / "goldmane.ndjson")) as f,
    ):
        CalicoFileSource(f, format="csv")


def test_hubble_data_is_refused_with_a_hint(tmp_path: Path, synth: Callable[..., Run]) -> None:
    result = synth("import", "calico", BAD / "not-flow-data.json", "--store", tmp_path)
    assert result.code == 3 and "use --format to force one" in result.err


# ------------------------------------------------------------------------------------------------ mapping


def test_every_field_of_a_level_0_record_is_mapped() -> None:
    rows, _ = read_all(CALICO / "flows-level0.log")
    assert plain(rows[0]) == {
        "time": T0,
        "count": 1,
        "source": "calico",
        "verdict": "forwarded",
        "direction": "egress",
        "is_reply": False,
        "protocol": "TCP",
        "src_port": 41234,
        "dst_port": 8080,
        "src_ip": "10.244.1.23",
        "src_kind": "pod",
        "src_namespace": "shop",
        "src_pod": "frontend-7d9f8b6c5d-x2x4z",
        "src_labels": [("app", "frontend"), ("pod-template-hash", "7d9f8b6c5d"), ("tier", "web")],
        "dst_ip": "10.244.2.31",
        "dst_kind": "pod",
        "dst_namespace": "shop",
        "dst_pod": "checkout-5c8d9f7b6d-q7v2p",
        # projectcalico.org/namespace is dropped
        "dst_labels": [("app", "checkout"), ("pod-template-hash", "5c8d9f7b6d")],
        "dst_service": "shop/checkout",
        "dst_service_port": 80,
        "policies": [
            "enforced:0|security|security.baseline|pass|2",
            "enforced:1|default|shop/knp.default.checkout-ingress|allow|0",
            "pending:0|default|shop/knp.default.checkout-ingress|allow|0",
        ],
        "flows_started": 1,
        "flows_completed": 1,
    }
    assert rows[1]["direction"] == "ingress"  # reporter dst
    world = rows[2]
    assert (world["dst_kind"], world["dst_ip"], world["dst_names"]) == (
        "world",
        "203.0.113.10",
        ["api.cardprocessor.example.com"],
    )
    assert (rows[3]["src_kind"], rows[3]["src_ip"]) == ("world", "10.0.1.11")  # pvt bucket, IP kept at level 0
    assert (rows[4]["protocol"], rows[4]["dst_service"], rows[4]["dst_service_port"]) == (
        "UDP",
        "kube-system/kube-dns",
        53,
    )
    assert (rows[5]["protocol"], rows[5]["src_port"], rows[5]["dst_port"]) == ("ICMPv4", None, None)


def test_level_1_drops_source_ports_keeps_ips_and_maps_network_sets_and_host_endpoints() -> None:
    rows, _ = read_all(CALICO / "flows-level1.log")
    allowed, denied, to_host = rows
    assert (allowed["src_port"], allowed["src_ip"], allowed["count"]) == (None, "10.244.1.23", 12)
    assert (allowed["flows_started"], allowed["flows_completed"]) == (4, 3)
    assert plain(denied) | {"src_labels": None} == {
        "time": T0,
        "count": 3,
        "source": "calico",
        "verdict": "dropped",
        "drop_reason": "POLICY_DENIED",
        "direction": "egress",
        "is_reply": False,
        "protocol": "TCP",
        "dst_port": 443,
        "src_ip": "10.244.1.40",
        "src_kind": "pod",
        "src_namespace": "payments",
        "src_pod": "reconcile-29480880-k4m2x",
        "src_labels": None,
        "dst_ip": "203.0.113.11",
        "dst_kind": "world",
        "dst_namespace": "payments",
        "dst_workload": "NetworkSet/card-processors",
        "dst_labels": [("vendor", "cardco")],
        "policies": ["all:0|default|payments/knp.default.default-deny|deny|-1"],
        "flows_started": 3,
        "flows_completed": 0,
    }
    assert (to_host["src_kind"], to_host["src_ip"]) == ("world", "198.51.100.7")
    assert (to_host["dst_kind"], to_host["dst_ip"], to_host["dst_workload"]) == (
        "host",
        "10.0.1.11",
        "HostEndpoint/prod-worker-1a-eth0",
    )
    assert to_host["dst_pod"] is None and to_host["dst_namespace"] is None


def test_level_2_keeps_aggregated_names_and_hides_world_addresses() -> None:
    rows, _ = read_all(CALICO / "flows-level2.log")
    src, _, to_pub, from_pvt, to_set, from_host = rows
    assert (src["src_pod"], src["dst_pod"], src["src_ip"], src["dst_ip"]) == (
        "frontend-7d9f8b6c5d-*",
        "checkout-5c8d9f7b6d-*",
        None,
        None,
    )
    assert src["dst_labels"] == [("app", "checkout")] and src["count"] == 40
    assert (to_pub["dst_kind"], to_pub["dst_ip"], to_pub["dst_names"]) == (
        "world",
        None,
        ["api.cardprocessor.example.com"],  # the "-" entry is dropped
    )
    assert (from_pvt["src_kind"], from_pvt["src_ip"], from_pvt["dst_service"]) == ("world", None, None)
    assert (to_set["dst_kind"], to_set["dst_ip"], to_set["dst_namespace"], to_set["dst_workload"]) == (
        "world",
        None,
        None,
        "GlobalNetworkSet/card-processors",
    )
    assert (from_host["src_kind"], from_host["src_workload"], from_host["src_ip"]) == (
        "host",
        "HostEndpoint/prod-worker-1a",
        None,
    )


def test_level_3_has_no_destination_port() -> None:
    rows, _ = read_all(CALICO / "flows-level3.log")
    assert [(r["dst_port"], r["verdict"], r["direction"], r["count"]) for r in rows] == [
        (None, "dropped", "ingress", 7)
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_placeholders_never_become_labels_names_namespaces_or_addresses(name: str) -> None:
    rows, _ = read_all(CALICO / name)
    for row in rows:
        for side in ("src", "dst"):
            for column in ("namespace", "pod", "ip", "workload"):
                assert row[f"{side}_{column}"] not in PLACEHOLDERS, (side, column, row)
            for key, value in row[f"{side}_labels"]:
                assert key not in PLACEHOLDERS and not key.startswith("projectcalico.org/")
                assert value not in ("-", "*")
        assert not set(row["dst_names"]) & PLACEHOLDERS
        assert row["dst_service"] is None or "-" not in row["dst_service"].split("/")


def test_elasticsearch_exports_give_the_flow_log_rows_plus_the_node() -> None:
    flowlog, _ = read_all(CALICO / "flows-level2.log")
    search, _ = read_all(CALICO / "es-search.json")
    scroll, _ = read_all(CALICO / "es-scroll.json")
    scroll_ndjson, _ = read_all(CALICO / "es-scroll.ndjson")
    assert search == [{**row, "node": "prod-worker-1a"} for row in flowlog[:3]]
    assert scroll == [{**row, "node": "prod-worker-1b"} for row in flowlog]
    assert scroll_ndjson == scroll
    level1, _ = read_all(CALICO / "flows-level1.log")
    sources, _ = read_all(CALICO / "es-sources.ndjson")
    hits, _ = read_all(CALICO / "es-hits.ndjson")
    assert sources == hits == [{**row, "node": "prod-worker-1c"} for row in level1]


def test_goldmane_counts_policy_hits_and_endpoint_types() -> None:
    rows, _ = read_all(CALICO / "goldmane.ndjson")
    src, dst, to_pub, denied, to_pvt = rows
    assert (src["count"], src["flows_started"], src["flows_completed"]) == (3, 2, 2)  # num_connections_live
    assert (src["direction"], dst["direction"]) == ("egress", "ingress")
    assert (src["src_pod"], src["src_ip"], src["src_port"]) == ("frontend-7d9f8b6c5d-*", None, None)
    assert (src["dst_service"], src["dst_service_port"], src["dst_port"]) == ("shop/checkout", 80, 8080)
    assert src["policies"] == [
        "enforced:0|security|gnp:baseline|pass|2",
        "enforced:1|default|knp:shop/checkout-ingress|allow|0",
        "pending:0|default|knp:shop/checkout-ingress|allow|0",
    ]
    assert (to_pub["dst_kind"], to_pub["dst_ip"], to_pub["dst_namespace"]) == ("world", None, None)
    assert (denied["verdict"], denied["drop_reason"], denied["count"]) == ("dropped", "POLICY_DENIED", 3)
    assert denied["dst_workload"] == "NetworkSet/card-processors" and denied["dst_namespace"] == "payments"
    assert denied["policies"] == ["enforced:0|default|knp:payments/default-deny|deny|-1"]  # EndOfTier + trigger
    assert to_pvt["policies"] == ["enforced:0|__PROFILE__|pro:kns.monitoring|allow|0"]
    assert to_pvt["src_pod"] == "prometheus-k8s-0" and to_pvt["src_labels"] == []


def test_goldmane_protojson_listing_equals_the_emitter_line() -> None:
    listing, _ = read_all(CALICO / "goldmane-list.json")
    emitted, _ = read_all(CALICO / "goldmane.ndjson")
    expected = {**emitted[0], "dst_service": None, "dst_service_port": None, "flows_completed": None}
    expected["policies"] = ["enforced:1|default|knp:shop/checkout-ingress|allow|0"]
    assert listing == [expected]


def test_whisker_items_and_sse_watch_give_the_same_rows() -> None:
    items, _ = read_all(CALICO / "whisker-items.json")
    watch, _ = read_all(CALICO / "whisker-watch.sse")
    assert items == watch
    src, _, to_public, denied = items
    assert (src["src_labels"], src["count"], src["dst_service"]) == ([("app", "frontend"), ("tier", "web")], 1, None)
    assert (to_public["dst_kind"], to_public["dst_ip"], to_public["dst_pod"]) == ("world", None, None)
    assert (denied["src_kind"], denied["verdict"], denied["direction"]) == ("world", "dropped", "ingress")
    assert denied["policies"] == ["enforced:0|default|knp:shop/checkout-ingress|deny|-1"]


def test_gzip_and_rotated_files(tmp_path: Path) -> None:
    expected, _ = read_all(CALICO / "flows-level2.log")
    rotated = tmp_path / "flows.log.1.gz"
    rotated.write_bytes(gzip.compress((CALICO / "flows-level2.log").read_bytes()))
    rows, _ = read_all(rotated)
    assert rows == expected


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth: Callable[..., Run]) -> None:
    data = (CALICO / "whisker-watch.sse").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    result = synth("import", "calico", "-", "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert "<stdin>: 4 flows imported" in result.out


# ------------------------------------------------------------------------------------------------ edges


def edges(synth: Callable[..., Run], store: Path) -> list[dict[str, Any]]:
    result = synth("edges", "-o", "json", "--store", store)
    assert result.code == 0, result.err
    parsed: list[dict[str, Any]] = json.loads(result.out)
    return parsed


@pytest.mark.parametrize(("name", "flows"), [("flows-level0.log", 1), ("flows-level2.log", 40), ("goldmane.ndjson", 3)])
def test_src_and_dst_copies_of_a_connection_count_once(
    name: str, flows: int, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    store = tmp_path / "store"
    assert synth("import", "calico", CALICO / name, "--store", store).code == 0
    found = [
        e
        for e in edges(synth, store)
        if e["src_selector"] == "app=frontend" and e["dst_selector"] == "app=checkout" and e["port"] == 8080
    ]
    assert [(e["count"], e["allowed"]) for e in found] == [(flows, True)]


def test_unenforceable_edges_name_the_felix_setting(tmp_path: Path, synth: Callable[..., Run]) -> None:
    store = tmp_path / "store"
    for name in ("flows-level2.log", "flows-level3.log", "flows-level1.log"):
        assert synth("import", "calico", CALICO / name, "--store", store).code == 0
    reasons = {
        (e.src.kind, e.src.selector, e.dst.kind, e.dst.selector, e.port): unenforceable_reason(e)
        for e in aggregate_store(Store(str(store)), Settings()).edges
    }
    exact = reasons[("pod", "app=frontend", "pod", "app=checkout", 8080)]
    to_pub = reasons[("pod", "app=checkout", "world", "", 443)]
    from_pvt = reasons[("world", "", "pod", "app=checkout", 8080)]
    no_port = reasons[("pod", "app=frontend", "pod", "app=checkout", None)]
    to_set_by_ip = reasons[("pod", "app.kubernetes.io/name=reconcile", "world", "203.0.113.11/32", 443)]
    assert exact is None and to_set_by_ip is None
    assert to_pub is not None and "destination is outside the cluster" in to_pub
    assert "flowLogsFileAggregationKindForAllowed to 1 (or 0)" in to_pub
    assert from_pvt is not None and from_pvt.startswith("the source is outside the cluster")
    assert no_port is not None and "flowLogsFileAggregationKindForDenied to 2 or lower" in no_port


# ------------------------------------------------------------------------------------------------ bad input

# file → (exit code, the line the user sees)
BAD_INPUTS = {
    "all-bad.log": (
        3,
        "synth: error: {path}: no flow could be read (2 records skipped; first: {path}:1: field proto: "
        'unknown protocol "icmp7")',
    ),
    "bad-json-line.log": (
        0,
        "  skipped {path}:2: not valid JSON (unexpected control character in string: line 1 column 121 (char 120))",
    ),
    "empty.log": (3, "synth: error: {path}: empty input, no records"),
    "es-bad-hit.json": (0, '  skipped {path}:1: hits.hits[1]: field dest_port: expected an integer, got "x"'),
    "es-error.json": (
        3,
        "synth: error: {path}:1: Elasticsearch returned an error (status 404): index_not_found_exception: no such "
        "index [tigera_secure_ee_flows.cluster.*]; check the index pattern (tigera_secure_ee_flows.*), the query "
        "and the credentials, then export again",
    ),
    "es-no-source.json": (
        0,
        "  skipped {path}:1: hits.hits[1]: no _source (the search excluded it; export without _source filtering)",
    ),
    "es-scroll-error.ndjson": (
        3,
        "synth: error: {path}:2: Elasticsearch returned an error (status 404): search_phase_execution_exception: "
        "all shards failed; check the index pattern (tigera_secure_ee_flows.*), the query and the credentials, "
        "then export again",
    ),
    "flowlog-bad-action.log": (0, '  skipped {path}:2: field action: expected "allow" or "deny", got "permit"'),
    "flowlog-bad-domains.log": (
        0,
        '  skipped {path}:2: field dest_domains: expected a list of strings, got "api.example.com"',
    ),
    "flowlog-bad-ip.log": (0, '  skipped {path}:2: field source_ip: not an IP address: "10.244.1.999"'),
    "flowlog-bad-labels.log": (
        0,
        '  skipped {path}:2: field source_labels.labels: expected a list of "key=value" strings, got "app=frontend"',
    ),
    "flowlog-bad-num-flows.log": (0, "  skipped {path}:2: field num_flows: expected a non-negative integer, got -3"),
    "flowlog-bad-policies.log": (
        0,
        "  skipped {path}:2: field policies.enforced_policies: expected a list of strings, got [3]",
    ),
    "flowlog-bad-port.log": (0, '  skipped {path}:2: field dest_port: expected an integer, got "x"'),
    "flowlog-bad-proto.log": (0, '  skipped {path}:2: field proto: unknown protocol "icmp7"'),
    "flowlog-bad-reporter.log": (
        0,
        '  skipped {path}:2: field reporter: expected "src", "dst" or "fwd", got "both"',
    ),
    "flowlog-bad-time.log": (0, '  skipped {path}:2: field start_time: expected Unix seconds, got "yesterday"'),
    "flowlog-bad-type.log": (
        0,
        '  skipped {path}:2: field source_type: expected "wep", "hep", "ns" or "net", got "pod"',
    ),
    "flowlog-missing-time.log": (0, "  skipped {path}:2: field start_time: missing"),
    "flowlog-port-range.log": (0, "  skipped {path}:2: field dest_port: expected a port number (0-65535), got 70000"),
    "goldmane-bad-action.ndjson": (
        0,
        "  skipped {path}:2: field Key.action: expected one of 0 (ActionUnspecified), 1 (Allow), 2 (Deny), "
        "3 (Pass), got 7",
    ),
    "goldmane-bad-labels.ndjson": (
        0,
        '  skipped {path}:2: field source_labels: expected {{"labels": [...]}}, a list of "key=value", a map or '
        'a " | "-joined string, got 5',
    ),
    "goldmane-bad-policy-kind.ndjson": (
        0,
        "  skipped {path}:2: field Key.policies.enforced_policies[0].kind: expected one of 1 (CalicoNetworkPolicy), "
        "2 (GlobalNetworkPolicy), 3 (StagedNetworkPolicy), 4 (StagedGlobalNetworkPolicy), "
        "5 (StagedKubernetesNetworkPolicy), 6 (NetworkPolicy), 7 (AdminNetworkPolicy), "
        "8 (BaselineAdminNetworkPolicy), 9 (Profile), 10 (EndOfTier), 11 (ClusterNetworkPolicy), got 42",
    ),
    "goldmane-bad-port.ndjson": (0, '  skipped {path}:2: field Key.dest_port: expected an integer, got "x"'),
    "goldmane-bad-type.ndjson": (
        0,
        "  skipped {path}:2: field Key.dest_type: expected one of 0 (EndpointTypeUnspecified), 1 (WorkloadEndpoint), "
        "2 (HostEndpoint), 3 (NetworkSet), 4 (Network), got 5",
    ),
    "goldmane-missing-key.ndjson": (
        0,
        "  skipped {path}:2: not a Goldmane flow (keys: bytes_in, bytes_out, dest_labels, end_time, "
        "num_connections_completed, num_connections_live)",
    ),
    "not-a-flowlog-record.log": (0, "  skipped {path}:2: not a Calico flows.log record (keys: hello)"),
    "not-an-object.log": (0, "  skipped {path}:2: expected a JSON object, got list"),
    "not-flow-data.json": (
        3,
        "synth: error: {path}:1: not Calico flow data (keys: IP, destination, source, time, verdict); expected "
        "flows.log, Elasticsearch, Goldmane or whisker-backend JSON (use --format to force one)",
    ),
    "truncated.log.gz": (
        3,
        "synth: error: {path}: truncated or corrupt gzip data (Compressed file ended before the "
        "end-of-stream marker was reached)",
    ),
    "whisker-bad-action.json": (
        0,
        "  skipped {path}:1: items[1]: field action: expected one of 0 (ActionUnspecified), 1 (Allow), 2 (Deny), "
        '3 (Pass), got "Maybe"',
    ),
    "whisker-bad-event.sse": (
        0,
        "  skipped {path}:3: event data is not valid JSON (unexpected end of data: line 1 column 61 (char 60))",
    ),
    "whisker-bad-time.sse": (0, '  skipped {path}:3: field start_time: not an RFC 3339 timestamp: "yesterday"'),
    "whisker-sse-error.sse": (
        0,
        "  skipped {path}:3: the server sent an error: rpc error: code = Unavailable desc = connection refused",
    ),
}
# Good flows left beside the bad record (responses hold several flows).
_GOOD_FLOWS = {"es-bad-hit.json": 2, "es-no-source.json": 2, "whisker-bad-action.json": 3}


def test_every_bad_input_fixture_has_an_expected_message() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_INPUTS)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_its_exact_message(name: str, tmp_path: Path, synth: Callable[..., Run]) -> None:
    code, message = BAD_INPUTS[name]
    path = BAD / name
    store = tmp_path / "store"
    result = synth("import", "calico", path, "--store", store)
    assert result.code == code, result.err
    assert message.format(path=path) in result.err.splitlines()
    assert "Traceback" not in result.err
    flows = sum(b.num_rows for b in Store(str(store)).read())
    assert flows == (_GOOD_FLOWS.get(name, 1) if code == 0 else 0)  # skips keep good flows; errors write nothing


@pytest.mark.parametrize("name", [n for n, (code, _) in BAD_INPUTS.items() if code == 0])
def test_strict_stops_at_the_first_bad_record_and_writes_nothing(
    name: str, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    store = tmp_path / "store"
    result = synth("import", "calico", BAD / name, "--strict", "--store", store)
    expected = BAD_INPUTS[name][1].strip().removeprefix("skipped ").format(path=BAD / name)
    assert result.code == 3
    assert result.err.strip() == f"synth: error: {expected}"
    assert list(Store(str(store)).read()) == []


def test_strict_raises_bad_record_with_the_place() -> None:
    with pytest.raises(BadRecord) as raised:
        read_all(BAD / "es-bad-hit.json", strict=True)
    assert raised.value.where.endswith("es-bad-hit.json:1")
    assert raised.value.reason.startswith("hits.hits[1]: field dest_port")


# ------------------------------------------------------------------------------------------------ scale


def _gen_calico() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_calico", ROOT / "scripts" / "gen_calico.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_generated_flow_logs_stream_in_bounded_batches(level: int, tmp_path: Path) -> None:
    path = tmp_path / "flows.log"
    with path.open("w") as out:
        assert _gen_calico().write(out, 5000, level, 7) == 5000
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file, batch_rows=1000)
        sizes = [batch.num_rows for batch in source.batches()]
    assert sum(sizes) == 5000 and max(sizes) <= 1000 and source.stats.skipped == 0
