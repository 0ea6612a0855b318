#!/usr/bin/env python3
"""Deterministic generator of realistic Cilium Hubble captures of a small web shop.

The script has three layers; the first two live in `shop_model.py`, so that other output formats reuse them
(`calico_render.py` writes Calico Enterprise flow logs of the same conversations):

1. **Model** (`Shop`, built by `build_shop`): nodes, namespaces, workloads, pods (node, IP, labels, lifetime),
   external peers and connections (client → server/port/protocol, rate, which policy direction denies it).
2. **Schedule** (`conversations`): turns the model into time-ordered `Conversation`s (one TCP connection, one
   DNS exchange, one kubelet probe), bucket by bucket, in bounded memory.
3. **Renderer** (`HubbleRenderer`): turns one conversation into the Hubble events a cluster would record
   (policy verdicts, traces at the source's egress and the destination's ingress, replies, drops, DNS L7 records).
   Each distinct event is rendered to JSON once as a `%`-template; per event only time, uuid, the ephemeral port
   and a world client address vary, which keeps `big` fast.

Usage:
    python scripts/gen_flows.py sample --out sample_flows/
    python scripts/gen_flows.py big --flows 1000000 --out /tmp/flows.json.gz [--format legacy]
    python scripts/gen_flows.py apps --out /tmp/apps/   # tiered.json, versions.json, rollout.json (`apps_model.py`)

Everything is seeded: the same arguments give byte-identical files (gzip is written with mtime 0, no file name).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency of synth, but the script is stdlib-only capable
    orjson = None  # type: ignore[assignment]

_SCRIPTS = str(Path(__file__).resolve().parent)
if _SCRIPTS not in sys.path:  # the sibling modules, also when this file is loaded by path (tests)
    sys.path.insert(0, _SCRIPTS)

import apps_model  # noqa: E402
import calico_render  # noqa: E402
from shop_model import (  # noqa: E402
    NS_PER_H,
    NS_PER_S,
    SEED,
    WINDOW_HOURS,
    Connection,
    Conversation,
    DnsQuery,
    Pod,
    Service,
    Shop,
    build_shop,
    conversations,
)

EMITTER_VERSION = "1.19.4+g6e3b0c1d"
CLUSTER = "default"
SAMPLE_FILES = ("hubble-legacy.json.gz", "hubble-flows.json.gz")

# ------------------------------------------------------------------------------------------------ Hubble renderer

# Slots in pre-rendered events: time, uuid, ephemeral port (a JSON number), non-pod peer address, DNS latency.
_T, _U, _P, _W, _L = "@@T@@", "@@U@@", "@@P@@", "@@W@@", "@@L@@"
Step = tuple[int, int, str]  # (fixed offset ns, multiple of the conversation's one-way latency, %-template)


@dataclass(frozen=True, slots=True)
class HubbleFormat:
    """Which producer the output imitates."""

    name: str
    envelope: bool  # `{"flow":…,"node_name":…,"time":…}` (hubble observe -o jsonpb) or a bare Flow per line
    newer: bool  # Cilium 1.19 fields: uuid, emitter, workloads, cluster_name, trace_reason, *_allowed_by


NEWER = HubbleFormat("jsonpb", envelope=True, newer=True)
LEGACY = HubbleFormat("legacy", envelope=False, newer=False)


@dataclass(frozen=True, slots=True)
class _End:
    """One side of a conversation as the renderer needs it."""

    ip: str
    node: str  # "" for non-pod peers
    local: dict[str, Any]  # endpoint JSON on its own node (with the endpoint ID)
    remote: dict[str, Any]
    mac: str
    iface: dict[str, Any] | None
    names: tuple[str, ...] = ()
    pod: Pod | None = None


def _dumps(obj: Any) -> str:
    if orjson is not None:
        return orjson.dumps(obj).decode()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _template(obj: Any) -> str:
    text = _dumps(obj).replace("%", "%%").replace(f'"{_P}"', "%(P)s")
    for slot in (_T, _U, _W, _L):
        text = text.replace(slot, f"%({slot[2]})s")
    return text


def _flags_summary(flags: tuple[str, ...]) -> str:
    return "TCP Flags: " + ", ".join(flags)


class HubbleRenderer:
    """Turns conversations into Hubble flow lines of one `HubbleFormat`, caching one template set per shape."""

    def __init__(self, shop: Shop, fmt: HubbleFormat) -> None:
        self.shop = shop
        self.fmt = fmt
        self.cache: dict[tuple[Any, ...], list[Step]] = {}
        self.node_macs = {n.name: n.mac for n in shop.nodes}
        self._port = 0  # backend port of the conversation being built

    # -- endpoints

    def _pod_end(self, pod: Pod) -> _End:
        ns = self.shop.namespaces[pod.namespace]
        labels = sorted(
            [f"k8s:{k}={v}" for k, v in pod.labels]
            + [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns.labels]
            + [
                f"k8s:io.cilium.k8s.policy.cluster={CLUSTER}",
                f"k8s:io.cilium.k8s.policy.serviceaccount={pod.service_account}",
                f"k8s:io.kubernetes.pod.namespace={pod.namespace}",
            ]
        )
        remote: dict[str, Any] = {"identity": pod.identity}
        if self.fmt.newer:
            remote["cluster_name"] = CLUSTER
        remote.update(namespace=pod.namespace, labels=labels, pod_name=pod.name)
        if self.fmt.newer:
            remote["workloads"] = [{"name": pod.workload, "kind": pod.workload_kind}]
        local = {"ID": pod.endpoint_id, **remote}
        return _End(pod.ip, pod.node, local, remote, pod.mac, {"index": pod.ifindex, "name": pod.ifname}, pod=pod)

    def _peer_end(self, key: str) -> _End:
        peer = self.shop.peers[key]
        if peer.kind == "host":
            ep: dict[str, Any] = {"identity": 1, "labels": ["reserved:host"]}
        elif peer.kind == "kube-apiserver":  # managed control plane outside the nodes; older agents used ID 7
            ep = (
                {"identity": 16777217, "labels": ["reserved:kube-apiserver", "reserved:world"]}
                if self.fmt.newer
                else {"identity": 7, "labels": ["reserved:kube-apiserver"]}
            )
        elif peer.names and self.fmt.newer:  # IPs selected by a toFQDNs rule get a local-scope fqdn identity
            ep = {"identity": 16777218, "labels": [*(f"fqdn:{n}" for n in peer.names), "reserved:world"]}
        else:
            ep = {"identity": 2, "labels": ["reserved:world"]}
        return _End(_W, "", ep, ep, "", None, peer.names)

    # -- one event

    def _event(
        self,
        node: str,
        src: _End,
        dst: _End,
        *,
        kind: str,
        request: bool,
        proto: str,
        flags: tuple[str, ...] = (),
        point: str = "",
        direction: str = "",
        verdict: str = "FORWARDED",
        service: Service | None = None,
        l7: dict[str, Any] | None = None,
        summary: str = "",
        policy: dict[str, Any] | None = None,
        trace_reason: str = "",
    ) -> str:
        fmt = self.fmt
        f: dict[str, Any] = {"time": _T}
        if fmt.newer:
            f["uuid"] = _U
            f["emitter"] = {"name": "Hubble", "version": EMITTER_VERSION}
        f["verdict"] = verdict
        if verdict == "DROPPED":
            f["drop_reason"] = 133
        if not fmt.newer:
            f["ethernet"] = {"source": src.mac or self.node_macs[node], "destination": dst.mac or self.node_macs[node]}
        f["IP"] = {"source": src.ip, "destination": dst.ip, "ipVersion": "IPv4"}
        server_port = self._port
        ports = (
            {"source_port": _P, "destination_port": server_port}
            if request
            else {"source_port": server_port, "destination_port": _P}
        )
        if flags and l7 is None:
            ports["flags"] = dict.fromkeys(flags, True)
        f["l4"] = {proto: ports}
        f["source"] = src.local if src.node == node else src.remote
        f["destination"] = dst.local if dst.node == node else dst.remote
        f["Type"] = "L7" if l7 is not None else "L3_L4"
        f["node_name"] = node
        if src.names:
            f["source_names"] = list(src.names)
        if dst.names:
            f["destination_names"] = list(dst.names)
        if l7 is not None:
            f["l7"] = l7
        overlay_legacy = not fmt.newer and point == "TO_OVERLAY"  # older agents: direction unknown there
        if not fmt.newer and not request:
            f["reply"] = True
        f["event_type"] = {
            "trace": {"type": 4, "sub_type": _POINT_SUBTYPE.get(point, 0)},
            "policy": {"type": 5},
            "drop": {"type": 1, "sub_type": 133},
            "l7": {"type": 129},
        }[kind]
        if not f["event_type"].get("sub_type", 1):
            del f["event_type"]["sub_type"]
        if service is not None:
            f["destination_service" if request else "source_service"] = {
                "name": service.name,
                "namespace": service.namespace,
            }
        if direction and not overlay_legacy:
            f["traffic_direction"] = direction
        if kind == "policy" and verdict in ("FORWARDED", "REDIRECTED"):
            f["policy_match_type"] = 2
        if point:
            f["trace_observation_point"] = point
        if point and fmt.newer and trace_reason:
            f["trace_reason"] = trace_reason
        if verdict == "DROPPED":
            f["drop_reason_desc"] = "POLICY_DENIED"
        elif not overlay_legacy:
            f["is_reply"] = not request
        if point == "TO_ENDPOINT":
            iface = dst.iface if dst.node == node else src.iface
            if iface is not None:
                f["interface"] = iface
        f["Summary"] = summary or (_flags_summary(flags) if proto == "TCP" else proto)
        if policy is not None and fmt.newer:
            f[f"{direction.lower()}_allowed_by"] = [policy]
        if fmt.envelope:
            return _template({"flow": f, "node_name": node, "time": _T})
        return _template(f)

    # -- conversations

    def steps(self, conv: Conversation) -> list[Step]:
        """The events of one conversation as (offset, latency multiple, template), cached by shape."""
        key = (
            conv.conn,
            conv.client.name if conv.client else "",
            conv.server.name if conv.server else "",
            conv.data,
            conv.query,
            conv.from_lookup,
        )
        cached = self.cache.get(key)
        if cached is None:
            cached = self.cache[key] = self._build(conv)
        return cached

    def _build(self, conv: Conversation) -> list[Step]:
        conn = self.shop.connections[conv.conn]
        client = self._pod_end(conv.client) if conv.client else self._peer_end(conn.client)
        server = self._pod_end(conv.server) if conv.server else self._peer_end(conn.server)
        if conv.from_lookup or conn.kind == "dns":
            queries = conn.lookup if conv.from_lookup else conn.dns_queries
            proto = conn.lookup_protocol if conv.from_lookup else conn.protocol
            svc = self.shop.workloads["kube-system/coredns"].service
            return self._dns(
                conn,
                client,
                server,
                queries[conv.query],
                proto,
                svc,
                conn.redirect_dns
                or (conv.from_lookup and client.pod is not None and client.pod.namespace == "payments"),
            )
        self._port = conn.port
        return self._tcp(conn, client, server, conn.service, conv.data)

    def _verdict(self, end: _End, conn: Connection, direction: str) -> str:
        """Policy verdict at this end for this direction, "" when the namespace enforces nothing."""
        if end.pod is None:
            return ""
        mode = self.shop.namespaces[end.pod.namespace].policy_mode
        if mode == "none":
            return ""
        if direction in conn.denied:
            return "DROPPED" if mode == "enforce" else "AUDIT"
        return "FORWARDED"

    def _policy(self, end: _End, direction: str) -> dict[str, Any] | None:
        if end.pod is None:
            return None
        name = f"{end.pod.workload}-{direction.lower()}"
        uid = random.Random(f"{end.pod.namespace}/{name}").getrandbits(128)
        uid_text = f"{uid:032x}"
        return {
            "name": name,
            "namespace": end.pod.namespace,
            "labels": sorted(
                [
                    "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
                    f"k8s:io.cilium.k8s.policy.name={name}",
                    f"k8s:io.cilium.k8s.policy.namespace={end.pod.namespace}",
                    f"k8s:io.cilium.k8s.policy.uid={uid_text[:8]}-{uid_text[8:12]}-4{uid_text[13:16]}-a{uid_text[17:20]}-"
                    f"{uid_text[20:]}",
                ]
            ),
            "revision": "7",
            "kind": "CiliumNetworkPolicy",
        }

    def _packet(
        self,
        cl: _End,
        sv: _End,
        i: int,
        *,
        request: bool,
        proto: str,
        flags: tuple[str, ...],
        service: Service | None,
        reason: str,
    ) -> list[Step]:
        """Trace events of one packet: where it leaves the sender's node and where it reaches a pod."""
        out: list[Step] = []
        sender, receiver = (cl, sv) if request else (sv, cl)
        depart, arrive = (i * 40_000 + 1_500, i), (i * 40_000 + 6_000, i + 1)
        crosses = receiver.pod is None or sender.pod is None or sender.node != receiver.node
        conn_dir = "EGRESS" if request else "INGRESS"  # direction of the connection seen from the sender's node
        if sender.pod is not None and crosses:
            point = "TO_OVERLAY" if receiver.pod is not None else "TO_STACK"
            out.append(
                (
                    *depart,
                    self._event(
                        sender.node,
                        *(cl, sv) if request else (sv, cl),
                        kind="trace",
                        request=request,
                        proto=proto,
                        flags=flags,
                        point=point,
                        direction=conn_dir,
                        service=service,
                        trace_reason=reason,
                    ),
                )
            )
        if receiver.pod is not None:
            out.append(
                (
                    *arrive,
                    self._event(
                        receiver.node,
                        *(cl, sv) if request else (sv, cl),
                        kind="trace",
                        request=request,
                        proto=proto,
                        flags=flags,
                        point="TO_ENDPOINT",
                        direction="INGRESS" if request else "EGRESS",
                        service=service,
                        trace_reason=reason,
                    ),
                )
            )
        return out

    def _ev(self, node: str, cl: _End, sv: _End, **kw: Any) -> str:
        request = kw["request"]
        return self._event(node, *((cl, sv) if request else (sv, cl)), **kw)

    def _tcp(self, conn: Connection, cl: _End, sv: _End, service: Service | None, data: bool) -> list[Step]:
        out: list[Step] = []
        syn = ("SYN",)
        e_verdict, i_verdict = self._verdict(cl, conn, "egress"), self._verdict(sv, conn, "ingress")
        if e_verdict:
            out.append(
                (
                    0,
                    0,
                    self._ev(
                        cl.node,
                        cl,
                        sv,
                        kind="policy",
                        request=True,
                        proto="TCP",
                        flags=syn,
                        direction="EGRESS",
                        verdict=e_verdict,
                        service=service,
                        policy=self._policy(cl, "EGRESS") if e_verdict == "FORWARDED" else None,
                    ),
                )
            )
        if e_verdict == "DROPPED":
            for attempt, at in enumerate((0, 1_000_000_000, 3_000_000_000)):
                out.append(
                    (
                        at + 3_000 + attempt,
                        0,
                        self._ev(
                            cl.node,
                            cl,
                            sv,
                            kind="drop",
                            request=True,
                            proto="TCP",
                            flags=syn,
                            direction="EGRESS",
                            verdict="DROPPED",
                            service=service,
                        ),
                    )
                )
            return out
        if i_verdict == "DROPPED":
            for attempt, at in enumerate((0, 1_000_000_000, 3_000_000_000)):
                out += [
                    (a + at, b, t)
                    for a, b, t in self._packet(
                        cl, sv, 0, request=True, proto="TCP", flags=syn, service=service, reason="NEW"
                    )
                    if '"TO_ENDPOINT"' not in t
                ]
                if attempt == 0:
                    out.append(
                        (
                            at + 5_000,
                            1,
                            self._ev(
                                sv.node,
                                cl,
                                sv,
                                kind="policy",
                                request=True,
                                proto="TCP",
                                flags=syn,
                                direction="INGRESS",
                                verdict="DROPPED",
                                service=service,
                            ),
                        )
                    )
                out.append(
                    (
                        at + 6_000,
                        1,
                        self._ev(
                            sv.node,
                            cl,
                            sv,
                            kind="drop",
                            request=True,
                            proto="TCP",
                            flags=syn,
                            direction="INGRESS",
                            verdict="DROPPED",
                            service=service,
                        ),
                    )
                )
            return out
        out += self._packet(cl, sv, 0, request=True, proto="TCP", flags=syn, service=service, reason="NEW")
        if i_verdict:
            out.append(
                (
                    5_000,
                    1,
                    self._ev(
                        sv.node,
                        cl,
                        sv,
                        kind="policy",
                        request=True,
                        proto="TCP",
                        flags=syn,
                        direction="INGRESS",
                        verdict=i_verdict,
                        service=service,
                        policy=self._policy(sv, "INGRESS") if i_verdict == "FORWARDED" else None,
                    ),
                )
            )
        out += self._packet(
            cl, sv, 1, request=False, proto="TCP", flags=("SYN", "ACK"), service=service, reason="REPLY"
        )
        if data:
            for i, (request, flags) in enumerate(
                (
                    (True, ("ACK",)),
                    (True, ("ACK", "PSH")),
                    (False, ("ACK", "PSH")),
                    (True, ("ACK", "FIN")),
                    (False, ("ACK", "FIN")),
                ),
                start=2,
            ):
                out += self._packet(
                    cl,
                    sv,
                    i,
                    request=request,
                    proto="TCP",
                    flags=flags,
                    service=service,
                    reason="ESTABLISHED" if request else "REPLY",
                )
        return out

    def _dns(
        self, conn: Connection, cl: _End, sv: _End, query: DnsQuery, proto: str, svc: Service | None, redirect: bool
    ) -> list[Step]:
        """One resolver exchange with CoreDNS through the kube-dns Service, with the DNS proxy's L7 records."""
        self._port = 53
        out: list[Step] = []
        mode = self.shop.namespaces[cl.pod.namespace].policy_mode if cl.pod else "none"
        if proto == "TCP":
            tcp_conn = Connection(conn.client, conn.server, 53, "TCP", 0)
            out += [s for s in self._tcp(tcp_conn, cl, sv, svc, data=False) if '"type":5' not in s[2]]
        if mode != "none":
            verdict = "REDIRECTED" if redirect else "FORWARDED"
            out.append(
                (
                    0,
                    0,
                    self._ev(
                        cl.node,
                        cl,
                        sv,
                        kind="policy",
                        request=True,
                        proto=proto,
                        flags=("SYN",) if proto == "TCP" else (),
                        direction="EGRESS",
                        verdict=verdict,
                        service=svc,
                        policy=self._policy(cl, "EGRESS"),
                    ),
                )
            )
        base = 100_000 if proto == "TCP" else 0
        req_l7 = {
            "type": "REQUEST",
            "dns": {"query": query.name, "observation_source": "proxy", "qtypes": [query.qtype]},
        }
        out.append(
            (
                base + 2_000,
                0,
                self._ev(
                    cl.node,
                    cl,
                    sv,
                    kind="l7",
                    request=True,
                    proto=proto,
                    direction="EGRESS",
                    service=svc,
                    l7=req_l7,
                    summary=f"DNS Query {query.name} {query.qtype}",
                ),
            )
        )
        if proto == "UDP":
            out += [
                (a + base + 10_000, b, t)
                for a, b, t in self._packet(cl, sv, 0, request=True, proto="UDP", flags=(), service=svc, reason="NEW")
            ]
            out += [
                (a + base + 10_000, b, t)
                for a, b, t in self._packet(
                    cl, sv, 1, request=False, proto="UDP", flags=(), service=svc, reason="REPLY"
                )
            ]
        answer: dict[str, Any] = {"query": query.name}
        if query.answers:
            answer["ips"] = list(query.answers)
        answer["ttl"] = query.ttl if query.answers else 4294967295
        answer["observation_source"] = "proxy"
        if query.rcode:
            answer["rcode"] = query.rcode
        answer["qtypes"] = [query.qtype]
        if query.answers:
            answer["rrtypes"] = [query.qtype]
        if query.rcode == 3:
            summary = f"DNS Answer RCode: Non-Existent Domain TTL: {answer['ttl']} (Proxy {query.name} {query.qtype})"
        else:
            summary = f'DNS Answer "{",".join(query.answers)}" TTL: {answer["ttl"]} (Proxy {query.name} {query.qtype})'
        resp_l7 = {"type": "RESPONSE", "latency_ns": _L, "dns": answer}
        out.append(
            (
                base + 30_000,
                2,
                self._ev(
                    cl.node,
                    cl,
                    sv,
                    kind="l7",
                    request=False,
                    proto=proto,
                    direction="EGRESS",
                    service=svc,
                    l7=resp_l7,
                    summary=summary,
                ),
            )
        )
        return out


