"""Small applications whose workloads share labels, for the identity tests: each is a `Shop` the renderers accept.

- **tiered** (`retail`): `app: retail` on every workload, told apart by `tier` (web, api, worker, cache, db), plus
  `api-canary` with `tier: api` and `track: canary`. Public ingress only to web; external egress only from api
  (payment gateway), api-canary (a new partner API) and worker (SMTP relay).
- **versions** (`bookinfo`): productpage → details, productpage → reviews-v1/v2/v3 (`app: reviews`, told apart by
  `version`), and only reviews-v2 and -v3 → ratings. Public ingress to productpage.
- **rollout** (`orders`): the `orders` Deployment rolls out mid-window, its pods' `version` label going from 1.0 to
  1.1 (a new ReplicaSet hash too); `orders-worker` shares `app: orders` with `component: worker`. storefront →
  orders, orders and orders-worker → orders-db.

Every app also has the cluster DNS (`kube-system/coredns`): clients resolve the Services and external names they
call. Namespaces enforce no policy, so every flow is forwarded and carries no policy verdict.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shop_model import (
    NS_PER_H,
    NS_PER_S,
    SEED,
    START,
    Connection,
    DnsQuery,
    Namespace,
    Node,
    Peer,
    Service,
    Shop,
    Workload,
    _Builder,
    _mac,
    _suffix,
)

APPS = ("tiered", "versions", "rollout")
APP_HOURS = 8


@dataclass(frozen=True, slots=True)
class _Spec:
    """One workload of an app: kind, port, replicas and pod labels (`after` labels replace them at the rollout)."""

    name: str
    kind: str
    port: int
    replicas: int
    labels: dict[str, str]
    after: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class _External:
    """An address outside the cluster that some workloads call, with its DNS name."""

    key: str
    name: str
    ips: tuple[str, ...]
    port: int


_TIERED = (
    _Spec("web", "Deployment", 8080, 3, {"app": "retail", "tier": "web"}),
    _Spec("api", "Deployment", 8080, 3, {"app": "retail", "tier": "api"}),
    _Spec("api-canary", "Deployment", 8080, 1, {"app": "retail", "tier": "api", "track": "canary"}),
    _Spec("worker", "Deployment", 9000, 2, {"app": "retail", "tier": "worker"}),
    _Spec("cache", "StatefulSet", 6379, 1, {"app": "retail", "tier": "cache"}),
    _Spec("db", "StatefulSet", 5432, 1, {"app": "retail", "tier": "db"}),
)
_TIERED_EXTERNAL = (
    _External("gateway", "api.paygateway.example.com", ("203.0.113.20", "203.0.113.21"), 443),
    _External("partner", "api.newpartner.example.com", ("203.0.113.30",), 443),
    _External("smtp", "smtp.mailrelay.example.com", ("198.51.100.25",), 587),
)
# (client, server, per hour); a server without "/" is an external key
_TIERED_CALLS = (
    ("world", "web", 20.0),
    ("web", "api", 12.0),
    ("web", "api-canary", 3.0),
    ("api", "cache", 10.0),
    ("api", "db", 6.0),
    ("api", "gateway", 3.0),
    ("api-canary", "cache", 3.0),
    ("api-canary", "db", 2.0),
    ("api-canary", "partner", 2.0),
    ("worker", "db", 4.0),
    ("worker", "smtp", 2.0),
)

_VERSIONS = (
    _Spec("productpage-v1", "Deployment", 9080, 2, {"app": "productpage", "version": "v1"}),
    _Spec("details-v1", "Deployment", 9080, 1, {"app": "details", "version": "v1"}),
    _Spec("reviews-v1", "Deployment", 9080, 1, {"app": "reviews", "version": "v1"}),
    _Spec("reviews-v2", "Deployment", 9080, 1, {"app": "reviews", "version": "v2"}),
    _Spec("reviews-v3", "Deployment", 9080, 1, {"app": "reviews", "version": "v3"}),
    _Spec("ratings-v1", "Deployment", 9080, 1, {"app": "ratings", "version": "v1"}),
)
_VERSIONS_CALLS = (
    ("world", "productpage-v1", 20.0),
    ("productpage-v1", "details-v1", 10.0),
    ("productpage-v1", "reviews-v1", 4.0),
    ("productpage-v1", "reviews-v2", 4.0),
    ("productpage-v1", "reviews-v3", 4.0),
    ("reviews-v2", "ratings-v1", 4.0),
    ("reviews-v3", "ratings-v1", 4.0),
)

_ROLLOUT = (
    _Spec("storefront", "Deployment", 8080, 2, {"app": "storefront"}),
    _Spec(
        "orders",
        "Deployment",
        8080,
        2,
        {"app": "orders", "version": "1.0"},
        after={"app": "orders", "version": "1.1"},
    ),
    _Spec("orders-worker", "Deployment", 9000, 1, {"app": "orders", "component": "worker"}),
    _Spec("orders-db", "StatefulSet", 5432, 1, {"app": "orders-db"}),
)
_ROLLOUT_CALLS = (
    ("storefront", "orders", 12.0),
    ("orders", "orders-db", 8.0),
    ("orders-worker", "orders-db", 4.0),
)

_APPS: dict[str, tuple[str, tuple[_Spec, ...], tuple[_External, ...], tuple[tuple[str, str, float], ...]]] = {
    "tiered": ("retail", _TIERED, _TIERED_EXTERNAL, _TIERED_CALLS),
    "versions": ("bookinfo", _VERSIONS, (), _VERSIONS_CALLS),
    "rollout": ("orders", _ROLLOUT, (), _ROLLOUT_CALLS),
}
_DNS_SERVICE = Service("kube-system", "kube-dns", "10.96.0.10", 53, 53)
_COREDNS = Workload("kube-system", "coredns", "Deployment", "coredns", 53, None, None, _DNS_SERVICE)


def app_namespace(app: str) -> str:
    """The namespace an app runs in."""
    return _APPS[app][0]


def build_app(app: str, seed: int = SEED) -> Shop:
    """The model of one app over `APP_HOURS` hours; the rollout (if any) happens in the middle of the window."""
    namespace, specs, externals, calls = _APPS[app]
    rng = random.Random(f"{seed}/apps/{app}")
    start = int(START.timestamp()) * NS_PER_S
    end = start + APP_HOURS * NS_PER_H
    rollout = start + APP_HOURS * NS_PER_H // 2
    nodes = [
        Node(f"apps-worker-{i + 1}", f"10.0.9.{11 + i}", f"10.245.{i + 1}.{rng.randrange(130, 250)}", f"10.245.{i + 1}",
             _mac(rng))
        for i in range(3)
    ]
    namespaces = {
        namespace: Namespace(namespace, (("kubernetes.io/metadata.name", namespace),), "none"),
        "kube-system": Namespace("kube-system", (("kubernetes.io/metadata.name", "kube-system"),), "none"),
    }
    b = _Builder(rng, nodes, namespaces)
    workloads: dict[str, Workload] = {_COREDNS.key: _COREDNS}
    for i in range(2):
        b.pod(_COREDNS, f"coredns-5d78c9869d-{_suffix(rng, 5)}", nodes[i], {"k8s-app": "kube-dns"}, start - NS_PER_H,
              end + NS_PER_H)
    for position, spec in enumerate(specs):
        service = Service(namespace, spec.name, f"10.96.{50 + position}.{rng.randrange(2, 250)}", spec.port, spec.port)
        wl = Workload(namespace, spec.name, spec.kind, spec.name, spec.port, None, None, service)
        workloads[wl.key] = wl
        _pods(b, wl, spec, start, end, rollout, rng)
    peers = {"world": Peer("world", "world", ())}
    peers.update({e.key: Peer(e.key, "world", e.ips, (e.name,)) for e in externals})
    clients = tuple(sorted({f"198.18.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}" for _ in range(120)}))
    weights = tuple(1.0 / (i + 1) ** 0.5 for i in range(len(clients)))
    connections = _connections(namespace, workloads, {e.key: e for e in externals}, calls)
    return Shop(start, end, tuple(nodes), namespaces, workloads, tuple(b.pods), peers, connections, clients, weights,
                rollout)


def _pods(b: _Builder, wl: Workload, spec: _Spec, start: int, end: int, rollout: int, rng: random.Random) -> None:
    """The workload's pods; with `after` labels, the first ReplicaSet stops at the rollout and a second one starts."""
    rs_hash = _suffix(rng, 10)
    for i in range(spec.replicas):
        node = b.nodes[i % len(b.nodes)]
        name = f"{spec.name}-{i}" if spec.kind == "StatefulSet" else f"{spec.name}-{rs_hash}-{_suffix(rng, 5)}"
        stop = rollout + (i + 1) * 40 * NS_PER_S if spec.after else end + NS_PER_H
        b.pod(wl, name, node, {**spec.labels, **_controller_labels(spec, name, rs_hash)}, start - 5 * NS_PER_H, stop)
    if spec.after is None:
        return
    new_hash = _suffix(rng, 10)
    for i in range(spec.replicas):
        name = f"{spec.name}-{new_hash}-{_suffix(rng, 5)}"
        labels = {**spec.after, **_controller_labels(spec, name, new_hash)}
        b.pod(wl, name, b.nodes[(i + 1) % len(b.nodes)], labels, rollout + i * 40 * NS_PER_S, end + NS_PER_H)


