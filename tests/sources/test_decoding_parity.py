"""One decoding per source: a flow stores the same row whichever path read it.

Hubble: the file importer's fast path (msgspec structs), its general path (dicts; forced here by
switching the fast decoder off) and the live gRPC decoder (the JSON converted to the protobuf
`GetFlowsResponse` a relay sends, as the stand-in relay does; given all responses at once, which it
parses together, and one at a time) must store identical rows, column by column, and count the
same lost and other events. Calico: a Goldmane emitter NDJSON line and the
same Flow from Goldmane's gRPC API must store identical rows.

The hand-written records cover what the paths used to decide each on their own: enums by name and by
number (verdict, traffic_direction, Type, drop_reason_desc), `is_reply` absent/false/true and the
deprecated `reply`, L7 DNS answers, lost events, policies, aggregates, endpoint kinds and labels.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import FIXTURES, ROOT, SAMPLE_FLOWS, shared_captures
from google.protobuf import json_format

from synth._proto.flow import flow_pb2
from synth._proto.goldmane import api_pb2
from synth.base.errors import BadRecord, InputError
from synth.sources.calico.files import CalicoFileSource
from synth.sources.calico.stream import GoldmaneDecoder
from synth.sources.columns import FlowColumns
from synth.sources.hubble.enums import DROP_REASONS, TRAFFIC_DIRECTIONS, VERDICTS
from synth.sources.hubble.files import HubbleFileSource, parse_hubble_block, parse_time_ns
from synth.sources.hubble.native import NativeHubbleBlocks
from synth.sources.hubble.stream import FlowDecoder
from synth.sources.interface import SourceStats
from synth.sources.parallel import BlockResult
from synth.sources.reader import InputFile
from synth.store.schema import FLOW_SCHEMA
from synth.testing.hubble_relay import json_to_response

Row = dict[str, Any]
Decoded = tuple[list[Row], SourceStats]
_GONE = object()  # a field value that removes the field from the base record


# ------------------------------------------------------------------------------------------------ the paths


def _table_rows(batches: list[pa.RecordBatch]) -> list[Row]:
    rows: list[Row] = pa.Table.from_batches(batches, schema=FLOW_SCHEMA).to_pylist()
    return rows


def _write(lines: list[str], path: Path) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def hubble_file(lines: list[str], path: Path, monkeypatch: pytest.MonkeyPatch, *, general: bool) -> Decoded:
    """Rows of `synth import hubble` (one block) through the exact parser: its typed fast path or its general path."""
    _write(lines, path)
    with monkeypatch.context() as patch:
        if general:
            patch.setattr("synth.sources.hubble.files.fast_decode", lambda line: None)
        with InputFile(str(path)) as input_file:
            source = HubbleFileSource(input_file, jobs=1, block_size=1 << 30, native=False)
            batches = list(source.batches())
    return _table_rows(batches), source.stats


def native_block(data: bytes, *, strict: bool = False) -> BlockResult:
    """One block through the native (DuckDB) reader, whatever the number of lines."""
    blocks = NativeHubbleBlocks("input.json", strict, 65536, threads=2)
    try:
        return blocks.parse(1, data)
    finally:
        blocks.close()


def hubble_native(lines: list[str]) -> Decoded:
    """Rows of `synth import hubble` through the native reader."""
    result = native_block("".join(line + "\n" for line in lines).encode())
    return _table_rows(result.batches), result.stats


def relay_responses(lines: list[str]) -> list[bytes]:
    """Each record as the serialized GetFlowsResponse a relay sends."""
    return [json_to_response(json.loads(line)).SerializeToString() for line in lines]


def hubble_grpc(responses: list[bytes], *, per_call: int | None = None) -> Decoded:
    """Rows of `synth collect hubble`: each record as the relay's protobuf, through the collector's decoder.

    The decoder parses the responses it is given together; `per_call` hands them over that many at a
    time (one: each response parsed alone), so where batches begin and end cannot change a row.
    """
    decoder = FlowDecoder()
    cols = FlowColumns()
    step = per_call or max(len(responses), 1)
    for start in range(0, len(responses), step):
        decoder.take(cols, responses[start : start + step])
    return _table_rows([decoder.finish(cols)] if len(cols) else []), decoder.stats


def hubble_paths(lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Decoded]:
    """The same lines through the Hubble paths."""
    responses = relay_responses(lines)
    return {
        "file (native)": hubble_native(lines),
        "file (exact, fast path)": hubble_file(lines, tmp_path / "fast.json", monkeypatch, general=False),
        "file (general path)": hubble_file(lines, tmp_path / "general.json", monkeypatch, general=True),
        "gRPC": hubble_grpc(responses),
        "gRPC (one response per call)": hubble_grpc(responses, per_call=1),
    }


def goldmane_file(lines: list[str], path: Path) -> Decoded:
    """Rows of `synth import calico` for Goldmane emitter NDJSON."""
    _write(lines, path)
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file, format="goldmane")
        batches = list(source.batches())
    return _table_rows(batches), source.stats


def goldmane_grpc(results: list[api_pb2.FlowResult]) -> Decoded:
    """Rows of `synth collect calico`: serialized FlowResults (as Stream sends them) through its decoder."""
    decoder = GoldmaneDecoder()
    cols = FlowColumns()
    decoder.take(cols, [result.SerializeToString() for result in results])
    return _table_rows([decoder.finish(cols)] if len(cols) else []), decoder.stats


def goldmane_results(lines: list[str]) -> list[api_pb2.FlowResult]:
    """Each NDJSON line as the FlowResult Goldmane's gRPC API sends for it."""
    return [
        api_pb2.FlowResult(id=position, flow=json_format.ParseDict(json.loads(line), api_pb2.Flow()))
        for position, line in enumerate(lines, 1)
    ]


