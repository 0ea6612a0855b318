"""Table-driven tests of the policy engine.

The model follows the upstream e2e suite (reference §6): namespaces x, y, z labelled `ns=<name>`
and `kubernetes.io/metadata.name=<name>`; pods a, b, c labelled `pod=<name>`, each with container
ports `serve-<port>-<proto>` for ports 80 and 81 and TCP, UDP and SCTP. Cases marked `e2e:` and
`pa:` are our own transcriptions of the upstream e2e netpol tests and of policy-assistant's tables,
written from the facts in the reference, one connection at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from synth.core.model import PolicySet
from synth.policy.evaluate import Decision, Endpoint, Engine, Traffic, Verdict, explain
from synth.policy.manifest import policy_from_object

A, D, U = Verdict.ALLOWED, Verdict.DENIED, Verdict.UNKNOWN
NS_INDEX = {"x": 1, "y": 2, "z": 3}
POD_INDEX = {"a": 1, "b": 2, "c": 3}
NAMED_PORTS = {f"serve-{port}-{proto.lower()}": (port, proto) for port in (80, 81) for proto in ("TCP", "UDP", "SCTP")}


def pod(ref: str, **overrides: Any) -> Endpoint:
    """The model pod `ns/name`; keyword overrides replace facts (e.g. labels=None)."""
    ns, name = ref.split("/")
    facts: dict[str, Any] = {
        "kind": "pod",
        "namespace": ns,
        "name": name,
        "labels": {"pod": name},
        "namespace_labels": {"ns": ns, "kubernetes.io/metadata.name": ns},
        "ip": f"10.0.{NS_INDEX[ns]}.{POD_INDEX[name]}",
        "named_ports": NAMED_PORTS,
    }
    facts.update(overrides)
    return Endpoint(**facts)


def world(ip: str | None) -> Endpoint:
    return Endpoint(kind="world", ip=ip)


HOST = Endpoint(kind="host", ip="172.18.0.2")
REMOTE_NODE = Endpoint(kind="remote-node", ip="172.18.0.3")


def pol(name: str, spec: str, ns: str = "x") -> dict[str, Any]:
    """A NetworkPolicy manifest with `spec` given as (flow-style) YAML."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml.safe_load(spec),
    }


def policy_set(*manifests: dict[str, Any]) -> PolicySet:
    return PolicySet.of([policy_from_object(m, f"case#{i}") for i, m in enumerate(manifests, 1)])


DENY_IN = pol("deny-in", "{podSelector: {}}")
DENY_ALL = pol("deny-all", "{podSelector: {}, policyTypes: [Ingress, Egress]}")
DENY_OUT = pol("deny-out", "{podSelector: {}, policyTypes: [Egress]}")
ALLOW_ALL_IN = pol("allow-all-in", "{podSelector: {}, ingress: [{}]}")


def to_a(name: str, peers: str, ports: str = "[]") -> dict[str, Any]:
    """An ingress policy on x/a with one rule."""
    return pol(name, f"{{podSelector: {{matchLabels: {{pod: a}}}}, ingress: [{{from: {peers}, ports: {ports}}}]}}")


def from_a(name: str, peers: str, ports: str = "[]") -> dict[str, Any]:
    """An egress-only policy on x/a with one rule."""
    return pol(
        name,
        "{podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress],"
        f" egress: [{{to: {peers}, ports: {ports}}}]}}",
    )


@dataclass(frozen=True)
class Case:
    """One connection under some policies: the verdict, and why, direction by direction, as the engine says it."""

    name: str
    policies: tuple[dict[str, Any], ...]
    src: Endpoint
    dst: Endpoint
    port: int | None
    verdict: Verdict
    egress: str  # the reason of the egress decision (at the source), exactly
    ingress: str  # the reason of the ingress decision (at the destination), exactly
    allowed_by: tuple[str, ...] = ()
    isolated_by: tuple[str, ...] | None = None
    protocol: str = "TCP"


def c(name: str, policies: Any, src: Endpoint, dst: Endpoint, port: int | None, verdict: Verdict, **kw: Any) -> Case:
    return Case(name, tuple(policies), src, dst, port, verdict, **kw)


# The reasons the engine gives most often, spelled once; the rarer ones are written out in the cases.
def not_selected(pod: str, direction: str) -> str:
    """No policy of the pod's namespace selects it for this direction."""
    return f"allowed: pod {pod} is not selected by any {direction} policy, not isolated"


def not_a_pod(end: str) -> str:
    """The end is no pod, so nothing isolates it."""
    return f"allowed: {end} is not a pod, not isolated"


def rules(*refs: str) -> str:
    """These rules (`ns/name direction[index]`, sorted) allow the connection."""
    return f"allowed by {', '.join(refs)}"


