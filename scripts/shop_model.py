"""The modelled web shop and its traffic schedule, shared by every renderer of `gen_flows.py`.

1. **Model** (`Shop`, built by `build_shop`): nodes, namespaces, workloads, pods (node, IP, labels, lifetime),
   external peers and connections (client → server/port/protocol, rate, which policy direction denies it).
2. **Schedule** (`conversations`): turns the model into time-ordered `Conversation`s (one TCP connection, one
   DNS exchange, one kubelet probe), bucket by bucket, in bounded memory.

Renderers (Hubble in `gen_flows.py`, Calico flows.log in `calico_render.py`) turn each conversation into the records
their producer would write; the same seed gives the same conversations, so the outputs describe the same traffic.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

SEED = 20261119
START = datetime(2026, 11, 19, tzinfo=UTC)
WINDOW_HOURS = 48
NS_PER_S = 1_000_000_000
NS_PER_H = 3600 * NS_PER_S
BUCKET_NS = 60 * NS_PER_S
EPHEMERAL = (32768, 60999)
CARD_API = "api.cardprocessor.example.com"
DNS_TTL_S = 30

# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class Node:
    """A cluster node: name, node IP, Cilium router (cilium_host) IP inside its pod CIDR, and pod CIDR prefix."""

    name: str
    ip: str
    router_ip: str
    pod_prefix: str
    mac: str


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace with its labels; policy_mode is "enforce", "audit" (policy audit mode) or "none"."""

    name: str
    labels: tuple[tuple[str, str], ...]
    policy_mode: str


@dataclass(frozen=True, slots=True)
class Service:
    """A ClusterIP/LoadBalancer Service: flows carry the backend port, the Service only as destination_service."""

    namespace: str
    name: str
    cluster_ip: str
    port: int
    target_port: int


@dataclass(frozen=True, slots=True)
class Workload:
    """A controller (Deployment, StatefulSet, CronJob) and the ports its pods listen on."""

    namespace: str
    name: str
    kind: str
    service_account: str
    port: int
    metrics_port: int | None
    health_port: int | None
    service: Service | None

    @property
    def key(self) -> str:
        """`namespace/name`, the key connections use."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod: placement, address, identity labels (pod labels only, `key=value`) and lifetime in ns."""

    name: str
    namespace: str
    workload: str
    workload_kind: str
    service_account: str
    node: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    identity: int
    endpoint_id: int
    start_ns: int
    end_ns: int
    mac: str
    ifindex: int
    ifname: str


@dataclass(frozen=True, slots=True)
class Peer:
    """A non-pod endpoint: world clients, an external API, the kube-apiserver or the node itself (kubelet)."""

    key: str
    kind: str
    ips: tuple[str, ...]
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsQuery:
    """One DNS question and its answer as CoreDNS gives it (rcode 3 = NXDOMAIN)."""

    name: str
    qtype: str
    answers: tuple[str, ...]
    rcode: int = 0
    ttl: int = DNS_TTL_S


@dataclass(frozen=True, slots=True)
class Connection:
    """Traffic from a client (workload key or peer key) to a server at a backend port.

    `denied` lists the policy directions ("egress", "ingress") that have no allow rule: in an enforcing namespace
    the traffic is dropped there, in an audit-mode namespace it is forwarded with an AUDIT verdict.
    """

    client: str
    server: str
    port: int
    protocol: str
    per_hour: float  # whole connection; per pod for probes and for CronJob pods while they run
    kind: str = "tcp"  # "tcp", "dns" (L7 DNS exchange) or "probe" (kubelet, per pod)
    service: Service | None = None
    denied: frozenset[str] = frozenset()
    dns_queries: tuple[DnsQuery, ...] = ()
    lookup: tuple[DnsQuery, ...] = ()  # DNS exchanges the client makes first when its cache has expired
    lookup_protocol: str = "UDP"
    redirect_dns: bool = False  # egress policy has DNS rules: verdict REDIRECTED to the DNS proxy
    data_share: float = 0.3  # share of conversations that also show data and FIN packets