def _controller_labels(spec: _Spec, pod: str, rs_hash: str) -> dict[str, str]:
    """What the controller adds: the template hash, or the StatefulSet's per-pod labels."""
    if spec.kind == "StatefulSet":
        return {"statefulset.kubernetes.io/pod-name": pod, "controller-revision-hash": f"{spec.name}-{rs_hash[:10]}"}
    return {"pod-template-hash": rs_hash}


def _connections(
    namespace: str,
    workloads: dict[str, Workload],
    externals: dict[str, _External],
    calls: tuple[tuple[str, str, float], ...],
) -> tuple[Connection, ...]:
    """The app's calls, then one DNS connection per client for the Services and names it calls."""
    tcp: list[Connection] = []
    lookups: dict[str, list[DnsQuery]] = {}
    for client, server, per_hour in calls:
        client_key = client if client == "world" else f"{namespace}/{client}"
        if server in externals:
            ext = externals[server]
            lookup = (DnsQuery(f"{ext.name}.", "A", ext.ips, ttl=60),)
            tcp.append(Connection(client_key, server, ext.port, "TCP", per_hour, lookup=lookup, data_share=0.6))
            continue
        wl = workloads[f"{namespace}/{server}"]
        tcp.append(Connection(client_key, wl.key, wl.port, "TCP", per_hour, service=wl.service, data_share=0.5))
        if client != "world" and wl.service is not None:
            name = f"{wl.service.name}.{namespace}.svc.cluster.local."
            lookups.setdefault(client_key, []).append(DnsQuery(name, "A", (wl.service.cluster_ip,)))
    dns = [
        Connection(client, _COREDNS.key, 53, "UDP", 2.0, kind="dns", service=_COREDNS.service,
                   dns_queries=tuple(queries))
        for client, queries in sorted(lookups.items())
    ]
    return (*tcp, *dns)
