"""Tests of scripts/gen_flows.py and calico_render.py: determinism, output shape, every modelled feature, `big` size."""

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
CALICO, CALICO_ES = "calico-flows.log.gz", "calico-es-export.json.gz"
SAMPLE_FILES = (NEWER, LEGACY, CALICO, CALICO_ES)
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
    for name in (*SAMPLE_FILES, "README.md"):
        assert (tmp_path / name).read_bytes() == (sample / name).read_bytes(), name


def test_committed_sample_matches_fresh_generation(sample: Path) -> None:
    assert sorted(p.name for p in SAMPLE_DIR.iterdir()) == sorted((*SAMPLE_FILES, "README.md"))
    for name in (*SAMPLE_FILES, "README.md"):
        committed = SAMPLE_DIR / name
        assert committed.exists(), f"{committed} missing: run python scripts/gen_flows.py sample --out sample_flows/"
        assert committed.read_bytes() == (sample / name).read_bytes(), (
            f"{committed} is stale: run python scripts/gen_flows.py sample --out sample_flows/")


def test_sample_is_small(sample: Path) -> None:
    assert sum((sample / name).stat().st_size for name in SAMPLE_FILES) < 2_000_000


def test_gzip_headers_carry_no_time_and_no_name(sample: Path) -> None:
    for name in SAMPLE_FILES:
        header = (sample / name).read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08" and header[3] == 0 and header[4:8] == b"\0\0\0\0", name


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


# -- Calico flow logs of the same shop

# Felix's flowlog.JSONOutput keys, in its order (reference calico.md §2.2): every key in every record.
FELIX_KEYS = [
    "start_time", "end_time",
    "source_ip", "source_name", "source_name_aggr", "source_namespace", "source_port", "source_type",
    "source_labels", "nat_outgoing_ports",
    "dest_ip", "dest_name", "dest_name_aggr", "dest_namespace", "dest_port", "dest_type", "dest_labels",
    "dest_service_namespace", "dest_service_name", "dest_service_port", "dest_service_port_num", "dest_domains",
    "proto", "action", "reporter", "policies",
    "bytes_in", "bytes_out", "packets_in", "packets_out",
    "transit_bytes_in", "transit_bytes_out", "transit_packets_in", "transit_packets_out",
    "num_flows", "num_flows_started", "num_flows_completed",
    "http_requests_allowed_in", "http_requests_denied_in",
    "process_name", "num_process_names", "process_id", "num_process_ids", "process_args", "num_process_args",
    "original_source_ips", "num_original_source_ips",
    "tcp_mean_send_congestion_window", "tcp_min_send_congestion_window", "tcp_mean_smooth_rtt",
    "tcp_max_smooth_rtt", "tcp_mean_min_rtt", "tcp_max_min_rtt", "tcp_mean_mss", "tcp_min_mss",
    "tcp_total_retransmissions", "tcp_lost_packets", "tcp_unrecovered_to",
]
PROFILE = "0|__PROFILE__|__PROFILE__.kns.{}|allow|0"


@pytest.fixture(scope="module")
def calico(sample: Path) -> list[dict[str, Any]]:
    return _lines(sample / CALICO)