# ------------------------------------------------------------------------------------------------ comparing


def _order(row: Row) -> tuple[str, ...]:
    # Sorted by what no decoding decision touches first, then by everything, so a drift in one
    # column shows up in that column instead of reordering the rows.
    stable = ("time", "node", "src_ip", "src_port", "dst_ip", "dst_port")
    return (*(repr(row[name]) for name in stable), repr(sorted(row.items())))


def assert_same(paths: dict[str, Decoded]) -> list[Row]:
    """Every path stored the same rows (all FLOW_SCHEMA columns) and counted the same events."""
    (first_name, (first_rows, first_stats)), *others = paths.items()
    expected = sorted(first_rows, key=_order)
    problems = []
    for name, (rows, stats) in others:
        if len(rows) != len(expected):
            problems.append(f"{name}: {len(rows)} rows, {first_name}: {len(expected)}")
            continue
        got = sorted(rows, key=_order)
        for column in FLOW_SCHEMA.names:
            for position, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
                if mine[column] != theirs[column]:
                    where = f"{name} vs {first_name}: column {column}, row {position}"
                    problems.append(f"{where}: {mine[column]!r} != {theirs[column]!r}")
                    break
        for count in ("flows", "skipped", "lost_events", "lost_by_node", "other_events"):
            if getattr(stats, count) != getattr(first_stats, count):
                problems.append(
                    f"{name} vs {first_name}: {count} {getattr(stats, count)!r} != {getattr(first_stats, count)!r}"
                )
    assert not problems, "\n".join(problems)
    return expected


# ------------------------------------------------------------------------------------------------ Hubble records


def test_enum_tables_are_the_compiled_protos() -> None:
    # The file importer reads these tables without importing protobuf; new stubs must not outgrow them.
    for table, enum in ((DROP_REASONS, flow_pb2.DropReason), (VERDICTS, flow_pb2.Verdict),
                        (TRAFFIC_DIRECTIONS, flow_pb2.TrafficDirection)):
        proto = {value.number: value.name for value in enum.DESCRIPTOR.values}
        names = {number: entry if isinstance(entry, str) else entry[0] for number, entry in table.items()}
        assert names == proto, enum.DESCRIPTOR.name


_POD_A = {
    "ID": 101,
    "identity": 30001,
    "namespace": "shop",
    "labels": [
        "k8s:app=checkout",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.namespace.labels.team=storefront",
        "k8s:io.cilium.k8s.policy.cluster=default",
        "k8s:io.cilium.k8s.policy.serviceaccount=checkout",
        "k8s:io.kubernetes.pod.namespace=shop",
    ],
    "pod_name": "checkout-7d9f8b6c5d-abcde",
    "workloads": [{"name": "checkout", "kind": "Deployment"}],
}
_POD_B = {
    "identity": 30002,
    "namespace": "payments",
    "labels": ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=payments"],
    "pod_name": "api-5c8d9f7b6d-fghij",
}
_BASE: dict[str, Any] = {
    "verdict": "FORWARDED",
    "IP": {"source": "10.0.1.5", "destination": "10.0.2.7", "ipVersion": "IPv4"},
    "l4": {"TCP": {"source_port": 41000, "destination_port": 8443}},
    "source": _POD_A,
    "destination": _POD_B,
    "Type": "L3_L4",
    "node_name": "node-a",
    "event_type": {"type": 4},
    "traffic_direction": "EGRESS",
}


def _time(n: int) -> str:
    return f"2026-11-20T10:00:{n // 1000 % 60:02d}.{n % 1000:03d}123456Z"


