"""The second half of least privilege: what a policy set allows that no observed flow used.

Candidates are built from the recording, so they speak of workloads that exist:
- between pod workloads (each owner group apart, so a selector that also selects a sibling
  workload shows): every source to every destination on each port the destination was reached on,
  and on one port no flow and no rule names (a rule without ports opens every port);
- with the world: every address seen (as a source or a destination, with the DNS names seen for
  it) with the workloads on the ports seen, and probe addresses that no flow used: one inside each
  `ipBlock` of the policies (outside its `except` ranges) and one documentation address (RFC
  5737/3849), so an address range wider than the addresses seen shows. A DNS-name rule (`toFQDNs`,
  Calico `domains`) allows a name, whatever address it resolves to: an address allowed only by such
  rules counts as used when the workload used one of its names on that port.

A candidate counts when the engine allows it and a rule of an isolating policy is what allows it.
A workload in scope that no policy isolates in a direction is one allowance (`-> any`, `any ->`):
everything is allowed that way. Some allowances
are meant and flagged, not hidden: cluster DNS for every pod (`dns`), ingress open to any address
(`public`), connections between workloads no label can tell apart (`inseparable`: the same
selectors as an observed connection), and names reached only through a DNS-name pattern the user
asked for (`pattern`: every name it matches is allowed, not only those seen).

Cilium HTTP rules narrow a connection further: on each connection an HTTP rule allows, an entry
that no observed request matched is an allowance of its own (`GET /admin`), and an entry that
matches more than the literal requests seen (identifiers generalised, `[^/?]+`) is flagged `path`.
Without recorded requests (no L7 visibility, a store older than HTTP columns), HTTP rules are judged
at L4 only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from synth.base.config import DnsTarget
from synth.base.text import ascii_text
from synth.core.aggregate import address_selector
from synth.core.l7 import is_literal, matches
from synth.core.model import FQDN, HTTPRule, PolicySet
from synth.policy.evaluate import Decision, Endpoint, Engine, Traffic, Verdict, end_key
from synth.policy.matchers import DEFINED_PROTOCOLS
from synth.policy.observed import EndpointRef, ObservedPair, unobserved_connections
from synth.policy.ports import policy_port_names

__all__ = ["ANYTHING", "Allowance", "Flag", "unobserved_allowances"]

Flag = Literal["", "dns", "public", "inseparable", "pattern", "path"]
_PROBE_ADDRESSES = ("192.0.2.1", "192.0.2.2", "2001:db8:ffff::1", "2001:db8:ffff::2")
ANYTHING = EndpointRef("any", None, "")
"""Every peer: the other end of a direction no policy isolates."""
_ANY_V4 = ipaddress.ip_network("0.0.0.0/0")
_ANY_V6 = ipaddress.ip_network("::/0")


@dataclass(frozen=True, slots=True)
class Allowance:
    """A connection the policies allow that no flow made, with the rules that allow it.

    `port` None means a port no flow and no rule names (the rule opens every port). `flag` says
    why the allowance is meant (see the module), empty when nothing explains it. `request` is an
    HTTP entry (`GET /carts/[^/?]+`) on an observed connection, when that is what is allowed.
    """

    src: EndpointRef
    dst: EndpointRef
    protocol: str
    port: int | None
    rules: tuple[str, ...]
    src_workload: str = ""
    dst_workload: str = ""
    flag: Flag = ""
    request: str = ""

    def port_text(self) -> str:
        """`TCP/80`, `TCP/*` for any port, `any port` for any protocol."""
        if self.protocol == "any":
            return "on any port"
        return f"{self.protocol}/{'*' if self.port is None else self.port}"

    @property
    def unisolated(self) -> bool:
        """Whether this is a whole direction no policy isolates (`x -> anything on any port`)."""
        return ANYTHING in (self.src, self.dst)

    def line(self) -> str:
        """`src -> dst TCP/80`, naming the workloads where they were told apart."""
        src, dst = _end_text(self.src, self.src_workload), _end_text(self.dst, self.dst_workload)
        return ascii_text(f"{src} -> {dst} {self.port_text()}" + (f" {self.request}" if self.request else ""))

    @property
    def order(self) -> tuple[object, ...]:
        """Sort key."""
        port = -1 if self.port is None else self.port
        return (self.flag, self.src.order, self.src_workload, self.dst.order, self.dst_workload, self.protocol, port,
                self.request)


def _end_text(ref: EndpointRef, workload: str) -> str:
    if ref == ANYTHING:
        return "anything"
    if ref.kind == "pod" and workload:
        return f"{ref.namespace}/{workload.rsplit('/', 1)[-1]}"
    return ref.text()


def unobserved_allowances(
    pairs: Sequence[ObservedPair],
    policies: PolicySet,
    engine: Engine,
    namespaces: Sequence[str],
    dns: DnsTarget,
    patterns: Collection[str] = (),
) -> tuple[Allowance, ...]:
    """Every connection among the recording's workloads and addresses that `policies` allow but no flow used.

    `patterns` are the DNS-name patterns the user asked for: what only rules of them allow is flagged.
    """
    observed = {(p.src, p.dst, p.traffic.protocol, p.traffic.port) for p in pairs if p.allowed}
    probe_port = _unnamed_port(pairs, policies)
    found: dict[tuple[object, ...], Allowance] = {}
    names_used, name_rules = _names_used(pairs), _name_rules(policies)
    asked = _name_rules(policies, frozenset(patterns))
    refused: set[object] = set()  # classes of candidates with an address that nothing allows
    keys = _EndKeys()
    for src, dst, traffic, src_workload, dst_workload in _candidates(pairs, policies, namespaces, probe_port):
        kind = _class_of(engine, traffic, keys)
        if kind in refused:
            continue
        decision = engine.evaluate(traffic)
        rules = _allowing_rules(decision)
        if decision.verdict != Verdict.ALLOWED or not rules:
            if kind is not None:
                refused.add(kind)
            continue
        if set(rules) <= name_rules and any(
            (src, src_workload, name, traffic.protocol, traffic.port) in names_used for name in traffic.dst.names
        ):
            continue  # a DNS-name rule: the workload used this name on this port, whichever address it had
        flag: Flag = "pattern" if set(rules) <= asked else _flag(src, dst, traffic, observed, policies, decision, dns)
        if flag == "public":  # one allowance for the whole internet, not one per address tried
            src = EndpointRef("world", None, "::/0" if ":" in src.selector else "0.0.0.0/0")
        port = None if traffic.port == probe_port else traffic.port  # allowed on a port nothing names: any port
        allowance = Allowance(src, dst, traffic.protocol, port, rules, src_workload, dst_workload, flag)
        found.setdefault(allowance.order, allowance)
    for allowance in (*_not_isolated(pairs, engine, namespaces, probe_port), *_http_entries(pairs, engine, namespaces)):
        found.setdefault(allowance.order, allowance)
    return tuple(sorted(found.values(), key=lambda a: a.order))


_Connection = tuple[EndpointRef, EndpointRef, str, int | None, str, str]


def _http_entries(pairs: Sequence[ObservedPair], engine: Engine, namespaces: Sequence[str]) -> Iterator[Allowance]:
    """The HTTP entries of the rules that allow observed connections, beyond the requests seen on them."""
    if not engine.http:
        return
    connections, used = _http_use(pairs, engine, namespaces)
    for ref, ends in connections.items():
        for entry in engine.http[ref]:
            if entry == HTTPRule():
                continue  # every request: what the rule allows at L4 already says
            hits = used[(ref, entry)]
            if hits and is_literal(entry.method) and is_literal(entry.path):
                continue
            flag: Flag = "path" if hits else ""
            request = f"{entry.method or '*'} {entry.path or '*'}"
            for src, dst, protocol, port, src_workload, dst_workload in ends:
                yield Allowance(src, dst, protocol, port, (ref,), src_workload, dst_workload, flag, request)


def _http_use(
    pairs: Sequence[ObservedPair], engine: Engine, namespaces: Sequence[str]
) -> tuple[dict[str, set[_Connection]], dict[tuple[str, HTTPRule], set[tuple[str, str]]]]:
    """The observed connections with HTTP requests recorded that each HTTP rule allows, and the requests each
    of its entries matched. A connection without requests says nothing of the entries (the recording may
    lack L7 visibility, or the store predate HTTP columns): the rule is judged at L4 only."""
    connections: dict[str, set[_Connection]] = {}
    used: dict[tuple[str, HTTPRule], set[tuple[str, str]]] = {}
    for pair in pairs:
        if not pair.allowed or not pair.requests or (namespaces and not pair.touches(namespaces)):
            continue
        decision = engine.evaluate(pair.traffic)
        if decision.verdict != Verdict.ALLOWED:
            continue
        for ref in {*decision.egress.allowed_by, *decision.ingress.allowed_by} & engine.http.keys():
            connections.setdefault(ref, set()).add(
                (pair.src, pair.dst, pair.traffic.protocol, pair.traffic.port, pair.src_workload, pair.dst_workload)
            )
            for entry in engine.http[ref]:
                hits = used.setdefault((ref, entry), set())
                hits.update((m, p) for m, p, _ in pair.requests if matches(entry, m, p))
    return connections, used


class _EndKeys:
    """`end_key` of each endpoint object, computed once: the candidates reuse a few hundred endpoints
    tens of thousands of times. The endpoints are kept, so an object's id is never another's."""

    def __init__(self) -> None:
        self._found: dict[int, tuple[Endpoint, object]] = {}

    def __call__(self, end: Endpoint) -> object:
        found = self._found.get(id(end))
        if found is None:
            found = self._found[id(end)] = (end, end_key(end))
        return found[1]


def _class_of(engine: Engine, traffic: Traffic, keys: Callable[[Endpoint], object] = end_key) -> object:
    """For a pod and an address that is not a pod's: the candidates the engine cannot tell apart
    (`Engine.peer_signature`), so one refusal answers for thousands of addresses; None otherwise."""
    src, dst = traffic.src, traffic.dst
    if src.is_pod == dst.is_pod:
        return None
    pod, other = (src, dst) if src.is_pod else (dst, src)
    signature = engine.peer_signature(other, keys(other))
    return (src.is_pod, keys(pod), signature, traffic.protocol, traffic.port)


def _not_isolated(
    pairs: Sequence[ObservedPair], engine: Engine, namespaces: Sequence[str], probe_port: int
) -> Iterator[Allowance]:
    """Workloads of the namespaces in scope that no policy isolates in a direction: everything is
    allowed that way, said once per workload and direction rather than connection by connection."""
    wanted = set(namespaces)
    outside = Endpoint("world", ip=_PROBE_ADDRESSES[0])
    for (ref, workload), end in _workloads(pairs).items():
        if wanted and ref.namespace not in wanted:
            continue
        egress = engine.evaluate(Traffic(end, outside, "TCP", probe_port)).egress
        if egress.verdict == Verdict.ALLOWED and not egress.isolated_by:
            yield Allowance(ref, ANYTHING, "any", None, ("no egress policy selects it",), workload, "")
        ingress = engine.evaluate(Traffic(outside, end, "TCP", probe_port)).ingress
        if ingress.verdict == Verdict.ALLOWED and not ingress.isolated_by:
            yield Allowance(ANYTHING, ref, "any", None, ("no ingress policy selects it",), "", workload)


Candidate = tuple[EndpointRef, EndpointRef, Traffic, str, str]


def _candidates(
    pairs: Sequence[ObservedPair], policies: PolicySet, namespaces: Sequence[str], probe_port: int
) -> Iterator[Candidate]:
    """Candidates no observed flow (nor denied attempt) made."""
    seen = {(p.src, p.src_workload, p.dst, p.dst_workload, p.traffic.protocol, p.traffic.port) for p in pairs}
    for candidate in _all_candidates(pairs, policies, namespaces, probe_port):
        src, dst, traffic, src_workload, dst_workload = candidate
        if (src, src_workload, dst, dst_workload, traffic.protocol, traffic.port) not in seen:
            yield candidate


def _all_candidates(
    pairs: Sequence[ObservedPair], policies: PolicySet, namespaces: Sequence[str], probe_port: int
) -> Iterator[Candidate]:
    for unobserved in unobserved_connections(pairs, namespaces, by_workload=True):
        yield unobserved.src, unobserved.dst, unobserved.traffic, unobserved.src_workload, unobserved.dst_workload
    wanted = set(namespaces)
    workloads = _workloads(pairs)
    ports = sorted(_rule_ports(policies, pairs) | {("TCP", probe_port), ("UDP", probe_port)})
    for (src, src_workload), src_end in workloads.items():
        for (dst, dst_workload), dst_end in workloads.items():
            if wanted and not {src.namespace, dst.namespace} & wanted:
                continue
            for protocol, port in ports:
                yield src, dst, Traffic(src_end, dst_end, protocol, port), src_workload, dst_workload
    touching = {key: end for key, end in workloads.items() if not wanted or key[0].namespace in wanted}
    yield from _world_candidates(pairs, policies, touching, ports)


def _rule_ports(policies: PolicySet, pairs: Sequence[ObservedPair]) -> set[tuple[str, int]]:
    """The numeric ports the rules name (both ends of a range), and those their named ports resolve to."""
    named: set[tuple[str, int]] = set()
    for policy in policies.policies:
        for rule in (*policy.ingress, *policy.egress):
            for spec in rule.ports:
                if isinstance(spec.port, int) and spec.protocol in DEFINED_PROTOCOLS:
                    named |= {(spec.protocol, spec.port), (spec.protocol, spec.end_port or spec.port)}
    return named | _named_port_numbers(policies, pairs)


def _named_port_numbers(policies: PolicySet, pairs: Sequence[ObservedPair]) -> set[tuple[str, int]]:
    """(protocol, number) of the container ports the rules name, on the observed pods that declare them."""
    names = policy_port_names(policies)
    found: set[tuple[str, int]] = set()
    if not names:
        return found
    for pair in pairs:
        for end in (pair.traffic.src, pair.traffic.dst):
            for name in names & set(end.named_ports or ()):
                number, protocol = (end.named_ports or {})[name]
                found.add((protocol, number))
    return found


def _workloads(pairs: Sequence[ObservedPair]) -> dict[tuple[EndpointRef, str], Endpoint]:
    """One representative end per observed pod workload."""
    found: dict[tuple[EndpointRef, str], Endpoint] = {}
    for pair in pairs:
        for ref, workload, end in ((pair.src, pair.src_workload, pair.traffic.src),
                                   (pair.dst, pair.dst_workload, pair.traffic.dst)):  # fmt: skip
            if ref.kind == "pod" and end.labels is not None:
                # Its labels and container ports (for named-port rules), not one pod's name and address.
                found.setdefault((ref, workload), replace(end, ip=None, name=None))
    return dict(sorted(found.items(), key=lambda item: (*item[0][0].order, item[0][1])))


def _unnamed_port(pairs: Sequence[ObservedPair], policies: PolicySet) -> int:
    """The lowest port that no observed flow reached and no rule names: a probe for rules without ports."""
    named: set[int] = {p.traffic.port for p in pairs if p.traffic.port is not None}
    named |= {number for _, number in _named_port_numbers(policies, pairs)}
    ranges: list[tuple[int, int]] = []
    for policy in policies.policies:
        for rule in (*policy.ingress, *policy.egress):
            for spec in rule.ports:
                if isinstance(spec.port, int):
                    ranges.append((spec.port, spec.end_port or spec.port))
    port = 1
    while port in named or any(low <= port <= high for low, high in ranges):
        port += 1
    return port


def _world_candidates(
    pairs: Sequence[ObservedPair],
    policies: PolicySet,
    workloads: dict[tuple[EndpointRef, str], Endpoint],
    ports: Sequence[tuple[str, int]],
) -> Iterator[Candidate]:
    """Workloads with world addresses (those seen, and probes no flow used) on the ports seen or named."""
    seen_ports = {
        (p.traffic.protocol, p.traffic.port)
        for p in pairs
        if "world" in (p.src.kind, p.dst.kind) and p.traffic.protocol in DEFINED_PROTOCOLS and p.traffic.port
    }
    addresses = {end.ip for p in pairs for end in (p.traffic.src, p.traffic.dst) if end.kind == "world" and end.ip}
    # An address seen as another kind (the API server's, a node's) is no unused world address.
    known = {end.ip for p in pairs for end in (p.traffic.src, p.traffic.dst) if end.ip}
    addresses |= set(_probe_addresses(policies, known))
    candidate_ports = sorted({*seen_ports, *ports})
    names = {end.ip: end.names for p in pairs for end in (p.traffic.src, p.traffic.dst) if end.kind == "world"}
    for address in sorted(addresses, key=_address_order):
        world = Endpoint("world", ip=address, names=names.get(address, ()))
        ref = EndpointRef("world", None, address_selector(address))
        for (pod_ref, workload), pod in workloads.items():
            for protocol, port in candidate_ports:
                yield pod_ref, ref, Traffic(pod, world, protocol, port), workload, ""
                yield ref, pod_ref, Traffic(world, pod, protocol, port), "", workload


def _names_used(pairs: Sequence[ObservedPair]) -> set[tuple[EndpointRef, str, str, str, int | None]]:
    """(source, its workload, DNS name, protocol, port) of the observed world egress."""
    return {
        (p.src, p.src_workload, name, p.traffic.protocol, p.traffic.port)
        for p in pairs
        if p.allowed and p.dst.kind == "world"
        for name in p.traffic.dst.names
    }


def _name_rules(policies: PolicySet, patterns: frozenset[str] | None = None) -> set[str]:
    """The egress rules (`ns/name egress[i]`) that allow by DNS name only: a name stands for every address it
    has. With `patterns`, those that allow only by these patterns."""
    refs = policies.refs()
    return {
        f"{refs[p.object_key]} egress[{i}]"
        for p in policies.policies
        for i, rule in enumerate(p.egress)
        if rule.peers and all(_by_name(peer.fqdn, patterns) for peer in rule.peers)
    }


def _by_name(fqdn: FQDN | None, patterns: frozenset[str] | None) -> bool:
    """Whether a peer is a DNS name (any, when `patterns` is None) or one of `patterns`."""
    if fqdn is None:
        return False
    return patterns is None or (fqdn.pattern and fqdn.text in patterns)


def _probe_addresses(policies: PolicySet, seen: Iterable[str]) -> Iterator[str]:
    """One address inside each ipBlock of the policies that no flow used, and documentation addresses."""
    used = set(seen)
    for address in _PROBE_ADDRESSES:
        if address not in used:
            yield address
    for policy in policies.policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if peer.ip_block is not None:
                    probe = _inside(peer.ip_block.cidr, peer.ip_block.except_, used)
                    if probe is not None:
                        yield probe


def _inside(cidr: str, excepted: Sequence[str], used: set[str]) -> str | None:
    """An address in `cidr`, outside `excepted`, that no flow used (None for a /32 already seen)."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
        holes = [ipaddress.ip_network(e, strict=False) for e in excepted]
    except ValueError:
        return None
    if network in (_ANY_V4, _ANY_V6):
        return None  # the documentation probes stand for "any address"
    for offset in (1, 0, network.num_addresses - 2, network.num_addresses - 1):
        if not 0 <= offset < network.num_addresses:
            continue
        address = network.network_address + offset
        if str(address) not in used and not any(address in hole for hole in holes if hole.version == address.version):
            return str(address)
    return None