_POINT_SUBTYPE = {"TO_ENDPOINT": 0, "TO_PROXY": 1, "TO_HOST": 2, "TO_STACK": 3, "TO_OVERLAY": 4}


# ------------------------------------------------------------------------------------------------ writing

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class _Clock:
    """RFC 3339 UTC timestamps with 9 fractional digits; the seconds part is cached (lines come in time order)."""

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = ""

    def __call__(self, ns: int) -> str:
        sec, frac = divmod(ns, NS_PER_S)
        if sec != self.sec:
            self.sec = sec
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        return f"{self.prefix}{frac:09d}Z"


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _lost_event(rng: random.Random, shop: Shop, stamp: str) -> str:
    node = rng.choice(shop.nodes).name
    lost = {"source": "HUBBLE_RING_BUFFER", "num_events_lost": str(rng.randrange(3, 900)), "cpu": rng.randrange(1, 4)}
    return _dumps({"lost_events": lost, "node_name": node, "time": stamp})


def write_hubble(
    out: IO[bytes],
    shop: Shop,
    fmt: HubbleFormat,
    start_ns: int,
    end_ns: int,
    rate: float,
    *,
    limit: int | None = None,
    lost_times: Sequence[int] = (),
    lost_every: int = 0,
    seed: int = SEED,
) -> int:
    """Render the conversations of [start_ns, end_ns) as Hubble JSON lines; return the number of lines written.

    `limit` stops after exactly that many lines. Lost-event lines are written at `lost_times` and, when
    `lost_every` is set, after every that many lines; they count as lines.
    """
    renderer = HubbleRenderer(shop, fmt)
    rng = random.Random(f"{seed}/render/{fmt.name}/{start_ns}")
    clock = _Clock()
    pending_lost = sorted(lost_times)
    written = 0
    for batch in conversations(shop, start_ns, end_ns, rate, seed):
        events: list[tuple[int, str, dict[str, Any]]] = []
        for conv in batch:
            vals = {"P": conv.src_port, "W": conv.peer_ip, "L": str(conv.latency_ns * 2), "T": "", "U": ""}
            t0, lat = conv.time_ns, conv.latency_ns
            events.extend((t0 + a + b * lat, tmpl, vals) for a, b, tmpl in renderer.steps(conv))
        events.sort(key=_first)
        lines: list[str] = []
        newer = fmt.newer
        for t, tmpl, vals in events:
            while pending_lost and pending_lost[0] <= t:
                lines.append(_lost_event(rng, shop, clock(pending_lost.pop(0))))
            vals["T"] = clock(t)
            if newer:
                vals["U"] = _uuid(rng)
            lines.append(tmpl % vals)
            if lost_every and (written + len(lines)) % lost_every == 0:
                lines.append(_lost_event(rng, shop, clock(t + 1)))
        if limit is not None and written + len(lines) >= limit:
            lines = lines[: limit - written]
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
        written += len(lines)
        if limit is not None and written >= limit:
            break
    return written