def _pick(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    found = [r for r in records if all(r[k] == v for k, v in where.items())]
    assert found, where
    return found


def _labels(record: dict[str, Any], side: str) -> list[str]:
    return list(record[f"{side}_labels"]["labels"])


def test_calico_records_have_every_felix_key_in_order(calico: list[dict[str, Any]]) -> None:
    assert len(calico) > 1000
    for record in calico:
        assert list(record) == FELIX_KEYS
        assert record["end_time"] - record["start_time"] == 300 and record["start_time"] % 300 == 0
        assert record["source_port"] is None  # levels 1 and 2
        assert set(record["policies"]) == {"enforced_policies", "pending_policies", "transit_policies"}
        assert record["num_flows"] == record["num_flows_started"] >= record["num_flows_completed"] >= 0
        assert (record["process_args"], record["tcp_mean_mss"]) == (["-"], 0)
    window = {r["start_time"] for r in calico}
    assert min(window) == 1795046400 and max(window) == 1795046400 + 48 * 3600 - 300  # the Hubble files' 48 h


def test_calico_allowed_flows_at_level_2_denied_at_level_1(calico: list[dict[str, Any]]) -> None:
    for record in calico:
        if record["action"] == "allow":
            assert record["source_ip"] is record["dest_ip"] is None
            assert record["source_name"] == record["dest_name"] == "-"
            for side in ("source", "dest"):
                if record[f"{side}_type"] == "wep":
                    assert not any(x.startswith("projectcalico.org/") for x in _labels(record, side))
        else:
            assert record["action"] == "deny" and record["source_ip"] and record["dest_ip"]
            assert record["source_name"].startswith(record["source_name_aggr"].rstrip("*"))
            assert record["num_flows_completed"] == 0 and record["packets_in" if record["reporter"] == "src"
                                                                             else "packets_out"] == 0
            wep = "source" if record["source_type"] == "wep" else "dest"
            assert f"projectcalico.org/namespace={record[f'{wep}_namespace']}" in _labels(record, wep)


def test_calico_pod_names_and_labels(calico: list[dict[str, Any]]) -> None:
    aggr = {r[f"{side}_name_aggr"] for r in calico for side in ("source", "dest") if r[f"{side}_type"] == "wep"}
    assert {"ledger-0", "prometheus-k8s-0", "prometheus-k8s-1"} <= aggr
    assert any(re.fullmatch(r"frontend-[a-z0-9]{10}-\*", a) for a in aggr)
    jobs = {a for a in aggr if a.startswith("reconcile-")}
    assert len(jobs) == 48 and all(re.fullmatch(r"reconcile-\d{8}-\*", a) for a in jobs)
    frontend = _pick(calico, dest_namespace="shop", dest_port=8080, source_type="net")[0]
    labels = _labels(frontend, "dest")
    assert sorted(labels) == ["app=frontend", f"pod-template-hash={frontend['dest_name_aggr'].split('-')[1]}",
                              "tier=web"]
    every = [_labels(r, side) for r in calico for side in ("source", "dest") if r[f"{side}_type"] == "wep"]
    assert any(entries != sorted(entries) for entries in every)  # Felix does not sort them
    ledger = _labels(_pick(calico, dest_name_aggr="ledger-0", action="allow")[0], "dest")
    assert {"statefulset.kubernetes.io/pod-name=ledger-0", "app.kubernetes.io/name=ledger"} <= set(ledger)


def test_calico_rollout_keeps_old_and_new_replica_sets_apart(calico: list[dict[str, Any]]) -> None:
    # Old and new pods have different generateName prefixes, so level 2 never folds them into one record and
    # each record keeps its version label (an intersection over both would lose app.kubernetes.io/version).
    versions: dict[str, set[str]] = {}
    intervals: dict[str, set[int]] = {}
    for r in calico:
        if re.fullmatch(r"api-[a-z0-9]{10}-\*", r["dest_name_aggr"]):
            version = {x for x in _labels(r, "dest") if x.startswith("app.kubernetes.io/version=")}
            versions.setdefault(r["dest_name_aggr"], set()).update(version)
            intervals.setdefault(r["dest_name_aggr"], set()).add(r["start_time"])
    assert sorted(v for vs in versions.values() for v in vs) == [
        "app.kubernetes.io/version=1.41.0", "app.kubernetes.io/version=1.42.0"]
    assert all(len(vs) == 1 for vs in versions.values())
    old, new = intervals.values()
    assert old & new  # intervals with both ReplicaSets: still two records


def test_calico_external_peers(calico: list[dict[str, Any]]) -> None:
    world = _pick(calico, source_type="net", source_name_aggr="pub")
    assert {(r["reporter"], r["dest_name_aggr"].split("-")[0], r["dest_port"], r["dest_service_name"],
             r["dest_service_port"], r["dest_service_port_num"]) for r in world} == {
        ("dst", "frontend", 8080, "frontend", "http", 80)}
    card = _pick(calico, dest_type="net", dest_name_aggr="pub")
    assert {(r["reporter"], r["action"], r["source_namespace"], r["dest_port"]) for r in card} == {
        ("src", "allow", "payments", 443)}
    assert all(r["dest_domains"] == ["api.cardprocessor.example.com"] for r in card)
    assert all(r["source_name_aggr"].startswith("api-") for r in card)
    apiserver = _pick(calico, dest_type="net", dest_name_aggr="pvt")
    assert {(r["reporter"], r["source_namespace"], r["dest_port"], r["dest_service_namespace"],
             r["dest_service_name"], r["dest_service_port"], r["dest_service_port_num"]) for r in apiserver} == {
        ("src", "monitoring", 6443, "default", "kubernetes", "https", 443)}
    probes = _pick(calico, source_type="net", source_name_aggr="pvt")
    assert {r["reporter"] for r in probes} == {"dst"} and all(r["dest_service_name"] == "-" for r in probes)
    assert {r["dest_port"] for r in probes} == {8081, 8080, 7070, 3550, 8444, 5432, 9090}


def test_calico_denied_card_processor_attempts_hit_a_global_network_set(calico: list[dict[str, Any]]) -> None:
    denied = _pick(calico, dest_type="ns")
    for r in denied:
        assert (r["reporter"], r["action"], r["dest_name"], r["dest_name_aggr"], r["dest_namespace"]) == (
            "src", "deny", "card-processors", "card-processors", "-")
        assert r["dest_ip"] in ("203.0.113.10", "203.0.113.11", "203.0.113.12")
        assert re.fullmatch(r"reconcile-\d{8}-[a-z0-9]{5}", r["source_name"]) and r["source_ip"].startswith("10.244.")
        assert r["policies"]["enforced_policies"] == ["0|default|payments/knp.default.reconcile-egress|deny|-1"]
        assert r["dest_domains"] == ["api.cardprocessor.example.com"] and r["dest_labels"] is not None
    assert {r["dest_ip"] for r in denied} == {"203.0.113.10", "203.0.113.11", "203.0.113.12"}


def test_calico_dns_through_the_kube_dns_service(calico: list[dict[str, Any]]) -> None:
    dns = _pick(calico, dest_namespace="kube-system", dest_port=53)
    assert {(r["proto"], r["dest_service_namespace"], r["dest_service_name"], r["dest_service_port"],
             r["dest_service_port_num"]) for r in dns} == {
        ("udp", "kube-system", "kube-dns", "dns", 53), ("tcp", "kube-system", "kube-dns", "dns-tcp", 53)}
    assert {r["reporter"] for r in dns} == {"src", "dst"}
    assert all(r["policies"]["enforced_policies"] == [PROFILE.format("kube-system")]
               for r in dns if r["reporter"] == "dst")


def test_calico_policies_per_namespace_mode(calico: list[dict[str, Any]]) -> None:
    payments = [r for r in calico if r["reporter"] == "src" and r["source_namespace"] == "payments"
                and r["action"] == "allow"]
    assert payments and all(re.fullmatch(r"0\|default\|payments/knp\.default\.[a-z]+-egress\|allow\|\d+", hit)
                            for r in payments for hit in r["policies"]["enforced_policies"])
    shop = [r for r in calico if r["reporter"] == "dst" and r["dest_namespace"] == "shop"]
    assert all(r["policies"]["enforced_policies"] == [PROFILE.format("shop")] and r["action"] == "allow"
               for r in shop)
    assert all(re.fullmatch(r"0\|default\|shop/staged:knp\.default\.[a-z]+-ingress\|(allow\|\d+|deny\|-1)", hit)
               for r in shop for hit in r["policies"]["pending_policies"])
    # Prometheus scrapes are AUDIT verdicts in Hubble: the staged policy would deny them.
    scrapes = [r for r in shop if r["source_namespace"] == "monitoring"]
    assert scrapes and all(r["policies"]["pending_policies"] == [
        f"0|default|shop/staged:knp.default.{r['dest_name_aggr'].split('-')[0]}-ingress|deny|-1"] for r in scrapes)
    for namespace in ("monitoring", "kube-system"):
        mine = [r for r in calico if r["source_namespace" if r["reporter"] == "src" else "dest_namespace"]
                == namespace]
        assert mine and all(r["policies"]["enforced_policies"] == [PROFILE.format(namespace)] for r in mine)


def test_calico_cart_to_ledger_allowed_at_the_source_denied_at_the_destination(
    calico: list[dict[str, Any]],
) -> None:
    pair = [r for r in calico if r["source_name_aggr"].startswith("cart-") and r["dest_name_aggr"] == "ledger-0"]
    src = [r for r in pair if r["reporter"] == "src"]
    dst = [r for r in pair if r["reporter"] == "dst"]
    assert src and all(r["action"] == "allow" and r["policies"]["pending_policies"] == [
        "0|default|shop/staged:knp.default.cart-egress|deny|-1"] for r in src)
    assert dst and all(r["action"] == "deny" and r["source_ip"] and r["dest_ip"] and r["policies"][
        "enforced_policies"] == ["0|default|payments/knp.default.ledger-ingress|deny|-1"] for r in dst)
    assert sum(r["num_flows"] for r in src) == sum(r["num_flows"] for r in dst)


def test_calico_src_and_dst_records_count_each_connection_once_per_side(calico: list[dict[str, Any]]) -> None:
    sides: dict[tuple[Any, ...], dict[str, int]] = {}
    for r in calico:
        if r["source_type"] == r["dest_type"] == "wep":
            key = (r["start_time"], r["source_name_aggr"], r["dest_name_aggr"], r["dest_port"], r["proto"])
            counts = sides.setdefault(key, {"src": 0, "dst": 0})
            counts[r["reporter"]] += r["num_flows"]
    assert len(sides) > 1000
    assert all(c["src"] == c["dst"] > 0 for c in sides.values())
    assert not [r for r in calico if r["source_type"] != "wep" and r["reporter"] == "src"]
    assert not [r for r in calico if r["dest_type"] != "wep" and r["reporter"] == "dst"]


def test_calico_elasticsearch_export_is_a_slice_of_the_flow_log(sample: Path, calico: list[dict[str, Any]]) -> None:
    pages = _lines(sample / CALICO_ES)
    assert len(pages) >= 2 and pages[-1]["hits"]["hits"] == []  # the scroll's empty last page
    assert len({p["_scroll_id"] for p in pages}) == 1
    hits = [hit for page in pages for hit in page["hits"]["hits"]]
    assert 150 <= len(hits) <= 500 and all(p["hits"]["total"]["value"] == len(hits) for p in pages)
    lines = {json.dumps(r, sort_keys=True) for r in calico}
    nodes = set()
    for hit in hits:
        source = dict(hit["_source"])
        assert re.fullmatch(r"tigera_secure_ee_flows\.cluster\.\d{8}", hit["_index"])
        assert list(source)[-2:] == ["host", "@timestamp"]
        nodes.add(source.pop("host"))
        assert source.pop("@timestamp") == source["end_time"] * 1000
        assert json.dumps(source, sort_keys=True) in lines
    assert len(nodes) == 3
    assert {h["_source"]["action"] for h in hits} == {"allow", "deny"}
    assert len({h["_source"]["dest_name_aggr"] for h in hits if h["_source"]["dest_name_aggr"].startswith("api-")}) == 2


def test_calico_readme_counts_show_every_feature(sample: Path) -> None:
    counts = gen.calico_render.describe(sample / CALICO)
    assert all(value > 0 for value in counts.values()), counts
    assert counts["records"] == counts["lines"] and counts["api_prefixes"] == 2
    readme = (sample / "README.md").read_text()
    assert f"| records | {counts['records']:,} |" in readme


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