def _address_order(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def _allowing_rules(decision: Decision) -> tuple[str, ...]:
    """The rules of isolating policies that allow the connection (empty when no policy isolates it)."""
    return tuple(sorted({*decision.egress.allowed_by, *decision.ingress.allowed_by}))


def _flag(
    src: EndpointRef,
    dst: EndpointRef,
    traffic: Traffic,
    observed: set[tuple[EndpointRef, EndpointRef, str, int | None]],
    policies: PolicySet,
    decision: Decision,
    dns: DnsTarget,
) -> Flag:
    if _is_dns(traffic, dns):
        return "dns"
    if src.kind == "world" and _open_to_any_address(policies, decision.ingress.allowed_by):
        return "public"
    if src.kind == "pod" and dst.kind == "pod" and (src, dst, traffic.protocol, traffic.port) in observed:
        return "inseparable"
    return ""


def _is_dns(traffic: Traffic, dns: DnsTarget) -> bool:
    dst = traffic.dst
    return (
        dst.is_pod
        and dst.namespace == dns.namespace
        and traffic.port in dns.ports
        and traffic.protocol in ("UDP", "TCP")
        and all((dst.labels or {}).get(k) == v for k, v in dns.pod_labels)
    )


def _open_to_any_address(policies: PolicySet, rules: Iterable[str]) -> bool:
    """Whether one of these ingress rules (`ns/name ingress[i]`) admits every address (0.0.0.0/0, ::/0)."""
    refs = policies.refs()
    by_key = {refs[p.object_key]: p for p in policies.policies}
    for ref in rules:
        key, _, position = ref.partition(" ")
        policy = by_key.get(key)
        index = position.removeprefix("ingress[").removesuffix("]")
        if policy is None or not index.isdigit() or int(index) >= len(policy.ingress):
            continue
        for peer in policy.ingress[int(index)].peers:
            if peer.ip_block and ipaddress.ip_network(peer.ip_block.cidr, strict=False) in (_ANY_V4, _ANY_V6):
                return True
    return False
