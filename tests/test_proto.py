"""The protobuf subset in proto/: current generated code, Cilium's field numbers, unknown fields skipped."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from synth._proto.flow import flow_pb2
from synth._proto.observer import observer_pb2
from synth._proto.relay import relay_pb2
from synth.sources.columns import FlowColumns
from synth.sources.hubble.client import build_filters
from synth.sources.hubble.stream import FlowDecoder


def _gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_proto"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path: Path) -> None:
    """Regenerate into tmp_path; only the lines naming generator versions may differ (grpcio-tools is pinned)."""
    pytest.importorskip("grpc_tools")
    gen = _gen_proto()
    written = gen.generate(tmp_path)
    committed = ROOT / "synth" / "_proto"
    fresh_names = sorted(str(p.relative_to(tmp_path)) for p in written)
    kept = sorted(
        str(p.relative_to(committed)) for package in gen.PACKAGES for p in (committed / package).glob("*_pb2*")
    )
    assert fresh_names == kept, "run: python scripts/gen_proto.py"
    for name in fresh_names:
        fresh, current = (tmp_path / name).read_text(), (committed / name).read_text()
        assert gen.version_free(fresh) == gen.version_free(current), f"{name} is stale: run python scripts/gen_proto.py"


# Cilium's numbers (docs: reference/hubble.md), the facts that make the subset wire-compatible.
FIELD_NUMBERS = {
    "flow.Flow": {
        "time": 1, "uuid": 34, "verdict": 2, "drop_reason": 3, "IP": 5, "l4": 6, "source": 8, "destination": 9,
        "Type": 10, "node_name": 11, "source_names": 13, "destination_names": 14, "l7": 15, "reply": 16,
        "event_type": 19, "source_service": 20, "destination_service": 21, "traffic_direction": 22,
        "policy_match_type": 23, "trace_observation_point": 24, "drop_reason_desc": 25, "is_reply": 26,
        "egress_allowed_by": 21001, "ingress_allowed_by": 21002, "egress_denied_by": 21004,
        "ingress_denied_by": 21005, "policy_log": 21006, "aggregate": 21007, "Summary": 100000,
    },
    "flow.Endpoint": {"ID": 1, "identity": 2, "cluster_name": 7, "namespace": 3, "labels": 4, "pod_name": 5,
                      "workloads": 6},
    "flow.IP": {"source": 1, "destination": 2, "ipVersion": 3, "encrypted": 4, "source_xlated": 5},
    "flow.Layer4": {"TCP": 1, "UDP": 2, "ICMPv4": 3, "ICMPv6": 4, "SCTP": 5},
    "flow.TCPFlags": {"FIN": 1, "SYN": 2, "RST": 3, "PSH": 4, "ACK": 5, "URG": 6, "ECE": 7, "CWR": 8, "NS": 9},
    "flow.Layer7": {"type": 1, "latency_ns": 2, "dns": 100, "http": 101},
    "flow.DNS": {"query": 1, "ips": 2, "ttl": 3, "cnames": 4, "observation_source": 5, "rcode": 6, "qtypes": 7,
                 "rrtypes": 8},
    "flow.Policy": {"name": 1, "namespace": 2, "labels": 3, "revision": 4, "kind": 5},
    "flow.Aggregate": {"ingress_flow_count": 1, "egress_flow_count": 2, "unknown_direction_flow_count": 3},
    "flow.LostEvent": {"source": 1, "num_events_lost": 2, "cpu": 3, "first": 4, "last": 5},
    "flow.FlowFilter": {
        "uuid": 29, "source_ip": 1, "source_ip_xlated": 34, "source_pod": 2, "source_fqdn": 7, "source_label": 10,
        "source_service": 16, "source_workload": 26, "source_cluster_name": 37, "destination_ip": 3,
        "destination_pod": 4, "destination_fqdn": 8, "destination_label": 11, "destination_service": 17,
        "destination_workload": 27, "destination_cluster_name": 38, "traffic_direction": 30, "verdict": 5,
        "drop_reason_desc": 33, "interface": 35, "event_type": 6, "http_status_code": 9, "protocol": 12,
        "source_port": 13, "destination_port": 14, "reply": 15, "dns_query": 18, "source_identity": 19,
        "destination_identity": 20, "http_method": 21, "http_path": 22, "http_url": 31, "http_header": 32,
        "tcp_flags": 23, "node_name": 24, "node_labels": 36, "ip_version": 25, "trace_id": 28, "ip_trace_id": 39,
        "encrypted": 40, "experimental": 999,
    },
    "flow.EventTypeFilter": {"type": 1, "match_sub_type": 2, "sub_type": 3},
    "relay.NodeStatusEvent": {"state_change": 1, "node_names": 2, "message": 3},
    "observer.GetFlowsRequest": {"number": 1, "first": 9, "follow": 3, "blacklist": 5, "whitelist": 6, "since": 7,
                                 "until": 8, "field_mask": 10},
    "observer.GetFlowsResponse": {"flow": 1, "node_status": 2, "lost_events": 3, "node_name": 1000, "time": 1001},
    "observer.ServerStatusResponse": {"num_flows": 1, "max_flows": 2, "seen_flows": 3, "uptime_ns": 4,
                                      "num_connected_nodes": 5, "num_unavailable_nodes": 6, "unavailable_nodes": 7,
                                      "version": 8, "flows_rate": 9},
}  # fmt: skip


@pytest.mark.parametrize("message", sorted(FIELD_NUMBERS))
def test_field_numbers_are_cilium_ones(message: str) -> None:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(message)
    assert {f.name: f.number for f in descriptor.fields if f.name in FIELD_NUMBERS[message]} == FIELD_NUMBERS[message]


def test_enums_and_the_service_path() -> None:
    assert flow_pb2.DropReason.Value("POLICY_DENIED") == 133
    assert flow_pb2.DropReason.Value("POLICY_DENY") == 181
    assert flow_pb2.DropReason.Value("AUTH_REQUIRED") == 189
    assert flow_pb2.TraceObservationPoint.Value("TO_ENDPOINT") == 101
    assert relay_pb2.NodeState.Value("NODE_ERROR") == 4
    service = descriptor_pool.Default().FindServiceByName("observer.Observer")
    assert {m.name: m.server_streaming for m in service.methods} == {"GetFlows": True, "ServerStatus": False}


def _rich_flow_class() -> type:
    """A test-only `richtest.Flow`: our fields 1 and 34 plus fields a newer Cilium has and we leave out."""
    proto = descriptor_pb2.FileDescriptorProto(name="richtest/flow.proto", package="richtest", syntax="proto3")
    tunnel = proto.message_type.add(name="Tunnel")
    tunnel.field.add(name="vni", number=4, type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT32)
    flow = proto.message_type.add(name="Flow")
    label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    flow.field.add(name="uuid", number=34, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=label)
    flow.field.add(name="verdict", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                   type_name=".richtest.Verdict", label=label)  # fmt: skip
    flow.field.add(name="tunnel", number=39, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                   type_name=".richtest.Tunnel", label=label)  # fmt: skip
    flow.field.add(name="socket_cookie", number=32, type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT64, label=label)
    flow.field.add(name="future", number=150001, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=label)
    verdict = proto.enum_type.add(name="Verdict")
    for name, number in (("VERDICT_UNKNOWN", 0), ("FORWARDED", 1), ("NEWER_VERDICT", 42)):
        verdict.value.add(name=name, number=number)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("richtest.Flow"))


def test_fields_we_omit_are_skipped_and_round_trip() -> None:
    rich = _rich_flow_class()(uuid="abc", verdict=42, socket_cookie=2**40, future="x")
    rich.tunnel.vni = 7
    ours = flow_pb2.Flow.FromString(rich.SerializeToString())
    assert ours.uuid == "abc"
    assert ours.verdict == 42  # an enum number we do not know is kept (open enum)
    assert type(rich).FromString(ours.SerializeToString()) == rich  # unknown fields survive a round trip


def _response(**flow_fields: object) -> bytes:
    response = observer_pb2.GetFlowsResponse(flow=flow_pb2.Flow(**flow_fields), node_name="node-a")  # type: ignore[arg-type]
    response.time.FromNanoseconds(1_700_000_000_123_456_789)
    return response.SerializeToString()


def test_decoder_edge_cases() -> None:
    unknown_member = observer_pb2.GetFlowsResponse(node_name="node-a").SerializeToString() + b"\x22\x02\x08\x01"
    syn_ack = flow_pb2.Layer4(TCP=flow_pb2.TCP(source_port=80, destination_port=40000,
                                              flags=flow_pb2.TCPFlags(SYN=True, ACK=True)))  # fmt: skip
    decoder, cols = FlowDecoder(), FlowColumns()
    decoder.take(
        cols,
        [
            _response(verdict=flow_pb2.DROPPED, drop_reason_desc=250, uuid="1"),
            _response(aggregate=flow_pb2.Aggregate(ingress_flow_count=3, egress_flow_count=2), uuid="2"),
            _response(l4=syn_ack, uuid="3"),
            _response(Type=flow_pb2.SOCK, uuid="4"),
            _response(uuid="1", verdict=flow_pb2.DROPPED, drop_reason_desc=250),  # the same flow again
            unknown_member,  # field 4 (agent_event in newer servers) is not ours
            b"\xff\xff",
        ],
    )
    batch = decoder.finish(cols)
    rows = batch.to_pylist()
    assert [(r["verdict"], r["drop_reason"], r["count"], r["is_reply"]) for r in rows] == [
        ("dropped", "250", 1, None),
        ("unknown", None, 5, None),
        ("unknown", None, 1, True),
    ]
    assert batch.column("time").cast("int64").to_pylist() == [1_700_000_000_123_456_789] * 3
    assert decoder.duplicates == 1
    assert decoder.stats.other_events == {"socket-translation event": 1, "unknown response": 1}
    assert decoder.stats.skipped == 1 and "not a GetFlowsResponse" in decoder.stats.skips[0].reason


def test_filters_from_flags_and_json() -> None:
    allow, deny = build_filters(("kube-system",), ("FORWARDED",), ('{"destination_port": ["53"]}',), ())
    filters = [flow_pb2.FlowFilter.FromString(f) for f in allow]
    assert [list(f.source_pod) for f in filters] == [["kube-system/"], [], []]
    assert [list(f.destination_pod) for f in filters] == [[], ["kube-system/"], []]
    assert [list(f.verdict) for f in filters] == [[1], [1], []]
    assert list(filters[2].destination_port) == ["53"]
    assert deny == ()


@pytest.mark.parametrize(("view", "cilium"), [("flowbatch.Flow", "flow.Flow"),
                                              ("flowbatch.Response", "observer.GetFlowsResponse")])  # fmt: skip
def test_the_batch_view_reads_the_same_bytes(view: str, cilium: str) -> None:
    """Every field of synth's view has Cilium's number, and a type with the same wire encoding."""
    from google.protobuf.descriptor import FieldDescriptor as F

    same_wire = {(F.TYPE_BYTES, F.TYPE_MESSAGE), (F.TYPE_INT32, F.TYPE_ENUM)}
    pool = descriptor_pool.Default()
    theirs = {f.name: f for f in pool.FindMessageTypeByName(cilium).fields}
    for field in pool.FindMessageTypeByName(view).fields:
        other = theirs[field.name]
        assert field.number == other.number, field.name
        assert field.is_repeated == other.is_repeated, field.name
        if field.type != other.type:
            assert (field.type, other.type) in same_wire, field.name
        elif field.type == F.TYPE_MESSAGE:
            assert field.message_type.full_name.split(".")[-1] == other.message_type.full_name.split(".")[-1]
