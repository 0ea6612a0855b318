"""One Calico `projectcalico.org/v3` NetworkPolicy or StagedNetworkPolicy → the model, checked as
Calico's validator checks it.

Checks: known fields, `types` of Ingress/Egress, at most 1024 rules a direction, actions, numeric
ports only with TCP, UDP or SCTP, no IPv4 and IPv6 networks in one rule, `domains` only in egress
Allow rules without `nets` or `selector`, selectors in Calico's expression language. The model keeps
the L3/L4 meaning: a peer selector without `namespaceSelector` is in the policy's namespace,
`projectcalico.org/name` is the namespace name, `k != 'v'` matches pods without `k` (as `NotIn`).
A staged policy is read as the policy it stages (its simulated verdict is what verify shows);
`stagedAction: Delete` stages a removal and allows nothing. Beside the Calico NetworkPolicy of its
name, it stands in for it (`PolicySet.in_effect`), as in Calico's pending verdict. `spec.tier` is a
tier name as Calico names tiers (`tier_problem`; absent or empty: `default`). `metadata.name` is kept
as written, the `<tier>.` that Calico 3.29 to 3.31 require outside the default tier included (3.32
takes any name): it is the policy's identity, so diff and generation name the same object alike.
What synth cannot evaluate as allow rules (Deny and Pass actions, `||` in selectors, service
accounts, services) is refused by name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from synth.base.config import NAMESPACE_NAME_LABEL
from synth.core.model import FQDN, IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyType, PortSpec, Requirement, Rule
from synth.policy.fields import (
    Where,
    check_keys,
    check_label_key,
    check_label_value,
    describe,
    is_port_name,
    list_field,
    mapping_field,
    string_map,
)
from synth.policy.manifest import ip_block

__all__ = ["API_VERSION", "KINDS", "NAMESPACE_LABEL", "parse_selector", "policy_from_calico", "tier_problem"]

API_VERSION = "projectcalico.org/v3"
KINDS = ("NetworkPolicy", "StagedNetworkPolicy")
NAMESPACE_LABEL = "projectcalico.org/name"
_SPEC_KEYS = ("tier", "order", "selector", "types", "ingress", "egress", "serviceAccountSelector",
              "performanceHints", "stagedAction")
_RULE_KEYS = ("action", "protocol", "notProtocol", "ipVersion", "icmp", "notICMP", "http", "source", "destination",
              "metadata")
_ENTITY_KEYS = ("selector", "notSelector", "namespaceSelector", "nets", "notNets", "ports", "notPorts",
                "serviceAccounts", "services", "domains")
_UNSUPPORTED = ("notSelector", "notPorts", "serviceAccounts", "services", "notProtocol", "http", "notICMP")
_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
_OTHER_PROTOCOLS = ("ICMP", "ICMPv6", "UDPLite")
_MAX_RULES = 1024
_DOMAIN = re.compile(r"(\*\.)?[-a-zA-Z0-9_]+(\.[-a-zA-Z0-9_*]+)*")
_TIER = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # a DNS-1123 label: no dot, it prefixes policy names
_TIER_MAX = 63


def tier_problem(name: str) -> str | None:
    """Why Calico refuses `name` as a tier name, or None when it takes it."""
    if len(name) > _TIER_MAX or not _TIER.fullmatch(name):
        return (f"{name!r} is not a tier name: lower-case letters, digits and '-', starting and ending with a letter "
                f"or digit, at most {_TIER_MAX} characters")
    return None


def policy_from_calico(obj: Mapping[str, Any], origin: str, default_namespace: str = "default") -> NetworkPolicy:
    """Validate one Calico (Staged)NetworkPolicy and convert it. Raises `PolicyError` naming the field."""
    meta = mapping_field(obj.get("metadata"), "metadata", Where(origin, "?"))
    name, namespace = meta.get("name"), meta.get("namespace") or default_namespace
    w = Where(origin, f"{namespace}/{name}")
    if not isinstance(name, str) or not name:
        w.fail("metadata.name", "required")
    staged = obj.get("kind") == "StagedNetworkPolicy"
    spec = mapping_field(obj.get("spec"), "spec", w)
    check_keys(spec, _SPEC_KEYS if staged else _SPEC_KEYS[:-1], "spec", w)
    for key in ("serviceAccountSelector",):
        if spec.get(key) is not None:
            w.fail(f"spec.{key}", "not supported: synth does not know the pods' service accounts")
    action = spec.get("stagedAction") or "Set"
    if action not in ("Set", "Delete"):
        w.fail("spec.stagedAction", f"{action!r} is not supported (use Set or Delete)")
    ingress = _rules(spec.get("ingress"), "spec.ingress", "source", w)
    egress = _rules(spec.get("egress"), "spec.egress", "destination", w)
    tier = spec.get("tier") or "default"
    order = spec.get("order")
    if not isinstance(tier, str):
        w.fail("spec.tier", f"must be a string, got {describe(tier)}")
    problem = tier_problem(tier)
    if problem is not None:
        w.fail("spec.tier", problem)
    if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)):
        w.fail("spec.order", f"must be a number, got {describe(order)}")
    return NetworkPolicy(
        name=name,
        namespace=str(namespace),
        pod_selector=parse_selector(spec.get("selector") or "all()", "spec.selector", w),
        policy_types=() if action == "Delete" else _types(spec, w),
        ingress=ingress,
        egress=egress,
        labels=string_map(meta.get("labels"), "metadata.labels", w),
        origin=origin,
        api="calico",
        tier=tier,
        order=None if order is None else float(order),
        staged=staged,
    )


def _types(spec: Mapping[str, Any], w: Where) -> tuple[PolicyType, ...]:
    given = list_field(spec.get("types"), "spec.types", w)
    for i, item in enumerate(given):
        if item not in ("Ingress", "Egress"):
            w.fail(f"spec.types[{i}]", f"unknown type {item!r} (use Ingress or Egress)")
    if given:
        return tuple(t for t in ("Ingress", "Egress") if t in given)
    has_ingress, has_egress = bool(spec.get("ingress")), bool(spec.get("egress"))
    return ("Egress",) if has_egress and not has_ingress else ("Ingress", "Egress") if has_egress else ("Ingress",)


def _rules(value: object, path: str, peer_side: str, w: Where) -> tuple[Rule, ...]:
    items = list_field(value, path, w)
    if len(items) > _MAX_RULES:
        w.fail(path, f"{len(items)} rules: Calico allows at most {_MAX_RULES}")
    rules = []
    for i, item in enumerate(items):
        rule = _rule(item, f"{path}[{i}]", peer_side, w)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _rule(value: object, path: str, peer_side: str, w: Where) -> Rule | None:
    body = mapping_field(value, path, w)
    check_keys(body, _RULE_KEYS, path, w)
    for key in _UNSUPPORTED:
        if body.get(key) is not None:
            w.fail(f"{path}.{key}", "not supported: synth evaluates L3/L4 allow rules")
    action = body.get("action")
    if action not in ("Allow", "Deny", "Log", "Pass"):
        w.fail(f"{path}.action", f"{action!r} is not an action (Allow, Deny, Log or Pass)")
    if action in ("Deny", "Pass"):
        w.fail(f"{path}.action", f"{action} is not supported: synth evaluates Allow rules (Log rules are skipped)")
    protocol = body.get("protocol")
    if protocol is not None and protocol not in (*_PORT_PROTOCOLS, *_OTHER_PROTOCOLS) and not (
        isinstance(protocol, int) and 1 <= protocol <= 255
    ):
        w.fail(f"{path}.protocol", f"unknown protocol {protocol!r}")
    other_side = "destination" if peer_side == "source" else "source"
    peer_body = mapping_field(body.get(peer_side), f"{path}.{peer_side}", w)
    other = mapping_field(body.get(other_side), f"{path}.{other_side}", w)
    check_keys(peer_body, _ENTITY_KEYS, f"{path}.{peer_side}", w)
    check_keys(other, ("ports",) if other_side == "destination" else (), f"{path}.{other_side}", w)
    port_body = peer_body if peer_side == "destination" else other
    ports = _ports(port_body.get("ports"), protocol, f"{path}.destination.ports", w)
    peers = _peers(peer_body, f"{path}.{peer_side}", peer_side == "destination" and action == "Allow", w)
    if action == "Log" or protocol in _OTHER_PROTOCOLS or isinstance(protocol, int):
        return None  # Log does not decide; ICMP and numbered protocols are outside TCP/UDP/SCTP
    if protocol is not None and not ports:
        ports = (PortSpec(protocol),)
    return Rule(peers=peers, ports=ports)


def _peers(body: Mapping[str, Any], path: str, egress_allow: bool, w: Where) -> tuple[Peer, ...]:
    for key in ("notSelector", "serviceAccounts", "services"):
        if body.get(key) is not None:
            w.fail(f"{path}.{key}", "not supported: synth evaluates selectors, nets and domains")
    selector, spaces = body.get("selector"), body.get("namespaceSelector")
    nets = list_field(body.get("nets"), f"{path}.nets", w)
    not_nets = list_field(body.get("notNets"), f"{path}.notNets", w)
    domains = list_field(body.get("domains"), f"{path}.domains", w)
    if domains and (not egress_allow or nets or selector is not None):
        w.fail(f"{path}.domains", "only in egress Allow rules without nets and selector")
    if nets and (selector is not None or spaces is not None):
        w.fail(f"{path}.nets", "nets with a selector (both must match) is not supported: write one rule each")
    if not_nets and not nets:
        w.fail(f"{path}.notNets", "notNets without nets is not supported")
    if domains:
        return tuple(Peer(fqdn=_domain(d, f"{path}.domains[{i}]", w)) for i, d in enumerate(domains))
    if nets:
        return _networks(nets, not_nets, path, w)
    if selector is None and spaces is None:
        return ()
    pods = None if selector is None else parse_selector(selector, f"{path}.selector", w)
    namespaces = None if spaces is None else parse_selector(spaces, f"{path}.namespaceSelector", w, namespaces=True)
    return (Peer(pod_selector=pods if pods is not None else LabelSelector(), namespace_selector=namespaces),)


def _networks(nets: list[Any], not_nets: list[Any], path: str, w: Where) -> tuple[Peer, ...]:
    blocks = [ip_block({"cidr": n}, f"{path}.nets[{i}]", w) for i, n in enumerate(nets)]
    holes = [ip_block({"cidr": n}, f"{path}.notNets[{i}]", w) for i, n in enumerate(not_nets)]
    versions = {ipaddress.ip_network(b.cidr, strict=False).version for b in (*blocks, *holes)}
    if len(versions) > 1:
        w.fail(f"{path}.nets", "IPv4 and IPv6 networks in one rule: Calico rejects it; write one rule each")
    peers = []
    for block in blocks:
        network = ipaddress.ip_network(block.cidr, strict=False)
        inside = tuple(
            h.cidr for h in holes
            if ipaddress.ip_network(h.cidr, strict=False).subnet_of(network)  # type: ignore[arg-type]
            and ipaddress.ip_network(h.cidr, strict=False) != network
        )
        if not any(ipaddress.ip_network(h.cidr, strict=False).supernet_of(network) for h in holes):  # type: ignore[arg-type]
            peers.append(Peer(ip_block=IPBlock(block.cidr, inside)))
    return tuple(peers)


def _domain(value: object, path: str, w: Where) -> FQDN:
    if not isinstance(value, str) or len(value) > 253 or not _DOMAIN.fullmatch(value.rstrip(".")):
        w.fail(path, f"{value!r} is not a domain name (one leading `*.` at most)")
    if value.count("*") > 1 or value.rstrip(".").endswith("*"):
        w.fail(path, f"{value!r}: one `*` per name, and not last")
    return FQDN(value.lower().rstrip("."), "*" in value)


def _ports(value: object, protocol: object, path: str, w: Where) -> tuple[PortSpec, ...]:
    items = list_field(value, path, w)
    if items and protocol not in _PORT_PROTOCOLS:
        w.fail(path, f"ports need protocol TCP, UDP or SCTP, got {protocol!r}")
    specs = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if isinstance(item, bool) or not isinstance(item, int | str):
            w.fail(item_path, f"must be a port number, a range `low:high` or a port name, got {describe(item)}")
        low, colon, high = str(item).partition(":")
        if low.isdigit() and (not colon or high.isdigit()):
            first, last = int(low), int(high or low)
            if not 1 <= first <= last <= 65535:
                w.fail(item_path, f"{item!r} is not a port or range within 1-65535")
            specs.append(PortSpec(protocol, first, last if last != first else None))  # type: ignore[arg-type]
        elif isinstance(item, str) and not colon and is_port_name(item):
            specs.append(PortSpec(protocol, item))  # type: ignore[arg-type]
        else:
            w.fail(item_path, f"{item!r} is not a port number, range or port name")
    return tuple(specs)


# --- selectors -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(&&|\|\||==|!=|!has\(|has\(|all\(\)|global\(\)|[(){},!])|('[^']*'|\"[^\"]*\")"
                    r"|([A-Za-z0-9_./-]+))")
_OPERATOR_WORDS = {"in", "not", "contains", "starts", "ends", "with"}


def parse_selector(value: object, path: str, w: Where, namespaces: bool = False) -> LabelSelector:
    """A Calico selector that is a conjunction (`&&`) of `k == 'v'`, `k != 'v'`, `k in {..}`,
    `k not in {..}`, `has(k)`, `!has(k)` and `all()`, as a label selector. With `namespaces`,
    `projectcalico.org/name` is the namespace name label."""
    if not isinstance(value, str):
        w.fail(path, f"must be a selector string, got {describe(value)}")
    tokens = _tokens(value, path, w)
    requirements: list[Requirement] = []
    labels: list[tuple[str, str]] = []
    position = 0
    while position < len(tokens):
        position = _term(tokens, position, labels, requirements, value, path, w)
        if position < len(tokens):
            if tokens[position] != "&&":
                _unsupported(value, tokens[position], path, w)
            position += 1
            if position == len(tokens):
                w.fail(path, f"{value!r}: ends after &&")
    def rename(key: str) -> str:
        return NAMESPACE_NAME_LABEL if namespaces and key == NAMESPACE_LABEL else key

    for key, label in labels:
        check_label_key(key, path, w)
        check_label_value(label, path, w)
    for r in requirements:
        check_label_key(r.key, path, w)
    return LabelSelector(
        tuple(sorted((rename(k), v) for k, v in labels)),
        tuple(sorted((Requirement(rename(r.key), r.operator, r.values) for r in requirements),
                     key=lambda r: (r.key, r.operator, r.values))),
    )


def _tokens(text: str, path: str, w: Where) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            w.fail(path, f"{text!r}: cannot read the selector at {text[position:].strip()[:20]!r}")
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


def _term(words: list[str], i: int, labels: list[tuple[str, str]], requirements: list[Requirement],
          text: str, path: str, w: Where) -> int:
    """Read one term at `words[i]`; returns the index after it."""
    word = words[i]
    if word == "all()":
        return i + 1
    if word in ("has(", "!has("):
        if i + 2 >= len(words) or words[i + 2] != ")":
            w.fail(path, f"{text!r}: has( needs a key and )")
        requirements.append(Requirement(words[i + 1], "Exists" if word == "has(" else "DoesNotExist"))
        return i + 3
    if _is_word(word) and i + 1 < len(words):
        operator = words[i + 1]
        if operator in ("==", "!=") and i + 2 < len(words) and _is_string(words[i + 2]):
            label = words[i + 2][1:-1]
            if operator == "==":
                labels.append((word, label))
            else:
                requirements.append(Requirement(word, "NotIn", (label,)))
            return i + 3
        if operator == "in" or (operator == "not" and i + 2 < len(words) and words[i + 2] == "in"):
            start = i + 2 if operator == "in" else i + 3
            values, end = _set(words, start, text, path, w)
            requirements.append(Requirement(word, "In" if operator == "in" else "NotIn", values))
            return end
    return _unsupported(text, word, path, w)


def _set(tokens: list[str], i: int, text: str, path: str, w: Where) -> tuple[tuple[str, ...], int]:
    if i >= len(tokens) or tokens[i] != "{":
        w.fail(path, f"{text!r}: `in` needs a set {{'a', 'b'}}")
    values: list[str] = []
    i += 1
    while i < len(tokens) and tokens[i] != "}":
        if not _is_string(tokens[i]):
            w.fail(path, f"{text!r}: set members are quoted strings")
        values.append(tokens[i][1:-1])
        i += 1
        if i < len(tokens) and tokens[i] == ",":
            i += 1
    if i >= len(tokens):
        w.fail(path, f"{text!r}: set not closed with }}")
    return tuple(sorted(set(values))), i + 1


def _is_word(token: str) -> bool:
    return token[0] not in "'\"(){},!&|=" and token not in _OPERATOR_WORDS


def _is_string(token: str) -> bool:
    return len(token) >= 2 and token[0] == token[-1] and token[0] in "'\""


def _unsupported(text: str, token: str, path: str, w: Where) -> NoReturn:
    w.fail(path, f"{text!r}: {token!r} is not supported (synth reads selectors that are conjunctions (&&) of "
                 "==, !=, in, not in, has(), !has() and all())")