def flow(n: int, **fields: Any) -> dict[str, Any]:
    """A `{"flow": ...}` envelope: the base flow with `fields` set (or removed with _GONE), time n ms."""
    body = copy.deepcopy(_BASE)
    body["time"] = _time(n)
    for key, value in fields.items():
        if value is _GONE:
            body.pop(key, None)
        else:
            body[key] = value
    return {"flow": body, "node_name": "node-a", "time": body["time"]}


def _tcp(flags: dict[str, bool] | None = None, sport: int = 41000, dport: int = 8443) -> dict[str, Any]:
    ports: dict[str, Any] = {"source_port": sport, "destination_port": dport}
    if flags is not None:
        ports["flags"] = flags
    return {"TCP": ports}


def _endpoint(identity: int, labels: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"identity": identity, **fields}
    if labels is not None:
        found["labels"] = labels
    return found


# (name, record, the values every path must store for it; None for "not stored")
HUBBLE_CASES: list[tuple[str, dict[str, Any], Row | None]] = [
    # drop reasons: protojson prints a known one by name, an unknown one (or any, from some producers) by number
    ("drop_reason_desc 130 by number is stored by name",
     flow(1, verdict="DROPPED", drop_reason_desc=130), {"drop_reason": "INVALID_SOURCE_MAC"}),
    ("drop_reason_desc 130 by name", flow(2, verdict="DROPPED", drop_reason_desc="INVALID_SOURCE_MAC"),
     {"drop_reason": "INVALID_SOURCE_MAC"}),
    ("drop_reason_desc 133 by number", flow(3, verdict=2, drop_reason_desc=133), {"drop_reason": "POLICY_DENIED"}),
    ("drop_reason_desc 181 by name", flow(4, verdict="DROPPED", drop_reason_desc="POLICY_DENY"),
     {"drop_reason": "POLICY_DENY"}),
    ("drop_reason_desc 189 by number", flow(5, verdict="DROPPED", drop_reason_desc=189),
     {"drop_reason": "AUTH_REQUIRED"}),
    ("drop_reason_desc 205 by number (newest known)", flow(6, verdict="DROPPED", drop_reason_desc=205),
     {"drop_reason": "DROP_PUNT_PROXY"}),
    ("drop_reason_desc unknown number kept as its number", flow(7, verdict="DROPPED", drop_reason_desc=250),
     {"drop_reason": "250"}),
    ("drop_reason_desc 0 by number is no reason", flow(8, verdict="DROPPED", drop_reason_desc=0),
     {"drop_reason": None}),
    ("drop_reason_desc DROP_REASON_UNKNOWN is no reason",
     flow(9, verdict="DROPPED", drop_reason_desc="DROP_REASON_UNKNOWN"), {"drop_reason": None}),
    ("deprecated drop_reason 181 of a drop", flow(10, verdict="DROPPED", drop_reason=181),
     {"drop_reason": "POLICY_DENY"}),
    ("deprecated drop_reason 130 of a drop", flow(11, verdict="DROPPED", drop_reason=130),
     {"drop_reason": "INVALID_SOURCE_MAC"}),
    ("deprecated drop_reason of a forwarded flow is ignored", flow(12, drop_reason=133), {"drop_reason": None}),
    ("drop_reason_desc wins over drop_reason", flow(13, verdict="DROPPED", drop_reason=133, drop_reason_desc=181),
     {"drop_reason": "POLICY_DENY"}),
    # verdicts
    ("verdict by number", flow(20, verdict=1), {"verdict": "forwarded"}),
    ("verdict AUDIT", flow(21, verdict="AUDIT"), {"verdict": "audit"}),
    ("verdict REDIRECTED by number", flow(22, verdict=5), {"verdict": "redirected"}),
    ("verdict ERROR", flow(23, verdict="ERROR"), {"verdict": "error"}),
    ("verdict TRACED is no decision", flow(24, verdict="TRACED"), {"verdict": "unknown"}),
    ("verdict TRANSLATED by number is no decision", flow(25, verdict=7), {"verdict": "unknown"}),
    ("verdict unknown number", flow(26, verdict=99), {"verdict": "unknown"}),
    ("verdict absent", flow(27, verdict=_GONE), {"verdict": "unknown"}),
    # traffic direction
    ("traffic_direction INGRESS by number", flow(30, traffic_direction=1), {"direction": "ingress"}),
    ("traffic_direction EGRESS by name", flow(31, traffic_direction="EGRESS"), {"direction": "egress"}),
    ("traffic_direction 0", flow(32, traffic_direction=0), {"direction": "unknown"}),
    ("traffic_direction absent", flow(33, traffic_direction=_GONE), {"direction": "unknown"}),
    # flow types
    ("Type SOCK is not stored", flow(40, Type="SOCK"), None),
    ("Type 3 (SOCK) by number is not stored", flow(41, Type=3), None),
    ("Type L3_L4 by number", flow(42, Type=1), {"protocol": "TCP"}),
    # replies
    ("is_reply false", flow(50, is_reply=False, l4=_tcp({"SYN": True, "ACK": True})), {"is_reply": False}),
    ("is_reply true", flow(51, is_reply=True), {"is_reply": True}),
    ("is_reply absent, SYN opens", flow(52, l4=_tcp({"SYN": True}, 41001)), {"is_reply": False}),
    ("is_reply absent, SYN-ACK answers", flow(53, l4=_tcp({"SYN": True, "ACK": True}, 41002)), {"is_reply": True}),
    ("is_reply absent, nothing tells", flow(54, l4=_tcp({"ACK": True}, 41003)), {"is_reply": None}),
    ("deprecated reply true", flow(55, reply=True, l4=_tcp(None, 41004)), {"is_reply": True}),
    ("is_reply false wins over reply true", flow(56, reply=True, is_reply=False), {"is_reply": False}),
    ("deprecated reply false tells nothing", flow(57, reply=False, l4=_tcp(None, 41005)), {"is_reply": None}),
    # L7
    ("L7 DNS answer", flow(60, Type="L7", event_type={"type": 129}, l4=_tcp(None, 53, 41006),
                           l7={"type": "RESPONSE", "latency_ns": "2511568",
                               "dns": {"query": "api.example.com.", "ips": ["203.0.113.10", "203.0.113.11"],
                                       "ttl": 60, "qtypes": ["A"], "rrtypes": ["A"]}}),
     {"is_reply": True, "dns_query": "api.example.com.", "dns_answers": ["203.0.113.10", "203.0.113.11"]}),
    ("L7 DNS answer, types by number", flow(61, Type=2, l4=_tcp(None, 53, 41007),
                                            l7={"type": 2, "dns": {"query": "b.example.com.", "ips": ["2001:db8::1"]}}),
     {"is_reply": True, "dns_query": "b.example.com.", "dns_answers": ["2001:db8::1"]}),
    ("L7 DNS query", flow(62, Type="L7", l4=_tcp(None, 41008, 53), l7={"type": "REQUEST", "dns": {"query": "c."}}),
     {"is_reply": None, "dns_query": "c.", "dns_answers": []}),
    ("L7 HTTP", flow(63, Type="L7", is_reply=False, l7={"type": "REQUEST", "http": {"method": "GET", "url": "/"}}),
     {"dns_query": None, "http_method": "GET", "http_path": "/"}),
    ("L7 HTTP, the URL's path and query", flow(64, Type="L7", l7={"type": "REQUEST", "http": {
        "method": "post", "url": "http://cart.shop.svc:8080/api/v1/carts/42?expand=items#top", "protocol": "HTTP/1.1",
        "headers": [{"key": "X-Request-Id", "value": "3f1c"}]}}),
     {"http_method": "POST", "http_path": "/api/v1/carts/42?expand=items"}),
    ("L7 HTTP response", flow(65, Type="L7", l7={"type": "RESPONSE", "http": {
        "code": 200, "method": "GET", "url": "http://ratings:9080"}}),
     {"is_reply": True, "http_method": "GET", "http_path": "/"}),
    ("L7 HTTP without method or URL", flow(66, Type="L7", l7={"type": "REQUEST", "http": {"code": 0}}),
     {"http_method": None, "http_path": None}),
    ("L7 HTTP with a null record", flow(67, Type="L7", l7={"type": "REQUEST", "http": None}),
     {"http_method": None, "http_path": None}),
    # protocols and ports
    ("UDP", flow(70, l4={"UDP": {"source_port": 5353, "destination_port": 53}}), {"protocol": "UDP", "dst_port": 53}),
    ("SCTP", flow(71, l4={"SCTP": {"source_port": 5000, "destination_port": 36412}}), {"protocol": "SCTP"}),
    ("ICMPv4", flow(72, l4={"ICMPv4": {"type": 8}}), {"protocol": "ICMPv4", "src_port": None, "dst_port": None}),
    ("ICMPv6", flow(73, l4={"ICMPv6": {"type": 128}}), {"protocol": "ICMPv6"}),
    ("VRRP", flow(74, l4={"VRRP": {"type": 1, "vrid": 3}}), {"protocol": "unknown", "dst_port": None}),
    ("no l4", flow(75, l4=_GONE), {"protocol": "unknown", "src_port": None}),
    ("explicit zero ports are no ports", flow(76, l4={"UDP": {"source_port": 0, "destination_port": 0}}),
     {"src_port": None, "dst_port": None}),
    # policies, aggregates, services, names
    ("policies of all four lists",
     flow(80, egress_allowed_by=[{"name": "a", "namespace": "shop", "kind": "CiliumNetworkPolicy", "revision": "7"}],
          ingress_allowed_by=[{"name": "b", "namespace": "payments"}],
          egress_denied_by=[{"name": "c", "kind": "CiliumClusterwideNetworkPolicy"}],
          ingress_denied_by=[{"name": "d", "namespace": "payments", "kind": "CiliumNetworkPolicy"}]),
     {"policies": ["egress-allowed:CiliumNetworkPolicy:shop/a", "ingress-allowed:Policy:payments/b",
                   "egress-denied:CiliumClusterwideNetworkPolicy:/c",
                   "ingress-denied:CiliumNetworkPolicy:payments/d"]}),
    ("aggregate counts", flow(81, aggregate={"ingress_flow_count": 2, "egress_flow_count": 3,
                                             "unknown_direction_flow_count": 1}), {"count": 6}),
    ("empty aggregate counts one", flow(82, aggregate={}), {"count": 1}),
    ("destination service", flow(83, destination_service={"name": "api", "namespace": "payments"}),
     {"dst_service": "payments/api"}),
    ("destination service without namespace", flow(84, destination_service={"name": "api"}),
     {"dst_service": "/api"}),
    ("destination names", flow(85, destination_names=["api.example.com", "www.example.com"]),
     {"dst_names": ["api.example.com", "www.example.com"]}),
    # endpoints
    ("world by label", flow(90, destination=_endpoint(2, ["reserved:world"])), {"dst_kind": "world"}),
    ("world-ipv6 by label", flow(91, destination=_endpoint(10, ["reserved:world-ipv6"])), {"dst_kind": "world"}),
    ("world by identity alone", flow(92, destination=_endpoint(2)), {"dst_kind": "world"}),
    ("host by identity alone", flow(93, source=_endpoint(1)), {"src_kind": "host"}),
    ("host by label", flow(94, source=_endpoint(1, ["reserved:host"])), {"src_kind": "host"}),
    ("remote node", flow(95, source=_endpoint(6, ["reserved:remote-node"])), {"src_kind": "remote-node"}),
    ("health", flow(96, source=_endpoint(4, ["reserved:health"])), {"src_kind": "health"}),
    ("ingress proxy", flow(97, source=_endpoint(8, ["reserved:ingress"])), {"src_kind": "ingress"}),
    ("kube-apiserver wins over world",
     flow(98, destination=_endpoint(16777217, ["reserved:kube-apiserver", "reserved:world"])),
     {"dst_kind": "kube-apiserver"}),
    ("CIDR identity", flow(99, destination=_endpoint(16777218, ["cidr:203.0.113.0/24", "reserved:world"])),
     {"dst_kind": "world", "dst_labels": []}),
    ("fqdn label without world", flow(100, destination=_endpoint(300, ["fqdn:api.example.com"])),
     {"dst_kind": "world"}),
    ("local-scope identity without labels", flow(101, destination=_endpoint(16777219)), {"dst_kind": "world"}),
    ("unknown endpoint", flow(102, destination={}), {"dst_kind": "unknown", "dst_labels": []}),
    ("endpoint absent", flow(103, destination=_GONE), {"dst_kind": "unknown", "dst_namespace": None}),
    ("pod labels: bare, namespace, policy, repeated",
     flow(104, source=_endpoint(30003, ["app=bare", "k8s:tier=web", "k8s:tier=api", "container:x=y",
                                        "k8s:io.cilium.k8s.namespace.labels.team=a", "k8s:io.cilium.k8s.policy.x=y",
                                        "k8s:flag"], namespace="shop")),
     {"src_kind": "pod", "src_labels": [("app", "bare"), ("flag", ""), ("tier", "api")],
      "src_ns_labels": [("team", "a")]}),
    ("pod by name alone", flow(105, source=_endpoint(0, pod_name="lonely")), {"src_kind": "pod", "src_pod": "lonely"}),
    ("workload with kind", flow(106), {"src_workload": "Deployment/checkout", "dst_workload": None}),
    ("workload without kind", flow(107, source=_endpoint(30004, workloads=[{"name": "job-x"}], namespace="a")),
     {"src_workload": "job-x"}),
    ("workload without name", flow(108, source=_endpoint(30005, workloads=[{"kind": "Deployment"}], namespace="a")),
     {"src_workload": None}),
    ("empty strings are absent", flow(109, IP={"source": "", "destination": "10.0.2.7"}, node_name="",
                                      destination=_endpoint(30002, namespace="", pod_name="")),
     {"src_ip": None, "dst_namespace": None, "dst_pod": None, "node": "node-a"}),
]