def _first(item: tuple[int, str, dict[str, Any]]) -> int:
    return item[0]


class _Output:
    """A binary output file, gzip-compressed (mtime 0, no name: reproducible) when the path ends in .gz."""

    def __init__(self, path: Path, level: int = 9) -> None:
        self.raw = path.open("wb")
        self.stream: IO[bytes] = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0, compresslevel=level)
            if path.name.endswith(".gz")
            else self.raw
        )

    def __enter__(self) -> IO[bytes]:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()


# ------------------------------------------------------------------------------------------------ commands

SAMPLE_RATE = 1.0


def write_sample(out_dir: Path, seed: int = SEED) -> dict[str, dict[str, int]]:
    """Write the bundled sample (legacy file: first 24 h, jsonpb file: last 24 h, Calico: both) and its README."""
    shop = build_shop(1, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    half = shop.start_ns + 24 * NS_PER_H
    plan = ((SAMPLE_FILES[0], LEGACY, shop.start_ns, half), (SAMPLE_FILES[1], NEWER, half, shop.end_ns))
    counts = {}
    for name, fmt, begin, end in plan:
        lost = [begin + h * NS_PER_H + 1234567 for h in (3, 11, 19)]
        with _Output(out_dir / name) as out:
            write_hubble(out, shop, fmt, begin, end, SAMPLE_RATE, lost_times=lost, seed=seed)
        counts[name] = describe(out_dir / name)
    calico = calico_render.write_sample(out_dir, shop, seed, SAMPLE_RATE)
    (out_dir / "README.md").write_text(_readme(shop, counts) + calico_render.readme(shop, calico), encoding="utf-8")
    return counts | calico


def estimate_lines_per_hour(shop: Shop, fmt: HubbleFormat, seed: int = SEED) -> float:
    """Lines per simulated hour at rate 1, measured on two hours (without formatting)."""
    renderer = HubbleRenderer(shop, fmt)
    begin = shop.start_ns + 12 * NS_PER_H
    total = sum(
        len(renderer.steps(c)) for batch in conversations(shop, begin, begin + 2 * NS_PER_H, 1.0, seed) for c in batch
    )
    return total / 2


def write_big(path: Path, flows: int, fmt: HubbleFormat, scale: int = 4, seed: int = SEED) -> int:
    """Write exactly `flows` lines of the same shop at a higher rate, spread over about the 48 h window."""
    shop = build_shop(scale, seed)
    rate = max(flows / (WINDOW_HOURS * estimate_lines_per_hour(shop, fmt, seed)), 0.01)
    with _Output(path, level=1) as out:
        return write_hubble(
            out,
            shop,
            fmt,
            shop.start_ns,
            shop.start_ns + 10_000 * NS_PER_H,
            rate,
            limit=flows,
            lost_every=50_000,
            seed=seed,
        )


def write_apps(out_dir: Path, seed: int = SEED) -> dict[str, int]:
    """Write one `hubble observe -o jsonpb` file per app of `apps_model` (`<app>.json`); return lines per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for app in apps_model.APPS:
        shop = apps_model.build_app(app, seed)
        with _Output(out_dir / f"{app}.json") as out:
            counts[f"{app}.json"] = write_hubble(out, shop, NEWER, shop.start_ns, shop.end_ns, 1.0, seed=seed)
    return counts


# ------------------------------------------------------------------------------------------------ describing


_HASH = re.compile(r"^api-([a-z0-9]{10})-[a-z0-9]{5}$")


def _open_text(path: Path) -> Iterator[str]:
    opener: Callable[..., IO[str]] = gzip.open if path.name.endswith(".gz") else open  # type: ignore[assignment]
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from fh


def describe(path: Path) -> dict[str, int]:
    """Count lines per kind of a generated (or any Hubble JSON) file; used by the README and the tests."""
    c: dict[str, int] = dict.fromkeys(
        (
            "lines",
            "flows",
            "lost_events",
            "replies",
            "dns_l7_udp",
            "dns_l7_tcp",
            "dns_nxdomain",
            "host_probes",
            "world_ingress",
            "world_ingress_ips",
            "world_egress",
            "world_egress_named",
            "dropped",
            "policy_denied",
            "policy_verdicts",
            "audit",
            "redirected",
            "api_template_hashes",
            "nodes",
        ),
        0,
    )
    world_ips: set[str] = set()
    hashes: set[str] = set()
    nodes: set[str] = set()
    for line in _open_text(path):
        c["lines"] += 1
        obj = json.loads(line)
        if "lost_events" in obj:
            c["lost_events"] += 1
            continue
        flow = obj.get("flow", obj)
        c["flows"] += 1
        nodes.add(flow["node_name"])
        src, dst = flow.get("source", {}), flow.get("destination", {})
        src_labels, dst_labels = src.get("labels", []), dst.get("labels", [])
        reply = flow.get("is_reply", flow.get("reply", False))
        c["replies"] += bool(reply)
        if flow.get("Type") == "L7" and "dns" in flow.get("l7", {}):
            c["dns_l7_udp" if "UDP" in flow["l4"] else "dns_l7_tcp"] += 1
            c["dns_nxdomain"] += flow["l7"]["dns"].get("rcode") == 3
        if "reserved:host" in src_labels and not reply:
            c["host_probes"] += 1
        if "reserved:world" in src_labels and not reply and "reserved:kube-apiserver" not in src_labels:
            c["world_ingress"] += 1
            world_ips.add(flow["IP"]["source"])
        if "reserved:world" in dst_labels and "reserved:kube-apiserver" not in dst_labels and not reply:
            c["world_egress"] += 1
            c["world_egress_named"] += bool(flow.get("destination_names"))
        c["dropped"] += flow.get("verdict") == "DROPPED"
        c["policy_denied"] += flow.get("drop_reason_desc") == "POLICY_DENIED"
        c["policy_verdicts"] += flow.get("event_type", {}).get("type") == 5
        c["audit"] += flow.get("verdict") == "AUDIT"
        c["redirected"] += flow.get("verdict") == "REDIRECTED"
        for ep in (src, dst):
            match = _HASH.match(ep.get("pod_name", ""))
            if match and ep.get("namespace") == "payments":
                hashes.add(match.group(1))
    c["world_ingress_ips"], c["api_template_hashes"], c["nodes"] = len(world_ips), len(hashes), len(nodes)
    return c


def _readme(shop: Shop, counts: dict[str, dict[str, int]]) -> str:
    keys = next(iter(counts.values())).keys()
    rows = "\n".join(f"| {k} | " + " | ".join(f"{counts[n][k]:,}" for n in counts) + " |" for k in keys)
    pods = "\n".join(
        f"| {w.namespace} | {w.name} | {w.kind} | {len({p.name for p in shop.pods if p.workload == w.name})} | "
        f"{w.port or '-'} | {w.metrics_port or '-'} | {w.health_port or '-'} |"
        for w in shop.workloads.values()
    )
    return _README.format(
        files=" | ".join(counts),
        sep="|".join("---:" for _ in counts),
        rows=rows,
        pods=pods,
        rollout=_iso(shop.rollout_ns),
    )


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS_PER_S, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_README = """\
# Sample flow captures (synthetic)

Generated by `scripts/gen_flows.py` (the Calico files through `scripts/calico_render.py`); do not edit by hand.
Regenerate with

    python scripts/gen_flows.py sample --out sample_flows/

The output is deterministic (fixed seed, fixed start time, gzip with mtime 0), and `tests/test_gen_flows.py`
fails when these files differ from a fresh generation.

## Files

- `hubble-legacy.json.gz`: 2026-11-19T00:00Z to 2026-11-20T00:00Z, an older producer run with
  `HUBBLE_COMPAT=legacy-json-output`: one bare Flow object per line, `ethernet`, the deprecated `"reply": true`
  on replies, no `is_reply`/`traffic_direction` on `TO_OVERLAY` traces, no `uuid`/`workloads`/`cluster_name`,
  kube-apiserver as identity 7.
- `hubble-flows.json.gz`: 2026-11-20T00:00Z to 2026-11-21T00:00Z, `hubble observe -o jsonpb` from Cilium 1.19:
  `{{"flow":…,"node_name":…,"time":…}}` envelopes with `uuid`, `emitter`, `workloads`, `cluster_name`,
  `trace_reason`, `interface`, `*_allowed_by`; kube-apiserver as the local-scope identity 16777217
  (`reserved:kube-apiserver` + `reserved:world`); card-processor addresses as an `fqdn:` identity.

Both files also contain a few `lost_events` lines (`HUBBLE_RING_BUFFER`, 64-bit counts as strings).

## The shop

Three nodes, four namespaces. `shop` runs in policy **audit** mode (verdict `AUDIT` where its draft policies
have no rule, e.g. Prometheus scrapes), `payments` **enforces** policies (`DROPPED`/`POLICY_DENIED`; DNS
egress is `REDIRECTED` to the DNS proxy), `monitoring` and `kube-system` have none.

| namespace | workload | kind | pods | port | metrics | probes |
|---|---|---|---:|---:|---:|---:|
{pods}

- world clients (`reserved:world`, ~400 addresses, few heavy hitters) → `shop/frontend` Service `frontend`
  (LoadBalancer 80 → 8080);
  frontend → catalog 3550, cart 7070, checkout 8080; checkout → cart, → `payments/api` 8443;
  api → `payments/ledger` (`ledger-0`, postgres 5432) and → `api.cardprocessor.example.com:443`
  (203.0.113.10-12; AAAA answer 2001:db8:4a7f::10, unused: the cluster is IPv4 single-stack).
  Each world connection is preceded by the resolver's queries (search-path NXDOMAIN, A, AAAA) when the
  pod's cache (30 s) expired, so world flows carry `destination_names`.
- `payments/reconcile` CronJob (hourly, pods `reconcile-<minutes since epoch>-xxxxx`, labels `job-name` and
  `batch.kubernetes.io/job-name`, so every run has its own identity): DNS over TCP 53, → ledger 5432, and a
  denied attempt to the card processor (egress `POLICY_DENIED`, three SYNs).
- `shop/cart` → `payments/ledger:5432`: `AUDIT` at cart's egress, `POLICY_DENIED` at ledger's ingress.
- `monitoring/prometheus-k8s` scrapes every metrics port and calls the kube-apiserver (Service
  `default/kubernetes` 443 → 6443).
- kubelet probes from `reserved:host` (the node's `cilium_host` address) to every pod's probe port.
- Rollout of `payments/api` at {rollout}: a new ReplicaSet hash in the pod names and
  `app.kubernetes.io/version` 1.41.0 → 1.42.0 (so a new identity); old pods stop, new pods start.

Flows of Service traffic carry the backend (post-DNAT) address and port in `IP`/`l4` and the Service in
`destination_service` (`source_service` on replies).

## Counts per file

| kind | {files} |
|---|{sep}|
{rows}

`replies` counts `is_reply: true` or `reply: true`; `world_ingress` and `host_probes` count request-direction
events; `api_template_hashes` counts distinct ReplicaSet hashes of `payments/api` pods.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: `sample`, `big` or `apps`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="write the bundled sample files and their README")
    sample.add_argument("--out", type=Path, default=Path("sample_flows"))
    big = sub.add_parser("big", help="write N lines of the same shop at a higher rate (benchmarks)")
    big.add_argument("--flows", type=int, default=1_000_000)
    big.add_argument("--out", type=Path, required=True)
    big.add_argument("--format", choices=("jsonpb", "legacy"), default="jsonpb")
    big.add_argument("--scale", type=int, default=4, help="multiplies nodes and replicas")
    apps = sub.add_parser("apps", help="write the apps whose workloads share labels, one Hubble file each")
    apps.add_argument("--out", type=Path, required=True)
    for p in (sample, big, apps):
        p.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.command == "apps":
        for name, lines in write_apps(args.out, args.seed).items():
            print(f"{args.out / name}: {lines} lines")
        return 0
    if args.command == "sample":
        counts = write_sample(args.out, args.seed)
        for name, c in counts.items():
            print(f"{args.out / name}: {c['lines']} lines")
        return 0
    began = time.perf_counter()
    written = write_big(args.out, args.flows, NEWER if args.format == "jsonpb" else LEGACY, args.scale, args.seed)
    elapsed = time.perf_counter() - began
    print(f"{args.out}: {written} lines in {elapsed:.1f} s ({written / elapsed:,.0f} lines/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