@dataclass(frozen=True, slots=True)
class Shop:
    """The whole modelled cluster and its traffic."""

    start_ns: int
    end_ns: int
    nodes: tuple[Node, ...]
    namespaces: dict[str, Namespace]
    workloads: dict[str, Workload]
    pods: tuple[Pod, ...]
    peers: dict[str, Peer]
    connections: tuple[Connection, ...]
    world_clients: tuple[str, ...]
    world_weights: tuple[float, ...]
    rollout_ns: int


@dataclass(frozen=True, slots=True)
class Conversation:
    """One connection instance: who talked to whom, when, from which port; the unit every renderer consumes."""

    time_ns: int
    conn: int
    client: Pod | None
    server: Pod | None
    peer_ip: str  # address of the non-pod side ("" when both sides are pods)
    src_port: int
    latency_ns: int
    data: bool
    query: int = -1  # index into the connection's dns_queries / lookup, -1 for plain TCP
    from_lookup: bool = False


# ------------------------------------------------------------------------------------------------ building

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes


def _suffix(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_NAME_CHARS) for _ in range(n))


def _mac(rng: random.Random) -> str:
    octets = [rng.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{o:02x}" for o in octets)


@dataclass
class _Builder:
    """Mutable helper that allocates IPs, endpoint IDs and identities while the shop is built."""

    rng: random.Random
    nodes: list[Node]
    namespaces: dict[str, Namespace]
    next_host: dict[str, int] = field(default_factory=dict)
    identities: dict[tuple[str, ...], int] = field(default_factory=dict)
    used_ids: set[int] = field(default_factory=set)
    pods: list[Pod] = field(default_factory=list)

    def identity(self, labels: tuple[str, ...]) -> int:
        if labels not in self.identities:
            ident = self.rng.randrange(1000, 65000)
            while ident in self.used_ids:
                ident = self.rng.randrange(1000, 65000)
            self.used_ids.add(ident)
            self.identities[labels] = ident
        return self.identities[labels]

    def pod(self, wl: Workload, name: str, node: Node, labels: dict[str, str], start: int, end: int) -> Pod:
        host = self.next_host.get(node.name, 10) + self.rng.randrange(1, 4)
        if host > 250:
            host = 10 + self.rng.randrange(1, 4)  # the pool wraps: pod IPs get reused, as on real nodes
        self.next_host[node.name] = host
        pairs = tuple(sorted(labels.items()))
        pod = Pod(
            name=name,
            namespace=wl.namespace,
            workload=wl.name,
            workload_kind=wl.kind,
            service_account=wl.service_account,
            node=node.name,
            ip=f"{node.pod_prefix}.{host}",
            labels=pairs,
            identity=self.identity((wl.namespace, *(f"{k}={v}" for k, v in pairs))),
            endpoint_id=self.rng.randrange(100, 4000),
            start_ns=start,
            end_ns=end,
            mac=_mac(self.rng),
            ifindex=self.rng.randrange(12, 240),
            ifname=f"lxc{self.rng.getrandbits(48):012x}",
        )
        self.pods.append(pod)
        return pod


def _workloads() -> list[tuple[Workload, int, dict[str, str]]]:
    """The shop's workloads, their replica counts at scale 1 and pod labels (several label schemes on purpose)."""

    def svc(ns: str, name: str, ip: str, port: int, target: int) -> Service:
        return Service(ns, name, ip, port, target)

    def wl(
        ns: str,
        name: str,
        kind: str,
        sa: str,
        port: int,
        metrics: int | None,
        health: int | None,
        service: Service | None,
    ) -> Workload:
        return Workload(ns, name, kind, sa, port, metrics, health, service)

    return [
        (
            wl(
                "shop",
                "frontend",
                "Deployment",
                "frontend",
                8080,
                9090,
                8081,
                svc("shop", "frontend", "10.96.40.17", 80, 8080),
            ),
            3,
            {"app": "frontend", "tier": "web"},
        ),
        (
            wl(
                "shop",
                "checkout",
                "Deployment",
                "checkout",
                8080,
                9090,
                8080,
                svc("shop", "checkout", "10.96.112.5", 80, 8080),
            ),
            2,
            {"app": "checkout"},
        ),
        (
            wl("shop", "cart", "Deployment", "cart", 7070, 9090, 7070, svc("shop", "cart", "10.96.77.201", 7070, 7070)),
            2,
            {"app": "cart", "tier": "backend"},
        ),
        (
            wl(
                "shop",
                "catalog",
                "Deployment",
                "catalog",
                3550,
                9464,
                3550,
                svc("shop", "catalog", "10.96.9.88", 3550, 3550),
            ),
            2,
            {
                "app.kubernetes.io/name": "catalog",
                "app.kubernetes.io/component": "api",
                "app.kubernetes.io/version": "3.2.1",
            },
        ),
        (
            wl(
                "payments",
                "api",
                "Deployment",
                "payments-api",
                8443,
                9102,
                8444,
                svc("payments", "api", "10.96.201.33", 8443, 8443),
            ),
            3,
            {
                "app.kubernetes.io/name": "api",
                "app.kubernetes.io/component": "server",
                "app.kubernetes.io/part-of": "payments",
                "app.kubernetes.io/version": "1.41.0",
            },
        ),
        (
            wl(
                "payments",
                "ledger",
                "StatefulSet",
                "ledger",
                5432,
                9187,
                5432,
                svc("payments", "ledger", "10.96.150.4", 5432, 5432),
            ),
            1,
            {
                "app.kubernetes.io/name": "ledger",
                "app.kubernetes.io/component": "database",
                "app.kubernetes.io/version": "16.4",
            },
        ),
        (
            wl("payments", "reconcile", "CronJob", "reconcile", 0, None, None, None),
            0,
            {"app.kubernetes.io/name": "reconcile", "app.kubernetes.io/component": "batch"},
        ),
        (
            wl("monitoring", "prometheus-k8s", "StatefulSet", "prometheus-k8s", 9090, 9090, 9090, None),
            2,
            {
                "app.kubernetes.io/name": "prometheus",
                "app.kubernetes.io/instance": "k8s",
                "app.kubernetes.io/component": "prometheus",
                "app.kubernetes.io/version": "2.53.1",
            },
        ),
        (
            wl(
                "kube-system",
                "coredns",
                "Deployment",
                "coredns",
                53,
                9153,
                8080,
                svc("kube-system", "kube-dns", "10.96.0.10", 53, 53),
            ),
            2,
            {"k8s-app": "kube-dns"},
        ),
    ]


def build_shop(scale: int = 1, seed: int = SEED) -> Shop:
    """Build the shop model; `scale` multiplies nodes and replicas (the `big` mode uses more pods)."""
    rng = random.Random(f"{seed}/shop/{scale}")
    start = int(START.timestamp()) * NS_PER_S
    end = start + WINDOW_HOURS * NS_PER_H
    nodes = []
    for i in range(3 * scale):
        zone = "abc"[i % 3]
        nodes.append(
            Node(
                f"prod-worker-{i // 3 + 1}{zone}",
                f"10.0.{i % 3 + 1}.{11 + i}",
                f"10.244.{i + 1}.{rng.randrange(130, 250)}",
                f"10.244.{i + 1}",
                _mac(rng),
            )
        )
    namespaces = {
        "shop": Namespace("shop", (("kubernetes.io/metadata.name", "shop"), ("team", "storefront")), "audit"),
        "payments": Namespace(
            "payments", (("kubernetes.io/metadata.name", "payments"), ("pci", "true"), ("team", "payments")), "enforce"
        ),
        "monitoring": Namespace(
            "monitoring", (("kubernetes.io/metadata.name", "monitoring"), ("team", "platform")), "none"
        ),
        "kube-system": Namespace("kube-system", (("kubernetes.io/metadata.name", "kube-system"),), "none"),
    }
    b = _Builder(rng, nodes, namespaces)
    workloads: dict[str, Workload] = {}
    rollout = start + 37 * NS_PER_H + 36 * 60 * NS_PER_S  # 2026-11-20T13:36Z
    for wl, replicas, labels in _workloads():
        workloads[wl.key] = wl
        offset = rng.randrange(len(nodes))
        count = replicas * scale if wl.kind == "Deployment" or wl.name == "prometheus-k8s" else replicas
        if wl.kind == "CronJob":
            _cronjob_pods(b, wl, labels, start, end)
            continue
        rs_hash = _suffix(rng, 10)
        for i in range(count):
            node = nodes[(offset + i) % len(nodes)]
            name = f"{wl.name}-{i}" if wl.kind == "StatefulSet" else f"{wl.name}-{rs_hash}-{_suffix(rng, 5)}"
            pod_start = start - rng.randrange(2, 400) * NS_PER_H
            if wl.key == "payments/api":  # the rollout: old ReplicaSet stops, new one starts with a new version
                b.pod(wl, name, node, labels, pod_start, rollout + i * 40 * NS_PER_S + 30 * NS_PER_S)
                continue
            b.pod(wl, name, node, labels, pod_start, end + NS_PER_H)
        if wl.key == "payments/api":
            new_hash, new_labels = _suffix(rng, 10), {**labels, "app.kubernetes.io/version": "1.42.0"}
            for i in range(count):
                node = nodes[(offset + 1 + i) % len(nodes)]
                b.pod(
                    wl,
                    f"api-{new_hash}-{_suffix(rng, 5)}",
                    node,
                    new_labels,
                    rollout + i * 40 * NS_PER_S,
                    end + NS_PER_H,
                )
    peers = {
        "world": Peer("world", "world", ()),
        "cardprocessor": Peer("cardprocessor", "world", ("203.0.113.10", "203.0.113.11", "203.0.113.12"), (CARD_API,)),
        "kube-apiserver": Peer("kube-apiserver", "kube-apiserver", ("10.0.0.2",)),
        "host": Peer("host", "host", ()),
    }
    clients = tuple(
        sorted({f"{rng.choice(('198.51.100', '192.0.2', '100.64.37'))}.{rng.randrange(1, 255)}" for _ in range(400)})
    )
    weights = tuple(1.0 / (i + 1) ** 0.8 for i in range(len(clients)))  # a few heavy hitters, a long tail
    return Shop(
        start,
        end,
        tuple(nodes),
        namespaces,
        workloads,
        tuple(b.pods),
        peers,
        _connections(workloads),
        clients,
        weights,
        rollout,
    )


def _cronjob_pods(b: _Builder, wl: Workload, labels: dict[str, str], start: int, end: int) -> None:
    """One Job per hour (schedule "0 * * * *"); Job names carry the scheduled time in minutes since the epoch."""
    for hour in range(WINDOW_HOURS):
        scheduled = start + hour * NS_PER_H
        job = f"{wl.name}-{scheduled // NS_PER_S // 60}"
        pod_labels = {**labels, "batch.kubernetes.io/job-name": job, "job-name": job}
        node = b.rng.choice(b.nodes)
        begin = scheduled + b.rng.randrange(1, 4) * NS_PER_S
        b.pod(wl, f"{job}-{_suffix(b.rng, 5)}", node, pod_labels, begin, begin + b.rng.randrange(90, 150) * NS_PER_S)


def _dns_name(svc: Service) -> str:
    return f"{svc.name}.{svc.namespace}.svc.cluster.local."


def _connections(wls: dict[str, Workload]) -> tuple[Connection, ...]:
    """Who talks to whom. Rates are conversations per hour for the whole connection at rate 1."""

    def svc(key: str) -> Service:
        service = wls[key].service
        assert service is not None
        return service

    card_ips = ("203.0.113.10", "203.0.113.11", "203.0.113.12")
    card_lookup = (
        DnsQuery(f"{CARD_API}.payments.svc.cluster.local.", "A", (), rcode=3, ttl=4294967295),
        DnsQuery(f"{CARD_API}.", "A", card_ips, ttl=60),
        DnsQuery(f"{CARD_API}.", "AAAA", ("2001:db8:4a7f::10",), ttl=60),
    )
    tcp = [
        Connection("world", "shop/frontend", 8080, "TCP", 14, service=svc("shop/frontend"), data_share=0.5),
        Connection("shop/frontend", "shop/catalog", 3550, "TCP", 6, service=svc("shop/catalog")),
        Connection("shop/frontend", "shop/cart", 7070, "TCP", 4, service=svc("shop/cart")),
        Connection("shop/frontend", "shop/checkout", 8080, "TCP", 3, service=svc("shop/checkout")),
        Connection("shop/checkout", "shop/cart", 7070, "TCP", 2, service=svc("shop/cart")),
        Connection("shop/checkout", "payments/api", 8443, "TCP", 3, service=svc("payments/api")),
        Connection("payments/api", "payments/ledger", 5432, "TCP", 3, service=svc("payments/ledger")),
        Connection("payments/api", "cardprocessor", 443, "TCP", 2, lookup=card_lookup, data_share=0.6),
        Connection("payments/reconcile", "payments/ledger", 5432, "TCP", 120, service=svc("payments/ledger")),
        Connection(
            "payments/reconcile",
            "cardprocessor",
            443,
            "TCP",
            60,
            denied=frozenset({"egress"}),
            lookup=card_lookup,
            lookup_protocol="TCP",
        ),
        Connection(
            "shop/cart",
            "payments/ledger",
            5432,
            "TCP",
            0.5,
            service=svc("payments/ledger"),
            denied=frozenset({"egress", "ingress"}),
        ),
        Connection(
            "monitoring/prometheus-k8s",
            "kube-apiserver",
            6443,
            "TCP",
            1.5,
            service=Service("default", "kubernetes", "10.96.0.1", 443, 6443),
        ),
    ]
    for key, wl in wls.items():
        if wl.metrics_port is not None and key != "monitoring/prometheus-k8s":
            # Scrapes of the shop are not in its draft policy yet: AUDIT verdicts in the audit-mode namespace.
            denied = frozenset({"ingress"}) if wl.namespace == "shop" else frozenset()
            tcp.append(
                Connection("monitoring/prometheus-k8s", key, wl.metrics_port, "TCP", 1, denied=denied, data_share=0.8)
            )
        if wl.health_port is not None:
            tcp.append(Connection("host", key, wl.health_port, "TCP", 0.5, kind="probe", data_share=0.8))
    dns_svc = svc("kube-system/coredns")
    for client in sorted({c.client for c in tcp if "/" in c.client} - {"kube-system/coredns"}):
        names = sorted(
            {
                _dns_name(c.service)
                for c in tcp
                if c.client == client and c.service is not None and c.service.namespace != "default"
            }
        )
        queries = tuple(DnsQuery(n, "A", (svc(_svc_key(wls, n)).cluster_ip,)) for n in names)
        queries += tuple(DnsQuery(n, "AAAA", ()) for n in names[:1])
        if not queries:
            continue
        client_ns = client.split("/", 1)[0]
        proto = "TCP" if client == "payments/reconcile" else "UDP"
        tcp.append(
            Connection(
                client,
                "kube-system/coredns",
                53,
                proto,
                1.5,
                kind="dns",
                service=dns_svc,
                dns_queries=queries,
                redirect_dns=client_ns == "payments",
            )
        )
    # Truncated answers make the resolver retry over TCP; the reconcile job uses TCP (`use-vc`) for everything.
    tcp.append(
        Connection(
            "payments/api",
            "kube-system/coredns",
            53,
            "TCP",
            0.4,
            kind="dns",
            service=dns_svc,
            dns_queries=card_lookup[1:],
            redirect_dns=True,
        )
    )
    return tuple(tcp)


def _svc_key(wls: dict[str, Workload], dns_name: str) -> str:
    name, ns = dns_name.split(".")[:2]
    return next(k for k, w in wls.items() if w.service and w.service.name == name and w.namespace == ns)


# ------------------------------------------------------------------------------------------------ schedule


def conversations(
    shop: Shop, start_ns: int, end_ns: int, rate: float, seed: int = SEED
) -> Iterator[list[Conversation]]:
    """Yield the conversations of [start_ns, end_ns) one minute at a time, each batch sorted by time."""
    rng = random.Random(f"{seed}/schedule/{start_ns}/{rate}")
    by_workload: dict[str, list[Pod]] = {}
    for pod in shop.pods:
        by_workload.setdefault(f"{pod.namespace}/{pod.workload}", []).append(pod)
    last_lookup: dict[str, int] = {}
    cum_weights = _cumulative(shop.world_weights)
    bucket = start_ns
    while bucket < end_ns:
        top = min(bucket + BUCKET_NS, end_ns)
        alive = {k: [p for p in pods if p.start_ns < top and p.end_ns > bucket] for k, pods in by_workload.items()}
        batch: list[Conversation] = []
        for index, conn in enumerate(shop.connections):
            _schedule_connection(shop, rng, index, conn, alive, bucket, top, rate, last_lookup, cum_weights, batch)
        batch.sort(key=lambda c: c.time_ns)
        yield batch
        bucket = top


def _cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, pods: list[Pod], t: int) -> Pod | None:
    live = [p for p in pods if p.start_ns <= t < p.end_ns]
    return rng.choice(live) if live else None


