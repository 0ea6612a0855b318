"""Tests of scripts/gen_flows.py: determinism, output shape, presence of every modelled feature, `big` size."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_flows.py"
SAMPLE_DIR = ROOT / "sample_flows"
NEWER, LEGACY = "hubble-flows.json.gz", "hubble-legacy.json.gz"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_flows", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_flows"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gen = _load()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    assert gen.main(["sample", "--out", str(out)]) == 0
    return out


def _lines(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _flows(path: Path) -> list[dict[str, Any]]:
    return [obj.get("flow", obj) for obj in _lines(path) if "lost_events" not in obj]


@pytest.fixture(scope="module")
def flows(sample: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: _flows(sample / name) for name in (NEWER, LEGACY)}


def _all(flows: dict[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for items in flows.values():
        yield from items


def _walk_defaults(value: Any, path: str) -> Iterator[str]:
    """Yield paths of values protojson would have omitted (false, 0, "", [], {})."""
    if isinstance(value, dict):
        if not value:
            yield path
        for key, item in value.items():
            if key == "is_reply":  # a BoolValue wrapper: false is meaningful
                continue
            yield from _walk_defaults(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield path
        for i, item in enumerate(value):
            yield from _walk_defaults(item, f"{path}[{i}]")
    elif value is False or value == 0 or value == "":
        yield path


# -- determinism and drift


def test_two_runs_are_byte_identical(sample: Path, tmp_path: Path) -> None:
    gen.main(["sample", "--out", str(tmp_path)])
    for name in (NEWER, LEGACY, "README.md"):
        assert (tmp_path / name).read_bytes() == (sample / name).read_bytes(), name


def test_committed_sample_matches_fresh_generation(sample: Path) -> None:
    for name in (NEWER, LEGACY, "README.md"):
        committed = SAMPLE_DIR / name
        assert committed.exists(), f"{committed} missing: run python scripts/gen_flows.py sample --out sample_flows/"
        assert committed.read_bytes() == (sample / name).read_bytes(), (
            f"{committed} is stale: run python scripts/gen_flows.py sample --out sample_flows/")


def test_sample_is_small(sample: Path) -> None:
    assert sum((sample / name).stat().st_size for name in (NEWER, LEGACY)) < 2_000_000


# -- shape


def test_newer_file_has_envelopes(sample: Path) -> None:
    for obj in _lines(sample / NEWER):
        if "lost_events" in obj:
            continue
        assert set(obj) == {"flow", "node_name", "time"}
        assert obj["node_name"] == obj["flow"]["node_name"]
        assert obj["time"] == obj["flow"]["time"]
        assert "uuid" in obj["flow"]
        assert "reply" not in obj["flow"]


def test_legacy_file_has_bare_flows(sample: Path) -> None:
    for obj in _lines(sample / LEGACY):
        if "lost_events" in obj:
            continue
        assert "flow" not in obj
        assert {"time", "verdict", "IP", "l4", "source", "destination", "Type", "node_name"} <= set(obj)
        assert "uuid" not in obj
        assert "workloads" not in obj["source"]


def test_flows_follow_protojson_rules(flows: dict[str, list[dict[str, Any]]]) -> None:
    for flow in _all(flows):
        assert TIMESTAMP.match(flow["time"])
        assert not list(_walk_defaults(flow, "flow"))
        assert flow["IP"]["ipVersion"] == "IPv4"
        assert flow["event_type"]["type"] in (1, 4, 5, 129)
        for ep in (flow["source"], flow["destination"]):
            assert ep["labels"] == sorted(ep["labels"])


def test_lost_events(sample: Path) -> None:
    for name in (NEWER, LEGACY):
        lost = [obj for obj in _lines(sample / name) if "lost_events" in obj]
        assert lost
        for obj in lost:
            assert obj["lost_events"]["source"] == "HUBBLE_RING_BUFFER"
            assert isinstance(obj["lost_events"]["num_events_lost"], str)
            assert TIMESTAMP.match(obj["time"]) and obj["node_name"]


def test_request_packets_use_ephemeral_source_ports(flows: dict[str, list[dict[str, Any]]]) -> None:
    for flow in _all(flows):
        if flow.get("is_reply") is False or "drop_reason_desc" in flow:
            (l4,) = flow["l4"].values()
            assert 32768 <= l4["source_port"] <= 60999


# -- features


def test_reply_flows(flows: dict[str, list[dict[str, Any]]]) -> None:
    syn_acks = [f for f in flows[NEWER] if f.get("is_reply") and f["l4"].get("TCP", {}).get("flags") == {
        "SYN": True, "ACK": True}]
    assert syn_acks
    legacy_replies = [f for f in flows[LEGACY] if f.get("reply")]
    assert legacy_replies
    assert any("is_reply" not in f for f in legacy_replies)  # older producer: sometimes unknown


@pytest.mark.parametrize("proto", ["UDP", "TCP"])
def test_dns_l7_records(flows: dict[str, list[dict[str, Any]]], proto: str) -> None:
    records = [f for f in _all(flows) if f["Type"] == "L7" and proto in f["l4"]]
    requests = [f for f in records if f["l7"]["type"] == "REQUEST"]
    responses = [f for f in records if f["l7"]["type"] == "RESPONSE"]
    assert requests and responses
    for f in records:
        assert f["event_type"] == {"type": 129}
        assert f["l7"]["dns"]["query"].endswith(".")
        assert f["l7"]["dns"]["qtypes"]
        assert f["destination_service" if f["l7"]["type"] == "REQUEST" else "source_service"] == {
            "name": "kube-dns", "namespace": "kube-system"}
        (l4,) = f["l4"].values()
        assert 53 in (l4["source_port"], l4["destination_port"])
    assert any(f["l7"]["dns"].get("ips") for f in responses)
    assert any(f["l7"]["dns"].get("rcode") == 3 for f in _all(flows) if f["Type"] == "L7")


def test_host_probes(flows: dict[str, list[dict[str, Any]]]) -> None:
    probes = [f for f in _all(flows) if f["source"]["labels"] == ["reserved:host"] and f.get("is_reply") is False]
    assert probes
    assert all(f["source"]["identity"] == 1 and f["destination"].get("pod_name") for f in probes)


def test_world_ingress_from_many_addresses(flows: dict[str, list[dict[str, Any]]]) -> None:
    ingress = [f for f in _all(flows) if f["source"]["labels"] == ["reserved:world"] and not f.get("is_reply")]
    assert len({f["IP"]["source"] for f in ingress}) >= 20
    assert all(f["source"]["identity"] == 2 for f in ingress)
    assert all(f["destination"]["pod_name"].startswith("frontend-") for f in ingress)
    assert all(f["l4"]["TCP"]["destination_port"] == 8080 for f in ingress)
    assert all(f["destination_service"] == {"name": "frontend", "namespace": "shop"} for f in ingress)


def test_world_egress_with_destination_names(flows: dict[str, list[dict[str, Any]]]) -> None:
    egress = [f for f in _all(flows) if "reserved:world" in f["destination"]["labels"]
              and "reserved:kube-apiserver" not in f["destination"]["labels"]
              and not f.get("is_reply") and not f.get("reply")]
    assert egress
    for f in egress:
        assert f["destination_names"] == ["api.cardprocessor.example.com"]
        assert f["IP"]["destination"].startswith("203.0.113.")
    answers = {ip for f in _all(flows) if f["Type"] == "L7" for ip in f["l7"]["dns"].get("ips", [])}
    assert {f["IP"]["destination"] for f in egress} <= answers
    assert any(":" in ip for ip in answers)  # the AAAA answer


def test_dropped_policy_denied(flows: dict[str, list[dict[str, Any]]]) -> None:
    drops = [f for f in _all(flows) if f["verdict"] == "DROPPED"]
    assert drops
    for f in drops:
        assert f["drop_reason_desc"] == "POLICY_DENIED"
        assert "is_reply" not in f
        assert f["traffic_direction"] in ("INGRESS", "EGRESS")
    datapath = [f for f in drops if f["event_type"] == {"type": 1, "sub_type": 133}]
    assert {f["traffic_direction"] for f in datapath} == {"INGRESS", "EGRESS"}
    assert any(f["source"].get("pod_name", "").startswith("cart-") and f["destination"].get("pod_name") == "ledger-0"
               and f["l4"]["TCP"]["destination_port"] == 5432 for f in datapath)


def test_audit_and_redirected_verdicts(flows: dict[str, list[dict[str, Any]]]) -> None:
    for verdict in ("AUDIT", "REDIRECTED"):
        hits = [f for f in _all(flows) if f["verdict"] == verdict]
        assert hits, verdict
        assert all(f["event_type"] == {"type": 5} and f["is_reply"] is False for f in hits)


def test_rollout_of_payments_api(flows: dict[str, list[dict[str, Any]]]) -> None:
    versions: dict[str, set[str]] = {}
    for f in _all(flows):
        for ep in (f["source"], f["destination"]):
            match = re.match(r"^api-([a-z0-9]{10})-[a-z0-9]{5}$", ep.get("pod_name", ""))
            if match and ep["namespace"] == "payments":
                version = next(x.split("=", 1)[1] for x in ep["labels"] if "app.kubernetes.io/version=" in x)
                versions.setdefault(match.group(1), set()).add(version)
    assert len(versions) == 2
    assert sorted(v for vs in versions.values() for v in vs) == ["1.41.0", "1.42.0"]


def test_deployment_pods_on_several_nodes(flows: dict[str, list[dict[str, Any]]]) -> None:
    nodes: dict[str, set[str]] = {}
    for f in flows[NEWER]:
        for ep in (f["source"], f["destination"]):
            if "ID" in ep and ep.get("workloads", [{}])[0].get("kind") == "Deployment":
                nodes.setdefault(f"{ep['namespace']}/{ep['workloads'][0]['name']}", set()).add(f["node_name"])
    assert set(nodes) >= {"shop/frontend", "shop/cart", "shop/checkout", "shop/catalog", "payments/api",
                          "kube-system/coredns"}
    assert all(len(n) >= 2 for n in nodes.values()), nodes


def test_traffic_direction_at_both_ends(flows: dict[str, list[dict[str, Any]]]) -> None:
    points = {(f["trace_observation_point"], f.get("traffic_direction"), f.get("is_reply"))
              for f in flows[NEWER] if "trace_observation_point" in f}
    assert ("TO_OVERLAY", "EGRESS", False) in points  # request leaving the client's node
    assert ("TO_ENDPOINT", "INGRESS", False) in points  # request reaching the server
    assert ("TO_ENDPOINT", "EGRESS", True) in points  # reply reaching the client: still the egress connection


def test_identity_labels(flows: dict[str, list[dict[str, Any]]]) -> None:
    labels = {label for f in _all(flows) for ep in (f["source"], f["destination"]) for label in ep["labels"]}
    assert {"k8s:app=frontend", "k8s:app.kubernetes.io/name=api", "k8s:k8s-app=kube-dns",
            "k8s:io.kubernetes.pod.namespace=payments", "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=payments",
            "k8s:io.cilium.k8s.namespace.labels.team=payments", "reserved:kube-apiserver"} <= labels
    assert not any("pod-template-hash" in label for label in labels)


def test_protobuf_parses_every_line(sample: Path) -> None:
    observer = pytest.importorskip("synth._proto.observer.observer_pb2")
    flow_pb2 = pytest.importorskip("synth._proto.flow.flow_pb2")
    json_format = pytest.importorskip("google.protobuf.json_format")
    for obj in _lines(sample / NEWER):
        json_format.ParseDict(obj, observer.GetFlowsResponse())
    for obj in _lines(sample / LEGACY):
        if "lost_events" not in obj:
            json_format.ParseDict(obj, flow_pb2.Flow())


# -- big


def test_big_writes_the_requested_number_of_lines(tmp_path: Path) -> None:
    out = tmp_path / "big.json.gz"
    assert gen.main(["big", "--flows", "20000", "--out", str(out)]) == 0
    lines = _lines(out)
    assert abs(len(lines) - 20000) <= 200
    flows = [obj["flow"] for obj in lines if "flow" in obj]
    kinds = {(f["event_type"]["type"], f["verdict"]) for f in flows}
    assert {(4, "FORWARDED"), (5, "FORWARDED"), (129, "FORWARDED")} <= kinds
    assert any(f["Type"] == "L7" for f in flows)
