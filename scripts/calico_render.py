"""Calico Enterprise flow logs of the shop: the `flows.log` lines Felix would write for the Hubble sample's traffic.

The conversations come from `shop_model.conversations` with the same seed and the same two calls (first 24 h, last
24 h) as the Hubble sample, so both describe the same connections. Felix's defaults shape the records:

- every `flowLogsFlushInterval` (300 s) each node writes one record per key: reporter × action × source
  (`name_aggr`, namespace, type) × destination (`name_aggr`, namespace, type) × `dest_port` × proto × Service ×
  policy hits; allowed flows at aggregation level 2 (pod prefix, no IPs), denied ones at level 1 (names and IPs
  kept, no source port); `num_flows` counts the conversations of the key, each in the interval it started;
- a connection between two pods gives a `reporter: src` record on the client's node and a `reporter: dst` record
  on the server's node; a peer that is not a Calico workload (world, kubelet, kube-apiserver, card processor)
  gives no record of its own;
- labels are the pods' full labels (controller labels and `projectcalico.org/*` included) in an unsorted order;
  at level 2 they are intersected over the folded pods and `projectcalico.org/*` keys are dropped;
- policies as with `flowLogsFileIncludePolicies`: `payments` enforces Kubernetes policies, `shop` has them
  staged (audit mode: the profile decides, `pending_policies` say what the staged policy would do), `monitoring`
  and `kube-system` only have the namespace profile.

The denied reconcile → card processor attempts are classified into the GlobalNetworkSet `card-processors`
(type `ns`), while the allowed payments/api → card processor flows show `net`/`pub`: the sample shows both ways an
external peer can appear (real Felix would classify both through the set once it exists).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shop_model import NS_PER_H, NS_PER_S, Connection, Conversation, Pod, Shop, conversations

FLOWLOG_FILE = "calico-flows.log.gz"
ES_FILE = "calico-es-export.json.gz"
FLUSH_S = 300
LEVEL_ALLOWED, LEVEL_DENIED = 2, 1  # flowLogsFileAggregationKindForAllowed / ...ForDenied defaults
CARD_SET = "card-processors"
CARD_SET_LABELS = ("vendor=cardco", "pci=true")
ES_INDEX = "tigera_secure_ee_flows.cluster.{day}"
ES_PAGE = 200
ES_HOURS = 2  # the export: the hour before the api rollout's hour and the rollout's hour
# Service port names (the flow log carries the name in dest_service_port, the number in dest_service_port_num).
PORT_NAMES = {
    ("shop", "frontend"): "http",
    ("shop", "checkout"): "http",
    ("shop", "cart"): "grpc",
    ("shop", "catalog"): "grpc",
    ("payments", "api"): "https",
    ("payments", "ledger"): "postgres",
    ("default", "kubernetes"): "https",
}
_PRIVATE = ("10.", "192.168.", *(f"172.{n}." for n in range(16, 32)))
_PLACEHOLDER_PROCESS = {
    "process_name": "-",
    "num_process_names": 0,
    "process_id": "-",
    "num_process_ids": 0,
    "process_args": ["-"],
    "num_process_args": 0,
    "original_source_ips": None,
    "num_original_source_ips": 0,
}
_TCP_STATS = (
    "tcp_mean_send_congestion_window",
    "tcp_min_send_congestion_window",
    "tcp_mean_smooth_rtt",
    "tcp_max_smooth_rtt",
    "tcp_mean_min_rtt",
    "tcp_max_min_rtt",
    "tcp_mean_mss",
    "tcp_min_mss",
    "tcp_total_retransmissions",
    "tcp_lost_packets",
    "tcp_unrecovered_to",
)

Side = tuple[str, str, str, str, str | None]  # type, name, name_aggr, namespace, ip


@dataclass(frozen=True, slots=True)
class RecordKey:
    """What keeps two flows in separate records of one node's export interval."""

    start_s: int
    node: str
    reporter: str
    action: str
    src: Side
    dst: Side
    dest_port: int
    proto: str
    service: tuple[str, str, str, int | None]  # namespace, name, port name, port number ("-" and None: none)
    enforced: tuple[str, ...]
    pending: tuple[str, ...]
    domains: tuple[str, ...]

    def order(self) -> tuple[Any, ...]:
        """Sort key: node, reporter, endpoints, port; None sorts as empty."""
        return (self.node, self.reporter, *(v or "" for v in (*self.src, *self.dst)), self.dest_port, self.proto,
                self.action, self.service[:3], self.enforced, self.pending)