def _schedule_connection(
    shop: Shop,
    rng: random.Random,
    index: int,
    conn: Connection,
    alive: dict[str, list[Pod]],
    bucket: int,
    top: int,
    rate: float,
    last_lookup: dict[str, int],
    cum_weights: list[float],
    batch: list[Conversation],
) -> None:
    servers = alive.get(conn.server, [])
    clients = alive.get(conn.client, [])
    if conn.kind == "probe":  # kubelet probes every pod, wherever it runs
        units: list[Pod | None] = list(servers)
    elif conn.client == "payments/reconcile":  # a Job's pod talks while it runs, regardless of the hour
        units = list(clients)
    else:
        units = [None]
    per_unit = conn.per_hour * rate * (top - bucket) / NS_PER_H
    for unit in units:
        count = int(per_unit) + (rng.random() < per_unit - int(per_unit))
        times = sorted(rng.randrange(bucket, top) for _ in range(count))
        for t in times:
            client = server = None
            if conn.kind == "probe":
                server = unit
            else:
                if "/" in conn.client:
                    client = unit if unit is not None else _pick(rng, clients, t)
                    if client is None or not client.start_ns <= t < client.end_ns:
                        continue
                if "/" in conn.server:
                    server = _pick(rng, servers, t)
                    if server is None:
                        continue
            if server is not None and not server.start_ns <= t < server.end_ns:
                continue
            peer_ip = ""
            if conn.client == "world":
                peer_ip = rng.choices(shop.world_clients, cum_weights=cum_weights)[0]
            elif conn.client == "host" and server is not None:
                peer_ip = next(n.router_ip for n in shop.nodes if n.name == server.node)
            elif "/" not in conn.server:
                peer_ip = rng.choice(shop.peers[conn.server].ips)
            if (
                conn.lookup
                and client is not None
                and t - last_lookup.get(client.name, -(10**18)) > DNS_TTL_S * NS_PER_S
            ):
                last_lookup[client.name] = t
                _schedule_lookup(shop, rng, conn, client, t, batch)
            latency = rng.randrange(60_000, 900_000)
            query = rng.randrange(len(conn.dns_queries)) if conn.dns_queries else -1
            batch.append(
                Conversation(
                    t,
                    index,
                    client,
                    server,
                    peer_ip,
                    rng.randint(*EPHEMERAL),
                    latency,
                    rng.random() < conn.data_share,
                    query,
                )
            )


def _schedule_lookup(
    shop: Shop, rng: random.Random, conn: Connection, client: Pod, t: int, batch: list[Conversation]
) -> None:
    """The resolver's queries (search-path miss, A, AAAA) a few ms before the connection they precede."""
    index = shop.connections.index(conn)
    coredns = [p for p in shop.pods if p.workload == "coredns" and p.start_ns <= t < p.end_ns]
    for i in range(len(conn.lookup)):
        at = t - (len(conn.lookup) - i) * rng.randrange(1_500_000, 4_000_000)
        batch.append(
            Conversation(
                at,
                index,
                client,
                rng.choice(coredns),
                "",
                rng.randint(*EPHEMERAL),
                rng.randrange(300_000, 2_500_000),
                False,
                i,
                from_lookup=True,
            )
        )