def denied(pod: str, direction: str, policies: str, connection: str) -> str:
    """`policies` isolate the pod and no rule allows `connection` (`TCP/80 from pod y/a`)."""
    return f"denied: pod {pod} is isolated for {direction} by {policies} and no rule allows {connection}"


XA, XB, XC = pod("x/a"), pod("x/b"), pod("x/c")
CANARY = pod("x/c", name="canary", labels={"pod": "canary", "track": "canary"})
YA, YB, YC = pod("y/a"), pod("y/b"), pod("y/c")
ZA, ZB, ZC = pod("z/a"), pod("z/b"), pod("z/c")
NS_Y = "[{namespaceSelector: {matchLabels: {ns: y}}}]"
POD_B = "[{podSelector: {matchLabels: {pod: b}}}]"

CASES = [
    # --- isolation and default deny ------------------------------------------------------------
    c(
        "no policies: all allowed",
        [],
        XA,
        XB,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("x/b", "ingress"),
    ),
    c(
        "e2e default-deny-ingress: denies other ns",
        [DENY_IN],
        YA,
        XA,
        80,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/deny-in", "TCP/80 from pod y/a"),
        isolated_by=("x/deny-in",),
    ),
    c(
        "e2e default-deny-ingress: does not isolate egress",
        [DENY_IN],
        XA,
        ZB,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("z/b", "ingress"),
        isolated_by=(),
    ),
    c(
        "e2e default-deny-all: egress denied to other ns",
        [DENY_ALL],
        XA,
        YB,
        80,
        D,
        egress=denied("x/a", "egress", "x/deny-all", "TCP/80 to pod y/b"),
        ingress=not_selected("y/b", "ingress"),
        isolated_by=("x/deny-all",),
    ),
    c(
        "e2e deny egress for all pods in namespace",
        [DENY_OUT],
        XB,
        ZC,
        81,
        D,
        egress=denied("x/b", "egress", "x/deny-out", "TCP/81 to pod z/c"),
        ingress=not_selected("z/c", "ingress"),
        isolated_by=("x/deny-out",),
    ),
    c(
        "egress-only policy does not isolate ingress",
        [DENY_OUT],
        YA,
        XA,
        80,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=not_selected("x/a", "ingress"),
        isolated_by=(),
    ),
    c(
        "policy in another namespace does not apply",
        [pol("deny", "{podSelector: {}}", ns="y")],
        XA,
        XB,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("x/b", "ingress"),
    ),
    c(
        "podSelector targets only matching pods",
        [to_a("only-a", "[]", "[{port: 9}]")],
        XA,
        XB,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("x/b", "ingress"),
        isolated_by=(),
    ),
    # --- policyTypes defaulting ----------------------------------------------------------------
    c(
        "types default: `egress: []` alone does not add Egress",
        [pol("p", "{podSelector: {}, egress: []}")],
        XA,
        YB,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("y/b", "ingress"),
    ),
    c(
        "types default: egress rules add Egress",
        [pol("p", f"{{podSelector: {{}}, egress: [{{to: {NS_Y}}}]}}")],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_selected("y/b", "ingress"),
        allowed_by=("x/p egress[0]",),
        isolated_by=("x/p",),
    ),
    c(
        "types default: Ingress is always added",
        [pol("p", f"{{podSelector: {{}}, egress: [{{to: {NS_Y}}}]}}")],
        YA,
        XA,
        80,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/a"),
    ),
    c(
        "types explicit Egress: ingress rules ignored",
        [pol("p", f"{{podSelector: {{}}, policyTypes: [Egress], ingress: [{{from: {NS_Y}}}]}}")],
        ZA,
        XA,
        80,
        A,
        egress=not_selected("z/a", "egress"),
        ingress=not_selected("x/a", "ingress"),
    ),
    c(
        "types explicit Ingress: egress rules ignored",
        [pol("p", f"{{podSelector: {{}}, policyTypes: [Ingress], egress: [{{to: {NS_Y}}}]}}")],
        XA,
        ZA,
        80,
        A,
        egress=not_selected("x/a", "egress"),
        ingress=not_selected("z/a", "ingress"),
    ),
    # --- additivity -----------------------------------------------------------------------------
    c(
        "e2e allow-all wins over deny-all (additive)",
        [DENY_IN, ALLOW_ALL_IN],
        ZC,
        XA,
        81,
        A,
        egress=not_selected("z/c", "egress"),
        ingress=rules("x/allow-all-in ingress[0]"),
        allowed_by=("x/allow-all-in ingress[0]",),
        isolated_by=("x/allow-all-in", "x/deny-in"),
    ),
    c(
        "e2e stacked policies, overlapping podSelectors: port 80",
        [to_a("p80", POD_B, "[{port: 80}]"), to_a("p81", POD_B, "[{port: 81}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p80 ingress[0]"),
        allowed_by=("x/p80 ingress[0]",),
    ),
    c(
        "e2e stacked policies, overlapping podSelectors: port 81",
        [to_a("p80", POD_B, "[{port: 80}]"), to_a("p81", POD_B, "[{port: 81}]")],
        XB,
        XA,
        81,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p81 ingress[0]"),
        allowed_by=("x/p81 ingress[0]",),
    ),
    c(
        "e2e stacked policies, overlapping podSelectors: port 82 denied",
        [to_a("p80", POD_B, "[{port: 80}]"), to_a("p81", POD_B, "[{port: 81}]")],
        XB,
        XA,
        82,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p80, x/p81", "TCP/82 from pod x/b"),
        isolated_by=("x/p80", "x/p81"),
    ),
    c(
        "every matching rule is listed",
        [to_a("r1", POD_B), to_a("r2", "[{podSelector: {}}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/r1 ingress[0]", "x/r2 ingress[0]"),
        allowed_by=("x/r1 ingress[0]", "x/r2 ingress[0]"),
    ),
    # --- pod and namespace selectors -------------------------------------------------------------
    c(
        "e2e podSelector {} peer: same namespace allowed",
        [to_a("p", "[{podSelector: {}}]")],
        XC,
        XA,
        80,
        A,
        egress=not_selected("x/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e podSelector {} peer: other namespaces denied",
        [to_a("p", "[{podSelector: {}}]")],
        YC,
        XA,
        80,
        D,
        egress=not_selected("y/c", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/c"),
    ),
    c(
        "e2e podSelector peer: matching pod allowed",
        [to_a("p", POD_B)],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e podSelector peer: other pod denied",
        [to_a("p", POD_B)],
        XC,
        XA,
        80,
        D,
        egress=not_selected("x/c", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/c"),
    ),
    c(
        "e2e podSelector peer: only the policy's namespace",
        [to_a("p", POD_B)],
        YB,
        XA,
        80,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/b"),
    ),
    c(
        "e2e namespaceSelector peer: matching namespace",
        [to_a("p", NS_Y)],
        YC,
        XA,
        80,
        A,
        egress=not_selected("y/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e namespaceSelector peer: other namespace",
        [to_a("p", NS_Y)],
        ZC,
        XA,
        80,
        D,
        egress=not_selected("z/c", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod z/c"),
    ),
    c(
        "e2e namespaceSelector peer: not even own namespace",
        [to_a("p", NS_Y)],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/b"),
    ),
    c(
        "e2e namespaceSelector {}: pods of every namespace",
        [to_a("p", "[{namespaceSelector: {}}]")],
        ZC,
        XA,
        80,
        A,
        egress=not_selected("z/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "namespaceSelector {}: not external IPs",
        [to_a("p", "[{namespaceSelector: {}}]")],
        world("8.8.8.8"),
        XA,
        80,
        D,
        egress=not_a_pod("world 8.8.8.8"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from world 8.8.8.8"),
    ),
    c(
        "e2e AND peer (ns=y and pod=b): y/b",
        [to_a("p", "[{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]")],
        YB,
        XA,
        80,
        A,
        egress=not_selected("y/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e AND peer (ns=y and pod=b): y/c denied",
        [to_a("p", "[{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]")],
        YC,
        XA,
        80,
        D,
        egress=not_selected("y/c", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/c"),
    ),
    c(
        "e2e AND peer (ns=y and pod=b): x/b denied",
        [to_a("p", "[{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]")],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/b"),
    ),
    c(
        "e2e OR peers (ns=y | pod=b): y/c",
        [to_a("p", f"[{NS_Y[1:-1]}, {POD_B[1:-1]}]")],
        YC,
        XA,
        80,
        A,
        egress=not_selected("y/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e OR peers (ns=y | pod=b): x/b",
        [to_a("p", f"[{NS_Y[1:-1]}, {POD_B[1:-1]}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e OR peers (ns=y | pod=b): z/b denied",
        [to_a("p", f"[{NS_Y[1:-1]}, {POD_B[1:-1]}]")],
        ZB,
        XA,
        80,
        D,
        egress=not_selected("z/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod z/b"),
    ),
    c(
        "podSelector and namespaceSelector {}: pod=b anywhere",
        [to_a("p", "[{namespaceSelector: {}, podSelector: {matchLabels: {pod: b}}}]")],
        ZB,
        XA,
        80,
        A,
        egress=not_selected("z/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e PodSelector with matchExpressions In",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}}]")],
        XC,
        XA,
        80,
        A,
        egress=not_selected("x/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "NotIn excludes listed values",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [b]}]}}]")],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/b"),
    ),
    c(
        "NotIn matches a pod without the key (upstream, unlike policy-assistant)",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "Exists matches a pod with the key",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: pod, operator: Exists}]}}]")],
        XC,
        XA,
        80,
        A,
        egress=not_selected("x/c", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "DoesNotExist rejects a pod with the key",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: pod, operator: DoesNotExist}]}}]")],
        XC,
        XA,
        80,
        D,
        egress=not_selected("x/c", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/c"),
    ),
    c(
        "DoesNotExist matches a pod without the key",
        [to_a("p", "[{podSelector: {matchExpressions: [{key: track, operator: DoesNotExist}]}}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "A policy selecting track DoesNotExist isolates the stable pod, not the canary beside it",
        [pol("stable", "{podSelector: {matchExpressions: [{key: track, operator: DoesNotExist}]}}")],
        XB,
        CANARY,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=not_selected("x/canary", "ingress"),
    ),
    c(
        "The same policy denies the stable pod",
        [pol("stable", "{podSelector: {matchExpressions: [{key: track, operator: DoesNotExist}]}}")],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/stable", "TCP/80 from pod x/b"),
    ),
    c(
        "A policy selecting track NotIn [canary] selects a pod without the key, not the canary",
        [pol("stable", "{podSelector: {matchExpressions: [{key: track, operator: NotIn, values: [canary]}]}}")],
        XB,
        CANARY,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=not_selected("x/canary", "ingress"),
    ),
    c(
        "e2e NamespaceSelector with matchExpressions NotIn",
        [to_a("p", "[{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x, y]}]}}]")],
        ZA,
        XA,
        80,
        A,
        egress=not_selected("z/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e Multiple PodSelectors and NamespaceSelectors",
        [
            to_a(
                "p",
                "[{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]},"
                " podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}}]",
            )
        ],
        YA,
        XA,
        80,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/a"),
    ),
    c(
        "e2e namespace by default label kubernetes.io/metadata.name",
        [to_a("p", "[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]")],
        YA,
        XA,
        80,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "unknown namespace labels: assume the name label",
        [to_a("p", "[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]")],
        pod("y/a", namespace_labels=None),
        XA,
        80,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "unknown namespace labels: other labels do not match",
        [to_a("p", NS_Y)],
        pod("y/a", namespace_labels=None),
        XA,
        80,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/a"),
    ),
    # --- ports and protocols -----------------------------------------------------------------------
    c(
        "e2e enforce policy based on ports: 80",
        [to_a("p", POD_B, "[{port: 80}]")],
        XB,
        XA,
        80,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e enforce policy based on ports: 81",
        [to_a("p", POD_B, "[{port: 81}]")],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod x/b"),
    ),
    c(
        "protocol defaults to TCP: UDP 80 denied",
        [to_a("p", POD_B, "[{port: 80}]")],
        XB,
        XA,
        80,
        D,
        egress=not_selected("x/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "UDP/80 from pod x/b"),
        protocol="UDP",
    ),
    c(
        "pa: allowing a protocol implicitly denies others (UDP)",
        [to_a("p", "[]", "[{protocol: UDP, port: 80}]")],
        YB,
        XA,
        80,
        A,
        egress=not_selected("y/b", "egress"),
        ingress=rules("x/p ingress[0]"),
        protocol="UDP",
    ),
    c(
        "pa: allowing a protocol implicitly denies others (TCP)",
        [to_a("p", "[]", "[{protocol: UDP, port: 80}]")],
        YB,
        XA,
        80,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/b"),
    ),
    c(
        "pa: allowing a protocol implicitly denies others (IP)",
        [to_a("p", "[]", "[{protocol: UDP, port: 80}]")],
        world("1.2.3.4"),
        XA,
        80,
        D,
        egress=not_a_pod("world 1.2.3.4"),
        ingress=denied("x/a", "ingress", "x/p", "SCTP/80 from world 1.2.3.4"),
        protocol="SCTP",
    ),
    c(
        "e2e any port on a specific protocol: TCP 81",
        [to_a("p", "[]", "[{protocol: TCP}]")],
        YB,
        XA,
        81,
        A,
        egress=not_selected("y/b", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "e2e any port on a specific protocol: UDP 81 denied",
        [to_a("p", "[]", "[{protocol: TCP}]")],
        YB,
        XA,
        81,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "UDP/81 from pod y/b"),
        protocol="UDP",
    ),
    c(
        "e2e not allow TCP when policy allows only UDP",
        [to_a("p", "[]", "[{protocol: UDP}]")],
        YB,
        XA,
        81,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/81 from pod y/b"),
    ),
    c(
        "e2e SCTP is not TCP",
        [to_a("p", "[]", "[{protocol: SCTP, port: 80}]")],
        YB,
        XA,
        80,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/b"),
    ),
    c(
        "e2e SCTP allowed",
        [to_a("p", "[]", "[{protocol: SCTP, port: 80}]")],
        YB,
        XA,
        80,
        A,
        egress=not_selected("y/b", "egress"),
        ingress=rules("x/p ingress[0]"),
        protocol="SCTP",
    ),
    c(
        "empty ports: every port and protocol",
        [to_a("p", POD_B)],
        XB,
        XA,
        9999,
        A,
        egress=not_selected("x/b", "egress"),
        ingress=rules("x/p ingress[0]"),
        protocol="udp",
    ),
    c(
        "pa end-port: lower bound inclusive",
        [to_a("p", "[]", "[{port: 80, endPort: 82}]")],
        YA,
        XA,
        80,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "pa end-port: upper bound inclusive",
        [to_a("p", "[]", "[{port: 80, endPort: 82}]")],
        YA,
        XA,
        82,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "pa end-port: above the range",
        [to_a("p", "[]", "[{port: 80, endPort: 82}]")],
        YA,
        XA,
        83,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/83 from pod y/a"),
    ),
    c(
        "pa end-port: below the range",
        [to_a("p", "[]", "[{port: 80, endPort: 82}]")],
        YA,
        XA,
        79,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/79 from pod y/a"),
    ),
    c(
        "unknown port with a port rule",
        [to_a("p", "[]", "[{port: 80}]")],
        YA,
        XA,
        None,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: destination port unknown",
    ),
    c(
        "unknown port with an any-port rule",
        [to_a("p", "[]")],
        YA,
        XA,
        None,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "ICMP at an isolated pod is undefined",
        [DENY_IN],
        YA,
        XA,
        None,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: ICMPv4 is not defined by NetworkPolicy and pod x/a is isolated for ingress",
        protocol="ICMPv4",
    ),
    c(
        "ICMP between pods that are not isolated",
        [],
        YA,
        XA,
        None,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=not_selected("x/a", "ingress"),
        protocol="ICMPv6",
    ),
    # --- named ports ---------------------------------------------------------------------------------
    c(
        "e2e one named port (ingress): serve-81-tcp on 81",
        [to_a("p", "[]", "[{port: serve-81-tcp}]")],
        YA,
        XA,
        81,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
        allowed_by=("x/p ingress[0]",),
    ),
    c(
        "e2e one named port (ingress): 80 denied",
        [to_a("p", "[]", "[{port: serve-81-tcp}]")],
        YA,
        XA,
        80,
        D,
        egress=not_selected("y/a", "egress"),
        # the denial says what the names the rules use are on the pod
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/a (its named ports: serve-81-tcp is TCP/81)"),
    ),
    c(
        "pa ingress to named port: protocol must match the rule",
        [to_a("p", "[]", "[{port: serve-81-udp}]")],
        YA,
        XA,
        81,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "UDP/81 from pod y/a (its named ports: serve-81-udp is UDP/81)"),
        protocol="UDP",
    ),
    c(
        "named UDP port with protocol UDP",
        [to_a("p", "[]", "[{port: serve-81-udp, protocol: UDP}]")],
        YA,
        XA,
        81,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
        protocol="UDP",
    ),
    c(
        "named port resolved per destination pod",
        [to_a("p", "[]", "[{port: http}]")],
        YA,
        pod("x/a", named_ports={"http": (8080, "TCP")}),
        8080,
        A,
        egress=not_selected("y/a", "egress"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "named port not declared by the destination",
        [to_a("p", "[]", "[{port: http}]")],
        YA,
        XA,
        8080,
        D,
        egress=not_selected("y/a", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/8080 from pod y/a (its named ports: http is not declared)"),
    ),
    c(
        "named port with unknown container ports",
        [to_a("p", "[]", "[{port: serve-81-tcp}]")],
        YA,
        pod("x/a", named_ports=None),
        81,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: named port 'serve-81-tcp': container ports of pod x/a unknown",
    ),
    c(
        "named port the workloads that describe the pod disagree on",
        [to_a("p", "[]", "[{port: http}]")],
        YA,
        pod("x/a", named_ports={"metrics": (9090, "TCP")}, unresolved_ports={"http": "they disagree"}),
        8080,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: named port 'http' of pod x/a unresolved: they disagree",
    ),
    c(
        "named port (egress): a denial names the destination's ports",
        [from_a("p", NS_Y, "[{port: serve-80-udp, protocol: UDP}]")],
        XA,
        YB,
        81,
        D,
        egress=denied(
            "x/a", "egress", "x/p", "UDP/81 to pod y/b (named ports of pod y/b: serve-80-udp is UDP/80)"
        ),
        ingress=not_selected("y/b", "ingress"),
        protocol="UDP",
    ),
    c(
        "e2e one named port (egress): resolved on the destination pod",
        [from_a("p", NS_Y, "[{port: serve-80-udp, protocol: UDP}]")],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_selected("y/b", "ingress"),
        protocol="UDP",
        allowed_by=("x/p egress[0]",),
    ),
    c(
        "named port never matches an external address",
        [from_a("p", "[{ipBlock: {cidr: 0.0.0.0/0}}]", "[{port: serve-80-tcp}]")],
        XA,
        world("1.1.1.1"),
        80,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/80 to world 1.1.1.1"),
        ingress=not_a_pod("world 1.1.1.1"),
    ),
    # --- ipBlock -------------------------------------------------------------------------------------
    c(
        "pa egress to IPs: inside cidr",
        [from_a("p", "[{ipBlock: {cidr: 192.168.0.0/16}}]")],
        XA,
        world("192.168.1.5"),
        443,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_a_pod("world 192.168.1.5"),
        allowed_by=("x/p egress[0]",),
    ),
    c(
        "pa egress to IPs: outside cidr",
        [from_a("p", "[{ipBlock: {cidr: 192.168.0.0/16}}]")],
        XA,
        world("10.9.9.9"),
        443,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/443 to world 10.9.9.9"),
        ingress=not_a_pod("world 10.9.9.9"),
    ),
    c(
        "e2e except clause (egress) blocks the hole",
        [from_a("p", "[{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]")],
        XA,
        world("192.168.1.5"),
        443,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/443 to world 192.168.1.5"),
        ingress=not_a_pod("world 192.168.1.5"),
    ),
    c(
        "e2e IP in both cidr and except is allowed by another policy",
        [
            from_a("p1", "[{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.2/32]}}]"),
            from_a("p2", "[{ipBlock: {cidr: 10.0.2.2/32}}]"),
        ],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p2 egress[0]"),
        ingress=not_selected("y/b", "ingress"),
        allowed_by=("x/p2 egress[0]",),
    ),
    c(
        "except only removes from its own peer",
        [from_a("p", "[{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}, {ipBlock: {cidr: 10.0.2.0/24}}]")],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_selected("y/b", "ingress"),
    ),
    c(
        "e2e egress to a server in a CIDR block (pod IP)",
        [from_a("p", "[{ipBlock: {cidr: 10.0.2.2/32}}]")],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_selected("y/b", "ingress"),
    ),
    c(
        "ipBlock of another pod does not match",
        [from_a("p", "[{ipBlock: {cidr: 10.0.2.2/32}}]")],
        XA,
        YC,
        80,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/80 to pod y/c"),
        ingress=not_selected("y/c", "ingress"),
    ),
    c(
        "IPv4 0.0.0.0/0 does not match IPv6",
        [from_a("p", "[{ipBlock: {cidr: 0.0.0.0/0}}]")],
        XA,
        world("2001:db8::1"),
        443,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/443 to world 2001:db8::1"),
        ingress=not_a_pod("world 2001:db8::1"),
    ),
    c(
        "IPv6 ::/0 matches IPv6",
        [from_a("p", "[{ipBlock: {cidr: '::/0'}}]")],
        XA,
        world("2001:db8::1"),
        443,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_a_pod("world 2001:db8::1"),
    ),
    c(
        "IPv6 except",
        [from_a("p", "[{ipBlock: {cidr: '2001:db8::/32', except: ['2001:db8:1::/48']}}]")],
        XA,
        world("2001:db8:1::7"),
        443,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/443 to world 2001:db8:1::7"),
        ingress=not_a_pod("world 2001:db8:1::7"),
    ),
    c(
        "ingress from world by ipBlock",
        [to_a("p", "[{ipBlock: {cidr: 1.2.3.0/24}}]", "[{port: 80}]")],
        world("1.2.3.4"),
        XA,
        80,
        A,
        egress=not_a_pod("world 1.2.3.4"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "ipBlock with unknown address",
        [from_a("p", "[{ipBlock: {cidr: 1.2.3.0/24}}]")],
        XA,
        world(None),
        80,
        U,
        egress="unknown: IP of world unknown",
        ingress=not_a_pod("world"),
    ),
    # --- nodes, non-pod ends, both directions ----------------------------------------------------------
    c(
        "ingress from the pod's own node is always allowed",
        [DENY_ALL],
        HOST,
        XA,
        10250,
        A,
        egress=not_a_pod("host 172.18.0.2"),
        ingress="allowed: from the pod's own node, which is always allowed",
        isolated_by=("x/deny-all",),
    ),
    c(
        "ingress from another node is not special",
        [DENY_ALL],
        REMOTE_NODE,
        XA,
        80,
        D,
        egress=not_a_pod("remote-node 172.18.0.3"),
        ingress=denied("x/a", "ingress", "x/deny-all", "TCP/80 from remote-node 172.18.0.3"),
    ),
    c(
        "another node allowed by ipBlock",
        [to_a("p", "[{ipBlock: {cidr: 172.18.0.0/24}}]")],
        REMOTE_NODE,
        XA,
        80,
        A,
        egress=not_a_pod("remote-node 172.18.0.3"),
        ingress=rules("x/p ingress[0]"),
    ),
    c(
        "egress to the own node follows the rules (implementation-defined)",
        [DENY_OUT],
        XA,
        HOST,
        80,
        D,
        egress=denied("x/a", "egress", "x/deny-out", "TCP/80 to host 172.18.0.2"),
        ingress=not_a_pod("host 172.18.0.2"),
    ),
    c(
        "selectors never match nodes",
        [from_a("p", "[{namespaceSelector: {}}]")],
        XA,
        REMOTE_NODE,
        80,
        D,
        egress=denied("x/a", "egress", "x/p", "TCP/80 to remote-node 172.18.0.3"),
        ingress=not_a_pod("remote-node 172.18.0.3"),
    ),
    c(
        "world source is not isolated for egress",
        [],
        world("8.8.8.8"),
        XA,
        80,
        A,
        egress=not_a_pod("world 8.8.8.8"),
        ingress=not_selected("x/a", "ingress"),
    ),
    c(
        "e2e egress denied at client even if the server allows",
        [pol("out", "{podSelector: {}, policyTypes: [Egress]}"), ALLOW_ALL_IN],
        XB,
        XA,
        80,
        D,
        egress=denied("x/b", "egress", "x/out", "TCP/80 to pod x/a"),
        ingress=rules("x/allow-all-in ingress[0]"),
    ),
    c(
        "e2e egress to a server in a different namespace",
        [from_a("p", "[{namespaceSelector: {matchLabels: {ns: y}}}]", "[{port: 80}]")],
        XA,
        YB,
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_selected("y/b", "ingress"),
    ),
    c(
        "e2e ingress and egress in one policy: both rules used",
        [pol("both", f"{{podSelector: {{}}, ingress: [{{from: {POD_B}}}], egress: [{{to: {POD_B}}}]}}")],
        XB,
        pod("x/c", labels={"pod": "b"}),
        80,
        A,
        egress=rules("x/both egress[0]"),
        ingress=rules("x/both ingress[0]"),
        allowed_by=("x/both egress[0]", "x/both ingress[0]"),
    ),
    c(
        "e2e ingress and egress in one policy: a to b",
        [pol("both", f"{{podSelector: {{}}, ingress: [{{from: {POD_B}}}], egress: [{{to: {POD_B}}}]}}")],
        XA,
        XB,
        80,
        D,
        egress=rules("x/both egress[0]"),
        ingress=denied("x/b", "ingress", "x/both", "TCP/80 from pod x/a"),
    ),
    c(
        "e2e ingress and egress in one policy: b to a",
        [pol("both", f"{{podSelector: {{}}, ingress: [{{from: {POD_B}}}], egress: [{{to: {POD_B}}}]}}")],
        XB,
        XA,
        80,
        D,
        egress=denied("x/b", "egress", "x/both", "TCP/80 to pod x/a"),
        ingress=rules("x/both ingress[0]"),
    ),
    c(
        "both directions allowed lists both rules",
        [
            pol("out", f"{{podSelector: {{}}, policyTypes: [Egress], egress: [{{to: {POD_B}}}]}}"),
            ALLOW_ALL_IN,
        ],
        XA,
        XB,
        80,
        A,
        egress=rules("x/out egress[0]"),
        ingress=rules("x/allow-all-in ingress[0]"),
        allowed_by=("x/allow-all-in ingress[0]", "x/out egress[0]"),
    ),
    # --- unknown facts ---------------------------------------------------------------------------------
    c(
        "unknown dst labels, isolated via {} and no rule could allow",
        [DENY_IN, to_a("p", NS_Y)],
        ZA,
        pod("x/a", labels=None),
        80,
        D,
        egress=not_selected("z/a", "egress"),
        ingress=denied("x/a", "ingress", "x/deny-in", "TCP/80 from pod z/a"),
        isolated_by=("x/deny-in",),
    ),
    c(
        "unknown dst labels, a rule of a maybe-selecting policy would allow",
        [DENY_IN, to_a("p", NS_Y)],
        YA,
        pod("x/a", labels=None),
        80,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: labels of pod x/a unknown",
    ),
    c(
        "unknown dst labels, selector needs them",
        [to_a("p", "[{podSelector: {}}]", "[{port: 9}]")],
        ZA,
        pod("x/a", labels=None),
        80,
        U,
        egress=not_selected("z/a", "egress"),
        ingress="unknown: labels of pod x/a unknown",
    ),
    c(
        "unknown src labels, rule needs them",
        [to_a("p", POD_B)],
        pod("x/b", labels=None),
        XA,
        80,
        U,
        egress=not_selected("x/b", "egress"),
        ingress="unknown: labels of pod x/b unknown",
    ),
    c(
        "unknown src labels, namespace decides",
        [to_a("p", "[{namespaceSelector: {matchLabels: {ns: z}}, podSelector: {matchLabels: {pod: b}}}]")],
        pod("y/b", labels=None),
        XA,
        80,
        D,
        egress=not_selected("y/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/80 from pod y/b"),
    ),
    c(
        "unknown dst kind with a pod rule",
        [from_a("p", POD_B)],
        XA,
        Endpoint(kind="unknown", ip="9.9.9.9"),
        80,
        U,
        egress="unknown: whether the unknown end is a pod is unknown",
        ingress=not_a_pod("unknown 9.9.9.9"),
    ),
    c(
        "unknown dst kind, ipBlock decides",
        [from_a("p", "[{ipBlock: {cidr: 9.9.9.0/24}}]")],
        XA,
        Endpoint(kind="unknown", ip="9.9.9.9"),
        80,
        A,
        egress=rules("x/p egress[0]"),
        ingress=not_a_pod("unknown 9.9.9.9"),
    ),
    c(
        "pod without namespace under policies",
        [DENY_IN],
        YA,
        pod("x/a", namespace=None),
        80,
        U,
        egress=not_selected("y/a", "egress"),
        ingress="unknown: namespace of pod ?/a unknown",
    ),
    c(
        "a pod talking to itself",
        [DENY_ALL],
        XA,
        XA,
        80,
        A,
        egress="allowed: a pod cannot block traffic to itself",
        ingress="allowed: a pod cannot block traffic to itself",
    ),
    c(
        "e2e deny ingress from pods in other namespaces",
        [to_a("p", "[{podSelector: {}}]")],
        ZB,
        XA,
        81,
        D,
        egress=not_selected("z/b", "egress"),
        ingress=denied("x/a", "ingress", "x/p", "TCP/81 from pod z/b"),
    ),
]


def _ids(case: Case) -> str:
    return case.name


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_engine(case: Case) -> None:
    engine = Engine(policy_set(*case.policies))
    decision = engine.evaluate(Traffic(case.src, case.dst, case.protocol, case.port))
    assert decision.verdict == case.verdict, decision.reason
    assert (decision.egress.reason, decision.ingress.reason) == (case.egress, case.ingress)
    if case.allowed_by:
        assert tuple(sorted(decision.egress.allowed_by + decision.ingress.allowed_by)) == case.allowed_by
    if case.isolated_by is not None:
        assert tuple(sorted(set(decision.egress.isolated_by + decision.ingress.isolated_by))) == case.isolated_by


def test_case_count() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


def test_decision_reason_reads_well() -> None:
    decision = Engine(policy_set(DENY_IN)).evaluate(Traffic(YA, XA, "TCP", 80))
    assert isinstance(decision, Decision)
    assert decision.reason == (
        "denied: egress allowed: pod y/a is not selected by any egress policy, not isolated; "
        "ingress denied: pod x/a is isolated for ingress by x/deny-in and no rule allows TCP/80 from pod y/a"
    )


def test_evaluate_is_cached_and_stable() -> None:
    engine = Engine(policy_set(DENY_IN, to_a("p", NS_Y)))
    first = engine.evaluate(Traffic(YA, XA, "TCP", 80))
    again = engine.evaluate(Traffic(pod("y/a"), pod("x/a"), "tcp", 80))
    assert first is again
    assert first.verdict is A


def test_many_distinct_connections_are_fast() -> None:
    engine = Engine(policy_set(DENY_ALL, to_a("p", NS_Y, "[{port: 80, endPort: 90}]")))
    for port in range(1, 5001):
        engine.evaluate(Traffic(YA, XA, "TCP", port))
    assert engine.evaluate(Traffic(YA, XA, "TCP", 85)).verdict is A


def test_explain_table() -> None:
    policies = policy_set(
        DENY_ALL,
        to_a(
            "p",
            f"[{NS_Y[1:-1]}, {{ipBlock: {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}}}]",
            "[{port: 80}, {protocol: UDP}, {port: 3000, endPort: 3100}]",
        ),
    )
    assert explain(policies) == (
        "x/deny-all: pods {} in namespace x\n"
        "  ingress: deny all\n"
        "  egress: deny all\n"
        "x/p: pods {pod=a} in namespace x\n"
        "  ingress[0]  from: all pods in namespaces {ns=y} | ip 10.0.0.0/8 except 10.1.0.0/16"
        "  ports: TCP/3000-3100, TCP/80, UDP/*\n"
    )