@dataclass(slots=True)
class Tally:
    """Counters of one record and the pods folded into it (for the label intersection)."""

    flows: int = 0
    started: int = 0
    completed: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    src_pods: dict[str, Pod] = field(default_factory=dict)
    dst_pods: dict[str, Pod] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Packets and bytes of one conversation: request direction, then reply direction."""

    req_packets: int
    req_bytes: int
    resp_packets: int
    resp_bytes: int


def name_aggr(pod: Pod) -> str:
    """Felix's aggregated name: generateName + `*` (ReplicaSet and Job pods), the pod name otherwise."""
    if pod.workload_kind == "StatefulSet":
        return pod.name
    return pod.name.rsplit("-", 1)[0] + "-*"


def net_bucket(ip: str) -> str:
    """`pvt` for RFC 1918 addresses, `pub` for anything else (100.64/10 included), as Felix does."""
    return "pvt" if ip.startswith(_PRIVATE) else "pub"


class CalicoRenderer:
    """Turns conversations into per-interval, per-node flow-log records of one shop."""

    def __init__(self, shop: Shop, seed: int) -> None:
        self.shop = shop
        self.seed = seed
        self.node_ips = {n.name: n.ip for n in shop.nodes}
        self.rules = _rules(shop)
        self._labels: dict[str, tuple[str, ...]] = {}

    # -- labels

    def pod_labels(self, pod: Pod) -> tuple[str, ...]:
        """The pod's full labels as Felix reports them: controller labels too, in a fixed unsorted order."""
        cached = self._labels.get(pod.name)
        if cached is not None:
            return cached
        labels = dict(pod.labels)
        rng = random.Random(f"{self.seed}/calico/{pod.namespace}/{name_aggr(pod)}")
        if pod.workload_kind == "Deployment":
            labels["pod-template-hash"] = pod.name.rsplit("-", 2)[1]
        elif pod.workload_kind == "StatefulSet":
            labels["controller-revision-hash"] = f"{pod.workload}-{rng.getrandbits(40):010x}"
            labels["statefulset.kubernetes.io/pod-name"] = pod.name
            labels["apps.kubernetes.io/pod-index"] = pod.name.rsplit("-", 1)[1]
        elif pod.workload_kind == "CronJob":
            uid = f"{rng.getrandbits(128):032x}"
            uid = f"{uid[:8]}-{uid[8:12]}-4{uid[13:16]}-a{uid[17:20]}-{uid[20:]}"
            labels["batch.kubernetes.io/controller-uid"] = uid
            labels["controller-uid"] = uid
        labels["projectcalico.org/namespace"] = pod.namespace
        labels["projectcalico.org/orchestrator"] = "k8s"
        labels["projectcalico.org/serviceaccount"] = pod.service_account
        entries = [f"{k}={v}" for k, v in labels.items()]
        rng.shuffle(entries)  # Go map order: unsorted, but the same for every pod of one prefix
        self._labels[pod.name] = tuple(entries)
        return self._labels[pod.name]

    def labels(self, pods: Iterable[Pod], level: int) -> dict[str, list[str]] | None:
        """`{"labels": [...]}` of the pods folded into a record: one pod's own, or the intersection at level ≥ 2."""
        sets = [self.pod_labels(p) for p in pods]
        if not sets:
            return None
        if level < 2:
            return {"labels": list(sets[0])}
        shared = set(sets[0]).intersection(*sets[1:])
        return {"labels": [e for e in sets[0] if e in shared and not e.startswith("projectcalico.org/")]}

    # -- one conversation

    def records(self, conv: Conversation) -> Iterator[tuple[RecordKey, Tally]]:
        """The src and/or dst record contributions of one conversation (each a key and a one-flow tally)."""
        conn = self.shop.connections[conv.conn]
        dns = conv.from_lookup or conn.kind == "dns"
        server_key = "kube-system/coredns" if dns else conn.server
        proto = conn.lookup_protocol if conv.from_lookup else conn.protocol
        port = 53 if dns else conn.port
        service = self._service(conn, dns, proto)
        blocked = not dns and (
            ("egress" in conn.denied and _enforced(self.shop, conv.client))
            or ("ingress" in conn.denied and _enforced(self.shop, conv.server))
        )
        traffic = _traffic(conv, dns, proto, blocked)
        start_s = conv.time_ns // NS_PER_S // FLUSH_S * FLUSH_S
        ends_in_interval = conv.time_ns + 8 * conv.latency_ns < (start_s + FLUSH_S) * NS_PER_S
        for reporter, pod, direction, peer in (
            ("src", conv.client, "egress", server_key),
            ("dst", conv.server, "ingress", conn.client),
        ):
            if pod is None:
                continue
            denied = direction in conn.denied and not dns
            action, enforced, pending = self._policies(pod, direction, denied, (peer, port))
            level = LEVEL_DENIED if action == "deny" else LEVEL_ALLOWED
            src = self._pod_side(conv.client, level) if conv.client else self._peer_side(conn.client, conv, level)
            dst = (
                self._pod_side(conv.server, level)
                if conv.server
                else self._peer_side(conn.server, conv, level, denied=action == "deny")
            )
            names = self.shop.peers[conn.server].names if reporter == "src" and conv.server is None else ()
            key = RecordKey(
                start_s, pod.node, reporter, action, src, dst, port, proto.lower(), service, enforced, pending, names
            )
            sending = reporter == "src"
            tally = Tally(
                flows=1,
                started=1,
                completed=int(ends_in_interval and not blocked),
                packets_out=traffic.req_packets if sending else 0 if blocked else traffic.resp_packets,
                packets_in=(0 if blocked else traffic.resp_packets) if sending else traffic.req_packets,
                bytes_out=traffic.req_bytes if sending else 0 if blocked else traffic.resp_bytes,
                bytes_in=(0 if blocked else traffic.resp_bytes) if sending else traffic.req_bytes,
            )
            if conv.client:
                tally.src_pods[conv.client.name] = conv.client
            if conv.server:
                tally.dst_pods[conv.server.name] = conv.server
            yield key, tally

    def _service(self, conn: Connection, dns: bool, proto: str) -> tuple[str, str, str, int | None]:
        if dns:
            return ("kube-system", "kube-dns", "dns" if proto == "UDP" else "dns-tcp", 53)
        svc = conn.service
        if svc is None:
            return ("-", "-", "-", None)
        return (svc.namespace, svc.name, PORT_NAMES[(svc.namespace, svc.name)], svc.port)

    def _pod_side(self, pod: Pod, level: int) -> Side:
        if level >= 2:
            return ("wep", "-", name_aggr(pod), pod.namespace, None)
        return ("wep", pod.name, name_aggr(pod), pod.namespace, pod.ip)

    def _peer_side(self, key: str, conv: Conversation, level: int, *, denied: bool = False) -> Side:
        # kubelet probes come from the node's own address (host network namespace)
        ip = self.node_ips[conv.server.node] if key == "host" and conv.server else conv.peer_ip
        if key == "cardprocessor" and denied:
            return ("ns", CARD_SET if level < 2 else "-", CARD_SET, "-", ip if level < 2 else None)
        return ("net", "-", net_bucket(ip), "-", ip if level < 2 else None)

    def _policies(
        self, pod: Pod, direction: str, denied: bool, rule: tuple[str, int]
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(action, enforced_policies, pending_policies) at this pod for this direction."""
        namespace = pod.namespace
        mode = self.shop.namespaces[namespace].policy_mode
        profile = f"0|__PROFILE__|__PROFILE__.kns.{namespace}|allow|0"
        if mode == "none":
            return "allow", (profile,), (profile,)
        policy = f"knp.default.{pod.workload}-{direction}"
        verdict = "deny|-1" if denied else f"allow|{self.rules[(namespace, pod.workload, direction)].index(rule)}"
        if mode == "enforce":
            hit = f"0|default|{namespace}/{policy}|{verdict}"
            return ("deny" if denied else "allow"), (hit,), (hit,)
        return "allow", (profile,), (f"0|default|{namespace}/staged:{policy}|{verdict}",)

    # -- output

    def record(self, key: RecordKey, tally: Tally) -> dict[str, Any]:
        """One flows.log record, every key present, in Felix's order."""
        level = LEVEL_DENIED if key.action == "deny" else LEVEL_ALLOWED
        out: dict[str, Any] = {"start_time": key.start_s, "end_time": key.start_s + FLUSH_S}
        for prefix, side, pods in (("source", key.src, tally.src_pods), ("dest", key.dst, tally.dst_pods)):
            kind, name, aggr, namespace, ip = side
            out[f"{prefix}_ip"] = ip
            out[f"{prefix}_name"] = name
            out[f"{prefix}_name_aggr"] = aggr
            out[f"{prefix}_namespace"] = namespace
            out[f"{prefix}_port"] = None if prefix == "source" else key.dest_port
            out[f"{prefix}_type"] = kind
            labels = self.labels(pods.values(), level) if kind == "wep" else None
            if kind == "ns":
                labels = {"labels": list(CARD_SET_LABELS)}
            out[f"{prefix}_labels"] = labels
            if prefix == "source":
                out["nat_outgoing_ports"] = None
        svc_ns, svc_name, svc_port, svc_port_num = key.service
        out.update(
            dest_service_namespace=svc_ns,
            dest_service_name=svc_name,
            dest_service_port=svc_port,
            dest_service_port_num=svc_port_num,
            dest_domains=list(key.domains) or None,
            proto=key.proto,
            action=key.action,
            reporter=key.reporter,
            policies={
                "enforced_policies": list(key.enforced),
                "pending_policies": list(key.pending),
                "transit_policies": [],
            },
            bytes_in=tally.bytes_in,
            bytes_out=tally.bytes_out,
            packets_in=tally.packets_in,
            packets_out=tally.packets_out,
            transit_bytes_in=0,
            transit_bytes_out=0,
            transit_packets_in=0,
            transit_packets_out=0,
            num_flows=tally.flows,
            num_flows_started=tally.started,
            num_flows_completed=tally.completed,
            http_requests_allowed_in=0,
            http_requests_denied_in=0,
            **_PLACEHOLDER_PROCESS,
        )
        out.update(dict.fromkeys(_TCP_STATS, 0))
        return out


def _enforced(shop: Shop, pod: Pod | None) -> bool:
    return pod is not None and shop.namespaces[pod.namespace].policy_mode == "enforce"


def _rules(shop: Shop) -> dict[tuple[str, str, str], list[tuple[str, int]]]:
    """Allow rules per (namespace, workload, direction) as (peer key, port), in connection order."""
    rules: dict[tuple[str, str, str], list[tuple[str, int]]] = {}

    def add(workload: str, direction: str, peer: str, port: int) -> None:
        if "/" in workload:
            namespace, name = workload.split("/", 1)
            found = rules.setdefault((namespace, name, direction), [])
            if (peer, port) not in found:
                found.append((peer, port))

    for conn in shop.connections:
        if conn.lookup:
            add(conn.client, "egress", "kube-system/coredns", 53)
        if "egress" not in conn.denied:
            add(conn.client, "egress", conn.server, conn.port)
        if "ingress" not in conn.denied:
            add(conn.server, "ingress", conn.client, conn.port)
    return rules


def _traffic(conv: Conversation, dns: bool, proto: str, blocked: bool) -> Traffic:
    """Packets and bytes of a conversation; payload sizes vary with the (random) source port."""
    if blocked:
        return Traffic(3, 180, 0, 0)  # SYN and two retransmissions, never answered
    if dns and proto == "UDP":
        return Traffic(1, 70 + conv.src_port % 40, 1, 120 + conv.src_port % 90)
    request = 120 + conv.src_port % 900 if not dns else 80
    reply = 200 + (conv.src_port * 7) % 4000 if not dns else 160
    return Traffic(5, 60 + 3 * 52 + request, 4, 60 + 2 * 52 + 52 + reply)


# ------------------------------------------------------------------------------------------------ writing


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _merge(bucket: dict[RecordKey, Tally], key: RecordKey, tally: Tally) -> None:
    found = bucket.get(key)
    if found is None:
        bucket[key] = tally
        return
    found.flows += tally.flows
    found.started += tally.started
    found.completed += tally.completed
    found.packets_in += tally.packets_in
    found.packets_out += tally.packets_out
    found.bytes_in += tally.bytes_in
    found.bytes_out += tally.bytes_out
    found.src_pods.update(tally.src_pods)
    found.dst_pods.update(tally.dst_pods)


def intervals(renderer: CalicoRenderer, rate: float) -> Iterator[tuple[int, list[tuple[RecordKey, Tally]]]]:
    """(interval start, its records in order) over the whole window, interval by interval, in bounded memory.

    The schedule is asked for the same two halves as the Hubble sample, so the conversations are the same.
    """
    shop, seed = renderer.shop, renderer.seed
    half = shop.start_ns + 24 * NS_PER_H
    pending: dict[int, dict[RecordKey, Tally]] = {}

    def ready(horizon_s: int) -> Iterator[tuple[int, list[tuple[RecordKey, Tally]]]]:
        for start in sorted(s for s in pending if s + FLUSH_S <= horizon_s):
            keyed = pending.pop(start)
            yield start, sorted(keyed.items(), key=lambda item: item[0].order())

    for begin, end in ((shop.start_ns, half), (half, shop.end_ns)):
        for batch in conversations(shop, begin, end, rate, seed):
            for conv in batch:
                for key, tally in renderer.records(conv):
                    _merge(pending.setdefault(key.start_s, {}), key, tally)
            if batch:  # later batches start no earlier than a DNS lookup's lead (a few ms) before this one's last
                yield from ready(batch[-1].time_ns // NS_PER_S - 1)
    yield from ready(1 << 62)


def write_flowlog(
    out: IO[bytes], shop: Shop, seed: int, rate: float, es_window: tuple[int, int]
) -> tuple[int, list[dict[str, Any]]]:
    """Write the flows.log lines; return how many, and the Elasticsearch documents of `es_window` (Unix seconds)."""
    renderer = CalicoRenderer(shop, seed)
    written, documents = 0, []
    for start, records in intervals(renderer, rate):
        lines = []
        for key, tally in records:
            record = renderer.record(key, tally)
            lines.append(_dumps(record))
            if es_window[0] <= start < es_window[1]:
                documents.append({**record, "host": key.node, "@timestamp": record["end_time"] * 1000})
        out.write(("\n".join(lines) + "\n").encode())
        written += len(lines)
    return written, documents


def write_es_export(out: IO[bytes], documents: list[dict[str, Any]], seed: int) -> int:
    """An Elasticsearch scroll dump (one `_search?scroll=` answer per line, then the empty last page)."""
    rng = random.Random(f"{seed}/calico/es")
    scroll_id = "FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5QW5kRmV0Y2gBFk" + "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(22)
    )
    pages = [documents[i : i + ES_PAGE] for i in range(0, len(documents), ES_PAGE)] + [[]]
    for page in pages:
        hits = [
            {
                "_index": ES_INDEX.format(day=_day(doc["start_time"])),
                "_id": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                               for _ in range(20)),
                "_score": None,
                "_source": doc,
                "sort": [doc["@timestamp"]],
            }
            for doc in page
        ]
        answer = {
            "_scroll_id": scroll_id,
            "took": rng.randrange(3, 60),
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(documents), "relation": "eq"}, "max_score": None, "hits": hits},
        }
        out.write((_dumps(answer) + "\n").encode())
    return len(pages)


