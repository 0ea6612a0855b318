"""Flows to edges: replies, ports, verdicts, DNS names, kinds, double observation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowbuilder import Peer, Pod, batches, flow, write

from synth.app.flows import aggregate_store
from synth.base.config import Settings
from synth.core.aggregate import EdgeSet, aggregate_batches
from synth.store.dataset import Store

API = Pod(
    "payments", "api-7d9f8b6c5d-x2x4z", {"app": "api", "pod-template-hash": "7d9f8b6c5d"}, "10.0.1.5", "Deployment/api"
)
API_NEW = Pod(
    "payments", "api-5c4b7f9d8b-k2l9m", {"app": "api", "pod-template-hash": "5c4b7f9d8b"}, "10.0.2.7", "Deployment/api"
)
CHECKOUT = Pod("shop", "checkout-6b7f8c9d5c-abcde", {"app": "checkout"}, "10.0.3.9", "Deployment/checkout")
LEDGER = Pod("payments", "ledger-0", {"app.kubernetes.io/name": "ledger"}, "10.0.4.2", "StatefulSet/ledger")
CARDS = Peer("world", "203.0.113.10")
NODE = Peer("host", "192.168.1.10")


def edges_of(tmp_path: Path, flows: list[dict[str, Any]], **options: Any) -> EdgeSet:
    return aggregate_batches(batches(write(tmp_path / "f.json", flows)), Settings(), **options)


def keys(edges: EdgeSet) -> list[tuple[Any, ...]]:
    return [
        (
            r.src.namespace or r.src.kind,
            r.src.selector,
            r.dst.namespace or r.dst.kind,
            r.dst.selector,
            r.protocol,
            r.port,
            r.allowed,
            r.count,
        )
        for r in edges.edges
    ]


def test_requests_make_edges_replies_never_do(tmp_path: Path) -> None:
    edges = edges_of(
        tmp_path,
        [
            flow(CHECKOUT, API, 8443, sport=51234),
            flow(API, CHECKOUT, 51234, sport=8443, is_reply=True),  # the answer: would be an ephemeral-port edge
        ],
    )
    assert keys(edges) == [("shop", "app=checkout", "payments", "app=api", "TCP", 8443, True, 1)]
    assert edges.stats.replies == 1


def test_rollout_pods_collapse_into_one_selector(tmp_path: Path) -> None:
    edges = edges_of(tmp_path, [flow(CHECKOUT, API, 8443), flow(CHECKOUT, API_NEW, 8443, time="2026-11-20T12:00:00Z")])
    (row,) = edges.edges
    assert row.dst.selector == "app=api" and row.count == 2
    assert row.dst.pods == tuple(sorted([API.name, API_NEW.name]))
    assert row.dst.workloads == ("Deployment/api",)


def test_world_edges_carry_the_address_and_dns_names(tmp_path: Path) -> None:
    edges = edges_of(tmp_path, [flow(API, CARDS, 443, names=["api.cardprocessor.example.com"])])
    (row,) = edges.edges
    assert (row.dst.kind, row.dst.selector, row.dst_names) == (
        "world",
        "203.0.113.10/32",
        ("api.cardprocessor.example.com",),
    )


def test_dns_answers_name_later_world_destinations(tmp_path: Path) -> None:
    dns = flow(
        API,
        Pod("kube-system", "coredns-5d78c9869d-abcde", {"k8s-app": "kube-dns"}, "10.0.9.9"),
        53,
        protocol="UDP",
        is_reply=True,
    )
    dns["flow"]["l7"] = {
        "type": "RESPONSE",
        "dns": {"query": "api.cardprocessor.example.com.", "ips": ["203.0.113.10", "2001:db8::10"]},
    }
    edges = edges_of(tmp_path, [dns, flow(API, CARDS, 443)])
    world = [r for r in edges.edges if r.dst.kind == "world"]
    assert world[0].dst_names == ("api.cardprocessor.example.com",)


def test_ipv6_world_peers_are_128(tmp_path: Path) -> None:
    edges = edges_of(tmp_path, [flow(API, Peer("world", "2001:db8::10"), 443)])
    assert edges.edges[0].dst.selector == "2001:db8::10/128"


def test_policy_drops_are_denied_edges_and_datapath_drops_are_not_edges(tmp_path: Path) -> None:
    edges = edges_of(
        tmp_path,
        [
            flow(
                CHECKOUT,
                LEDGER,
                5432,
                verdict="DROPPED",
                is_reply=None,
                drop_reason="POLICY_DENIED",
                direction="INGRESS",
            ),
            flow(CHECKOUT, LEDGER, 5432, verdict="DROPPED", is_reply=None, drop_reason="CT_MAP_INSERTION_FAILED"),
            flow(API, LEDGER, 5432, verdict="AUDIT"),
        ],
    )
    assert keys(edges) == [
        ("payments", "app=api", "payments", "app.kubernetes.io/name=ledger", "TCP", 5432, True, 1),
        ("shop", "app=checkout", "payments", "app.kubernetes.io/name=ledger", "TCP", 5432, False, 1),
    ]
    assert edges.stats.datapath_drops == 1


def test_forwards_never_seen_at_the_destination_belong_to_its_drops(tmp_path: Path) -> None:
    edges = edges_of(
        tmp_path,
        [
            flow(CHECKOUT, LEDGER, 5432, direction="EGRESS"),  # left the client, then dropped at the server
            flow(
                CHECKOUT,
                LEDGER,
                5432,
                verdict="DROPPED",
                is_reply=None,
                drop_reason="POLICY_DENIED",
                direction="INGRESS",
            ),
        ],
    )
    assert [r.allowed for r in edges.edges] == [False]


def test_one_connection_seen_at_both_ends_counts_once(tmp_path: Path) -> None:
    edges = edges_of(
        tmp_path, [flow(CHECKOUT, API, 8443, direction="EGRESS"), flow(CHECKOUT, API, 8443, direction="INGRESS")]
    )
    assert edges.edges[0].count == 1


def test_node_kinds_stay_their_own_kind(tmp_path: Path) -> None:
    edges = edges_of(tmp_path, [flow(NODE, API, 8444), flow(API, Peer("kube-apiserver", "172.18.0.2"), 6443)])
    kinds = sorted((r.src.kind, r.dst.kind) for r in edges.edges)
    assert kinds == [("host", "pod"), ("pod", "kube-apiserver")]


def test_namespace_filter_keeps_edges_touching_it(tmp_path: Path) -> None:
    flows = [flow(CHECKOUT, API, 8443), flow(CHECKOUT, Pod("shop", "cart-1", {"app": "cart"}, "10.0.3.3"), 7070)]
    edges = edges_of(tmp_path, flows, namespaces=["payments"])
    assert [r.dst.namespace for r in edges.edges] == ["payments"]


def test_sample_store_has_no_ephemeral_ports_and_no_reply_edges(sample_store: Path) -> None:
    edges = aggregate_store(Store(str(sample_store)), Settings())
    ports = {r.port for r in edges.edges if r.port is not None}
    assert ports and max(ports) < 32768, sorted(ports)
    assert edges.stats.replies > 0


def test_aggregation_is_mergeable_file_by_file(tmp_path: Path) -> None:
    flows = [flow(CHECKOUT, API, 8443, time=f"2026-11-20T{h:02d}:00:00Z") for h in range(6)]
    whole = aggregate_batches(batches(write(tmp_path / "a.json", flows)), Settings())
    parts = batches(write(tmp_path / "b.json", flows[:3])) + batches(write(tmp_path / "c.json", flows[3:]))
    assert aggregate_batches(parts, Settings()).table.equals(whole.table)