def _hubble_extra() -> list[tuple[str, dict[str, Any], Row | None]]:
    """Records in other framings: envelope-only time, legacy bare flow, camelCase, events."""
    envelope_time = flow(200)
    del envelope_time["flow"]["time"]
    legacy = flow(201)["flow"]
    camel = flow(202, verdict="DROPPED", drop_reason_desc=133, traffic_direction=_GONE, node_name=_GONE)
    body = camel["flow"]
    body["dropReasonDesc"] = body.pop("drop_reason_desc")
    body["trafficDirection"] = "INGRESS"
    body["isReply"] = False
    body["destinationNames"] = ["x.example.com"]
    body["source"] = {**_POD_A, "podName": _POD_A["pod_name"]}
    del body["source"]["pod_name"]
    camel["nodeName"] = camel.pop("node_name")
    lost = {"lost_events": {"source": "PERF_EVENT_RING_BUFFER", "num_events_lost": "7", "cpu": 1},
            "node_name": "node-b", "time": _time(203)}
    lost_by_number = {"lost_events": {"source": 3, "num_events_lost": "5"}, "node_name": "node-a", "time": _time(204)}
    status = {"node_status": {"state_change": "NODE_UNAVAILABLE", "node_names": ["node-c"]}, "time": _time(205)}
    return [
        ("time on the envelope only", envelope_time, {"time": envelope_time["time"]}),
        ("legacy bare flow", legacy, {"node": "node-a"}),
        ("lowerCamelCase names", camel, {"drop_reason": "POLICY_DENIED", "direction": "ingress", "is_reply": False,
                                         "src_pod": _POD_A["pod_name"], "dst_names": ["x.example.com"]}),
        ("lost events", lost, None),
        ("lost events, source by number", lost_by_number, None),
        ("node status", status, None),
    ]