def _day(epoch_s: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(epoch_s))


class _Gzip:
    """A reproducible gzip file (mtime 0, no name)."""

    def __init__(self, path: Path) -> None:
        self.raw = path.open("wb")
        self.stream = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=9)

    def __enter__(self) -> IO[bytes]:
        return self.stream  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.raw.close()


def es_window(shop: Shop) -> tuple[int, int]:
    """Unix seconds [from, to) of the Elasticsearch export: the api rollout's hour and the hour before."""
    end = (shop.rollout_ns // NS_PER_H + 1) * 3600
    return end - ES_HOURS * 3600, end


def write_sample(out_dir: Path, shop: Shop, seed: int, rate: float) -> dict[str, dict[str, int]]:
    """Write `calico-flows.log.gz` and `calico-es-export.json.gz`; return their counts for the README."""
    with _Gzip(out_dir / FLOWLOG_FILE) as out:
        _, documents = write_flowlog(out, shop, seed, rate, es_window(shop))
    with _Gzip(out_dir / ES_FILE) as out:
        write_es_export(out, documents, seed)
    return {name: describe(out_dir / name) for name in (FLOWLOG_FILE, ES_FILE)}


# ------------------------------------------------------------------------------------------------ describing

_JOB_AGGR = re.compile(r"^reconcile-\d{8}-\*$")
_API_AGGR = re.compile(r"^api-[a-z0-9]{10}-\*$")


def documents(path: Path) -> Iterator[dict[str, Any]]:
    """The flow-log records of a generated file: flows.log lines, or the `_source`s of an Elasticsearch dump."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            value = json.loads(line)
            if "hits" in value:
                yield from (hit["_source"] for hit in value["hits"]["hits"])
            else:
                yield value


def describe(path: Path) -> dict[str, int]:
    """Count records per feature of a generated Calico file; used by the README and the tests."""
    c = dict.fromkeys(DESCRIBED, 0)
    seen: dict[str, set[Any]] = {"intervals": set(), "api_prefixes": set()}
    with gzip.open(path, "rb") as fh:
        c["lines"] = sum(1 for _ in fh)
    for doc in documents(path):
        c["records"] += 1
        c["num_flows"] += doc["num_flows"]
        seen["intervals"].add(doc["start_time"])
        c[f"reporter_{doc['reporter']}"] += 1
        c[f"action_{doc['action']}"] += 1
        c["level_1"] += doc["action"] == "deny" and doc["source_port"] is None and doc["source_ip"] is not None
        for side in ("source", "dest"):
            kind = doc[f"{side}_type"]
            c[f"endpoints_{kind}"] += 1
            if kind == "net":
                c[f"net_{doc[f'{side}_name_aggr']}"] += 1
            aggr = doc[f"{side}_name_aggr"]
            c["job_prefixes"] += bool(_JOB_AGGR.match(aggr))
            if _API_AGGR.match(aggr):
                seen["api_prefixes"].add(aggr)
        c["dest_domains"] += bool(doc["dest_domains"])
        c["service"] += doc["dest_service_name"] != "-"
        policies = doc["policies"]
        c["profile"] += any("__PROFILE__" in p for p in policies["enforced_policies"])
        c["staged_deny"] += any("staged:" in p and p.endswith("|deny|-1") for p in policies["pending_policies"])
        c["enforced_deny"] += any(p.endswith("|deny|-1") for p in policies["enforced_policies"])
    c["intervals"], c["api_prefixes"] = len(seen["intervals"]), len(seen["api_prefixes"])
    return c


DESCRIBED = (
    "lines",
    "records",
    "num_flows",
    "intervals",
    "reporter_src",
    "reporter_dst",
    "action_allow",
    "action_deny",
    "level_1",
    "endpoints_wep",
    "endpoints_net",
    "endpoints_ns",
    "net_pub",
    "net_pvt",
    "dest_domains",
    "service",
    "profile",
    "staged_deny",
    "enforced_deny",
    "job_prefixes",
    "api_prefixes",
)


def readme(shop: Shop, counts: dict[str, dict[str, int]]) -> str:
    """The README section about the Calico files."""
    rows = "\n".join(f"| {k} | " + " | ".join(f"{counts[n][k]:,}" for n in counts) + " |" for k in DESCRIBED)
    begin, end = es_window(shop)
    return _README.format(
        files=" | ".join(counts),
        sep="|".join("---:" for _ in counts),
        rows=rows,
        start=_iso(shop.start_ns // NS_PER_S),
        end=_iso(shop.end_ns // NS_PER_S),
        es_begin=_iso(begin),
        es_end=_iso(end),
    )


def _iso(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch_s))


_README = """
## Calico Enterprise flow logs of the same traffic

Written by `scripts/calico_render.py` from the same conversations as the Hubble files (same model, same schedule):

- `calico-flows.log.gz`: {start} to {end} (both days), the `flows.log` lines Felix would have
  written on the three nodes, merged and ordered by export interval and node. Felix defaults: 300 s intervals,
  allowed flows at aggregation level 2 (no IPs, `name_aggr` prefixes, labels intersected over the folded pods),
  denied flows at level 1 (pod names and IPs kept, no source port); labels, policies, Services and network sets
  included. Every key is always present, in Felix's order; no reply records.
- `calico-es-export.json.gz`: a scroll dump of `tigera_secure_ee_flows.cluster.*` (the `_search?scroll=1m`
  answer, then `_search/scroll` answers, one per line, the last one empty): the records of {es_begin} to
  {es_end} (around the api rollout) with `host` and `@timestamp` added.

How the shop appears in them:

- Each connection between two pods is a `reporter: src` record on the client's node and a `reporter: dst` record
  on the server's node, with the same `num_flows` in total; a peer that is not a Calico workload has no record.
  A connection counts in the interval it started (`num_flows_started`), and as completed when it ended inside it
  (denied attempts never complete). Felix would report a connection still open at an interval's end once more.
- Pods are `wep`, aggregated by generateName (`frontend-<hash>-*`, `reconcile-<minutes>-*` for Job pods);
  StatefulSet pods keep their names (`ledger-0`, `prometheus-k8s-0`). Labels are the pods' full labels
  (`pod-template-hash`, `controller-revision-hash`, `statefulset.kubernetes.io/pod-name`, Job uids; at level 1
  also `projectcalico.org/*`), unsorted. The old and new ReplicaSets of the `payments/api` rollout are separate
  `api-<hash>-*` records, each with its own `app.kubernetes.io/version`.
- World clients are `net`/`pub` (100.64.0.0/10 counts as public); kubelet probes come from the node addresses,
  `net`/`pvt`, dst record only; the kube-apiserver is `net`/`pvt` behind Service `default/kubernetes` (`https`
  443 → 6443). The card processor is `net`/`pub` with `dest_domains` for payments/api's allowed calls, and the
  GlobalNetworkSet `card-processors` (`ns`, IPs kept) for reconcile's denied attempts (src record `deny`, no dst).
- DNS goes through Service `kube-system/kube-dns` (port names `dns` for UDP, `dns-tcp` for TCP, 53).
- Policies: `payments` enforces (`0|default|payments/knp.default.<workload>-<direction>|allow|<rule>`, or
  `|deny|-1`), `shop` has its policies staged: the namespace profile decides, `pending_policies` say what the
  staged policy would do (`shop/staged:knp.default.<workload>-<direction>|deny|-1` where Hubble says `AUDIT`);
  `monitoring` and `kube-system` only have `__PROFILE__.kns.<namespace>`. `shop/cart` → `payments/ledger`: src
  record `allow` (audit), dst record `deny`.

| kind | {files} |
|---|{sep}|
{rows}

`level_1` counts denied records (addresses kept), `endpoints_*` and `net_*` count record sides, `profile`,
`staged_deny` and `enforced_deny` count records with such a policy hit, `api_prefixes` counts distinct
`api-<hash>-*` names.
"""