ALL_HUBBLE_CASES = HUBBLE_CASES + _hubble_extra()


@pytest.mark.parametrize(("record", "expected"), [(r, e) for _, r, e in ALL_HUBBLE_CASES],
                         ids=[name for name, _, _ in ALL_HUBBLE_CASES])
def test_hubble_record_stores_the_same_row_on_every_path(
    record: dict[str, Any], expected: Row | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = assert_same(hubble_paths([json.dumps(record)], tmp_path, monkeypatch))
    if expected is None:
        assert rows == []
        return
    (row,) = rows
    for column, value in expected.items():
        if column == "time":
            assert row[column].value == parse_time_ns(value)
        else:
            assert row[column] == value, column


def test_hubble_events_are_counted_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [json.dumps(record) for _, record, _ in _hubble_extra()[3:]]
    paths = hubble_paths(lines, tmp_path, monkeypatch)
    assert_same(paths)
    stats = paths["gRPC"][1]
    assert (stats.lost_events, dict(stats.lost_by_node)) == (12, {"node-b": 7, "node-a": 5})
    assert dict(stats.other_events) == {"lost_events": 2, "node_status": 1}


def test_all_hand_written_hubble_records_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Together, the reply tracker sees every connection: the paths must still agree.
    lines = [json.dumps(record) for _, record, _ in ALL_HUBBLE_CASES]
    assert_same(hubble_paths(lines, tmp_path, monkeypatch))


def _file_lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [line for line in data.decode().splitlines() if line.strip()]


@pytest.mark.parametrize("path", SAMPLE_FLOWS, ids=[p.name for p in SAMPLE_FLOWS])
def test_sample_flows_store_the_same_rows_on_every_path(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = assert_same(hubble_paths(_file_lines(path), tmp_path, monkeypatch))
    assert rows


def test_envelopes_and_bare_flows_mixed_in_blocks_read_alike(tmp_path: Path) -> None:
    """Both sample files shuffled together, in small blocks: some start with an envelope, some with a bare
    flow, and each holds both kinds; the native reader must store what the exact parser stores, block by block."""
    lines = [line for path in SAMPLE_FLOWS for line in _file_lines(path)]
    random.Random(7).shuffle(lines)
    path = _write(lines[:4000], tmp_path / "mixed.json")
    read = {}
    for native in (True, False):
        with InputFile(str(path)) as input_file:
            source = HubbleFileSource(input_file, block_size=1 << 18, native=native)
            read[native] = (_table_rows(list(source.batches())), source.stats)
    assert_same({"native": read[True], "exact": read[False]})


def test_real_captures_store_the_same_rows_on_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in shared_captures():
        assert assert_same(hubble_paths(_file_lines(path), tmp_path, monkeypatch)), path.name


def test_generated_apps_store_the_same_rows_on_every_path(
    apps_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = sorted(apps_dir.glob("*.json"))
    assert files
    for path in files:  # the first lines of each app: every label layout, a test of seconds
        assert assert_same(hubble_paths(_file_lines(path)[:500], tmp_path, monkeypatch)), path.name


def test_hubble_fixtures_store_the_same_rows_on_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("envelope.json", "legacy.json"):
        assert assert_same(hubble_paths(_file_lines(FIXTURES / "hubble" / name), tmp_path, monkeypatch)), name


# ------------------------------------------------------------------------------------------------ Calico


def _goldmane(n: int, key: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Goldmane emitter line (Go encoding/json: enums as numbers, zero values left out)."""
    base_key = {"source_name": "frontend-*", "source_namespace": "shop", "source_type": 1, "dest_name": "api-*",
                "dest_namespace": "payments", "dest_type": 1, "dest_port": 8443, "proto": "tcp", "reporter": 1,
                "action": 1}
    merged = {name: value for name, value in {**base_key, **key}.items() if value is not _GONE}
    return {"Key": merged, "start_time": 1795168800 + 15 * n, "end_time": 1795168815 + 15 * n, **fields}


GOLDMANE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("allow, src", _goldmane(1, {}, source_labels=["app=frontend", "projectcalico.org/x=y"],
                             dest_labels=["app=api"], num_connections_live=3, num_connections_started=2,
                             num_connections_completed=1)),
    ("deny, dst", _goldmane(2, {"action": 2, "reporter": 2}, num_connections_started=4)),
    ("pass is no verdict", _goldmane(3, {"action": 3})),
    ("unspecified action and reporter", _goldmane(4, {"action": _GONE, "reporter": _GONE})),
    ("network with pvt", _goldmane(5, {"dest_name": "pvt", "dest_namespace": "-", "dest_type": 4})),
    ("host endpoint", _goldmane(6, {"source_name": "node-1", "source_namespace": "", "source_type": 2})),
    ("namespaced and global network sets", _goldmane(7, {"dest_name": "vendors", "dest_type": 3,
                                                          "source_name": "blocked", "source_type": 3,
                                                          "source_namespace": "-"})),
    ("no type", _goldmane(8, {"dest_type": _GONE})),
    ("udp by number, no port", _goldmane(9, {"proto": "17", "dest_port": _GONE})),
    ("service", _goldmane(10, {"dest_service_name": "api", "dest_service_namespace": "payments",
                               "dest_service_port_name": "https", "dest_service_port": 443})),
    ("policy hits: kinds, end of tier, profile, pending",
     _goldmane(11, {"policies": {
         "enforced_policies": [
             {"kind": 6, "namespace": "payments", "name": "api-in", "tier": "default", "action": 1, "policy_index": 2,
              "rule_index": 1},
             {"kind": 2, "name": "baseline", "tier": "security", "action": 3},
             {"kind": 10, "tier": "default", "action": 2, "rule_index": -1,
              "trigger": {"kind": 1, "namespace": "payments", "name": "deny-all", "tier": "default"}},
             {"kind": 9, "name": "kns.payments", "action": 1, "policy_index": 5},
             {"kind": 11, "name": "cluster-wide", "tier": "admin", "action": 1},
         ],
         "pending_policies": [{"kind": 5, "namespace": "payments", "name": "staged", "tier": "default", "action": 2}],
     }})),
    ("bad hit kind is skipped alike", _goldmane(12, {"policies": {"enforced_policies": [{"name": "x", "action": 1}]}})),
]


@pytest.mark.parametrize("record", [r for _, r in GOLDMANE_CASES], ids=[name for name, _ in GOLDMANE_CASES])
def test_goldmane_line_and_grpc_flow_store_the_same_row(record: dict[str, Any], tmp_path: Path) -> None:
    lines = [json.dumps(record)]
    assert_same({"file": goldmane_file(lines, tmp_path / "g.ndjson"), "gRPC": goldmane_grpc(goldmane_results(lines))})


def test_goldmane_fixtures_store_the_same_rows_file_and_grpc(tmp_path: Path) -> None:
    lines = _file_lines(FIXTURES / "calico" / "goldmane.ndjson") + [json.dumps(r) for _, r in GOLDMANE_CASES]
    results = goldmane_results(lines)
    # The same flows as protojson (grpcurl: lowerCamel keys, enum names, int64 as strings) read from a file.
    protojson = [json_format.MessageToJson(result.flow, indent=None) for result in results]
    rows = assert_same({
        "file": goldmane_file(lines, tmp_path / "g.ndjson"),
        "gRPC": goldmane_grpc(results),
        "file (protojson)": goldmane_file(protojson, tmp_path / "p.json"),
    })
    assert len(rows) == len(lines) - 1  # the bad hit


def test_goldmane_list_answer_stores_what_its_flows_store(tmp_path: Path) -> None:
    # protojson (lowerCamel keys, enum names, int64 as strings), as List answers it.
    text = (FIXTURES / "calico" / "goldmane-list.json").read_text()
    answer = json_format.Parse(text, api_pb2.FlowListResult())
    path = tmp_path / "list.json"
    path.write_text(text)
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file)
        from_file = (_table_rows(list(source.batches())), source.stats)
    assert_same({"file": from_file, "gRPC": goldmane_grpc(list(answer.flows))})


# ------------------------------------------------------------------------------------------------ bad input


BAD_HUBBLE = sorted((FIXTURES / "hubble" / "bad").glob("*.json"))


@pytest.mark.parametrize("path", BAD_HUBBLE, ids=[p.name for p in BAD_HUBBLE])
def test_bad_input_is_read_alike_and_named_exactly(path: Path) -> None:
    """Every bad-input fixture as one block: the native reader stores what the exact parser stores and
    skips the same lines with the same messages; with --strict both stop at the same line."""
    data = path.read_bytes()
    native = native_block(data, strict=False)
    exact = parse_hubble_block("input.json", False, 65536, 1, data)
    assert_same({"native": (_table_rows(native.batches), native.stats),
                 "exact": (_table_rows(exact.batches), exact.stats)})
    assert native.stats.skips == exact.stats.skips
    errors = []
    exact_strict = partial(parse_hubble_block, "input.json", True, 65536, 1, data)
    for read in (partial(native_block, data, strict=True), exact_strict):
        try:
            read()
            errors.append(None)
        except BadRecord as e:
            errors.append(str(e))
    assert errors[0] == errors[1]


CALICO_FILES = [
    *sorted(p for p in (FIXTURES / "calico").rglob("*") if p.is_file()),
    ROOT / "sample_flows" / "calico-flows.log.gz", ROOT / "sample_flows" / "calico-es-export.json.gz",
]


def _calico(path: Path, *, native: bool, strict: bool = False) -> Decoded:
    # Fixtures in small blocks, so a block mixes good and bad lines; samples in a few blocks.
    block_size = 1 << 12 if FIXTURES in path.parents else 1 << 20
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file, native=native, strict=strict, block_size=block_size)
        batches = list(source.batches())
    return _table_rows(batches), source.stats


@pytest.mark.parametrize("path", CALICO_FILES, ids=[p.name for p in CALICO_FILES])
def test_calico_files_read_alike_natively_and_exactly(path: Path) -> None:
    """Every Calico fixture and sample (small blocks, so blocks mix good and bad lines): the same rows,
    the same skipped lines with the same messages, and the same first error with --strict."""
    outcomes = []
    for native in (True, False):
        try:
            rows, stats = _calico(path, native=native)
            outcomes.append((rows, stats, None))
        except InputError as e:
            outcomes.append(([], SourceStats(), str(e)))
    (native_rows, native_stats, native_error), (exact_rows, exact_stats, exact_error) = outcomes
    assert native_error == exact_error
    assert_same({"native": (native_rows, native_stats), "exact": (exact_rows, exact_stats)})
    assert native_stats.skips == exact_stats.skips
    errors = []
    for native in (True, False):
        try:
            _calico(path, native=native, strict=True)
            errors.append(None)
        except (BadRecord, InputError) as e:
            errors.append(str(e))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("name", ["flows-level0.log", "flows-level2.log", "es-sources.ndjson", "goldmane.ndjson"])
def test_calico_records_are_taken_natively(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Well-formed records of each native format are read by DuckDB and never reach the exact parser
    (else the parity above would only compare the exact parser with itself)."""
    from synth.sources.calico.native import NativeCalicoBlocks

    blocks: list[int] = []
    exact: list[int] = []
    finish, run_exact = NativeCalicoBlocks.finish, NativeCalicoBlocks._run_exact
    monkeypatch.setattr(NativeCalicoBlocks, "finish", lambda self, start, block, table: (
        blocks.append(start), finish(self, start, block, table))[1])
    monkeypatch.setattr(NativeCalicoBlocks, "_run_exact", lambda self, records: (
        exact.append(len(records)), run_exact(self, records))[1])
    rows, stats = _calico(FIXTURES / "calico" / name, native=True)
    assert rows and stats.records == len(rows) and not stats.skipped
    assert blocks and exact == []
