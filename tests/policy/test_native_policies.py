"""CiliumNetworkPolicy and Calico v3 policies: validation (the CRD's structure and the agent's rules, each bad
object with its exact message), their L3/L4 meaning in the engine (with reasons), and Calico selectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flowbuilder import Peer as FlowPeer
from flowbuilder import Pod as FlowPod
from flowbuilder import batches, write
from flowbuilder import flow as build_flow

from synth.base.config import Settings
from synth.base.errors import PolicyError
from synth.core.model import FQDN, HTTPRule, LabelSelector, NetworkPolicy, PolicySet, Requirement
from synth.policy.calico import parse_selector, policy_from_calico
from synth.policy.cilium import policies_from_cnp
from synth.policy.evaluate import Endpoint, Engine, Traffic, Verdict
from synth.policy.fields import Where
from synth.policy.manifest import policy_from_object
from synth.policy.observed import observe_batches
from synth.policy.verify import verify


def cnp(spec: str, name: str = "p") -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": name, "namespace": "x"}, "spec": yaml.safe_load(spec)}


def calico(spec: str, kind: str = "NetworkPolicy", name: str = "p") -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": kind,
            "metadata": {"name": name, "namespace": "x"}, "spec": yaml.safe_load(spec)}


BAD_CNPS = [
    ("{endpointSelector: {}, egress: [{toEndpoints: [{}], toCIDR: [1.2.3.4/32]}]}",
     "f.yaml (x/p): spec.egress[0]: toEndpoints and toCIDR in one rule: the agent accepts one peer kind per rule; "
     "write one rule each"),
    ("{endpointSelector: {}, egress: [{toFQDNs: [{matchName: a.io}], toEntities: [world]}]}",
     "f.yaml (x/p): spec.egress[0]: toEntities and toFQDNs in one rule: the agent accepts one peer kind per rule; "
     "write one rule each"),
    ("{endpointSelector: {}, egress: [{icmps: [{fields: [{type: 8}]}], toPorts: [{ports: [{port: '80'}]}]}]}",
     "f.yaml (x/p): spec.egress[0]: icmps and toPorts in one rule: the agent rejects it; write one rule each"),
    ("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchPattern: '*'}]}}]}]}",
     "f.yaml (x/p): spec.ingress[0].toPorts[0].rules.dns: DNS rules are egress only"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '0'}], rules: {dns: [{matchPattern: '*'}]}}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].rules.dns: L7 rules need an explicit, non-zero port and no port range"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '80', protocol: UDP}], rules: {http: [{}]}}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].rules.http: http rules need protocol TCP"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '80'}], rules: {http: [{}], dns: [{}]}}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].rules: exactly one of http, kafka, dns, l7proto"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: 80}]}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].ports[0].port: required, as a string (quote the number)"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '70000'}]}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].ports[0].port: '70000' is neither a port number (0-65535) nor a "
     "port name"),
    ("{endpointSelector: {}, egress: [{toPorts: [{ports: [{port: '80', protocol: ICMP}]}]}]}",
     "f.yaml (x/p): spec.egress[0].toPorts[0].ports[0].protocol: unknown protocol 'ICMP' (use TCP, UDP, SCTP, ANY, "
     "VRRP, IGMP)"),
    ("{endpointSelector: {}, egress: [{toEntities: [world-ipv4]}]}",
     "f.yaml (x/p): spec.egress[0].toEntities[0]: unknown entity 'world-ipv4' (the CRD accepts all, world, cluster, "
     "host, init, ingress, unmanaged, remote-node, health, none, kube-apiserver)"),
    ("{endpointSelector: {}, egress: [{toFQDNs: [{matchName: a.io, matchPattern: '*.a.io'}]}]}",
     "f.yaml (x/p): spec.egress[0].toFQDNs[0]: exactly one of matchName and matchPattern"),
    ("{endpointSelector: {}, egress: [{toFQDNs: [{matchName: 'a b.io'}]}]}",
     "f.yaml (x/p): spec.egress[0].toFQDNs[0].matchName: 'a b.io' is not a DNS name (letters, digits, -, _ and .)"),
    ("{endpointSelector: {}, ingress: [{fromFQDNs: [{matchName: a.io}]}]}",
     "f.yaml (x/p): spec.ingress[0].fromFQDNs: unknown field (expected fromEndpoints, fromCIDR, fromCIDRSet, "
     "fromEntities, fromServices, fromGroups, fromNodes, fromRequires, toPorts, icmps, authentication)"),
    ("{endpointSelector: {}, egress: [{toRequires: [{}]}]}",
     "f.yaml (x/p): spec.egress[0].toRequires: deprecated and rejected by the CRD (MaxItems=0)"),
    ("{nodeSelector: {}, egress: [{}]}",
     "f.yaml (x/p): spec.nodeSelector: only a CiliumClusterwideNetworkPolicy selects nodes; use endpointSelector"),
    ("{egress: [{}]}",
     "f.yaml (x/p): spec.endpointSelector: required (exactly one of endpointSelector and nodeSelector)"),
    ("{endpointSelector: {}}",
     "f.yaml (x/p): spec: needs at least one non-empty ingress, ingressDeny, egress or egressDeny"),
    ("{endpointSelector: {}, egressDeny: [{toEntities: [world]}]}",
     "f.yaml (x/p): spec.egressDeny: deny rules are not supported: synth evaluates allow rules"),
    ("{endpointSelector: {}, egress: [{}], enableDefaultDeny: {egress: false}}",
     "f.yaml (x/p): spec.enableDefaultDeny.egress: false (a policy that only adds to others) is not supported"),
    ("{endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {'reserved:host': ''}}]}]}",
     "f.yaml (x/p): spec.ingress[0].fromEndpoints[0].matchLabels: 'reserved:host': labels of source 'reserved' are "
     "not supported (use fromEntities/toEntities)"),
    ("{endpointSelector: {}, egress: [{toCIDRSet: [{cidrGroupRef: office}]}]}",
     "f.yaml (x/p): spec.egress[0].toCIDRSet[0]: CIDR groups are not supported: write cidr"),
    ("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], "
     "rules: {http: [{method: 1}]}}]}]}",
     "f.yaml (x/p): spec.ingress[0].toPorts[0].rules.http[0].method: must be a string (a regular expression), got 1"),
    ("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], "
     "rules: {http: [{path: '/a('}]}}]}]}",
     "f.yaml (x/p): spec.ingress[0].toPorts[0].rules.http[0].path: '/a(' is not a regular expression: missing ), "
     "unterminated subpattern at position 2"),
    ("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], "
     "rules: {http: [{verb: GET}]}}]}]}",
     "f.yaml (x/p): spec.ingress[0].toPorts[0].rules.http[0].verb: unknown field (expected method, path, host, "
     "headers, headerMatches)"),
]


def test_http_rules_are_kept_apart_from_the_plain_ports_of_a_rule() -> None:
    """One CNP rule with a plain entry and an HTTP entry is two model rules; `http: [{}]` allows every request."""
    spec = """{endpointSelector: {}, ingress: [{fromEndpoints: [{matchLabels: {app: a}}], toPorts: [
      {ports: [{port: '5432', protocol: TCP}]},
      {ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET, path: /x}, {method: GET, path: /x}]}},
      {ports: [{port: '81', protocol: TCP}], rules: {http: [{}]}}]}]}"""
    [policy] = policies_from_cnp(cnp(spec), "f.yaml")
    assert [([p.port for p in rule.ports], rule.http) for rule in policy.ingress] == [
        ([5432], ()), ([80], (HTTPRule("GET", "/x"),)), ([81], (HTTPRule(),)),
    ]


@pytest.mark.parametrize(("spec", "message"), BAD_CNPS)
def test_bad_cilium_policies_are_refused_by_name(spec: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policies_from_cnp(cnp(spec), "f.yaml")
    assert str(raised.value) == message


BAD_CALICO = [
    ("{ingress: [{action: Deny}]}",
     "f.yaml (x/p): spec.ingress[0].action: Deny is not supported: synth evaluates Allow rules (Log rules are "
     "skipped)"),
    ("{egress: [{action: Allow, protocol: ICMP, destination: {ports: [80]}}]}",
     "f.yaml (x/p): spec.egress[0].destination.ports: ports need protocol TCP, UDP or SCTP, got 'ICMP'"),
    ("{egress: [{action: Allow, destination: {nets: [10.0.0.0/8, 'fd00::/8']}}]}",
     "f.yaml (x/p): spec.egress[0].destination.nets: IPv4 and IPv6 networks in one rule: Calico rejects it; write "
     "one rule each"),
    ("{ingress: [{action: Allow, source: {domains: [a.io]}}]}",
     "f.yaml (x/p): spec.ingress[0].source.domains: only in egress Allow rules without nets and selector"),
    ("{egress: [{action: Allow, destination: {domains: ['*.*.a.io']}}]}",
     "f.yaml (x/p): spec.egress[0].destination.domains[0]: '*.*.a.io' is not a domain name (one leading `*.` at "
     "most)"),
    ("{selector: \"app == 'a' || app == 'b'\", types: [Ingress]}",
     "f.yaml (x/p): spec.selector: \"app == 'a' || app == 'b'\": '||' is not supported (synth reads selectors that "
     "are conjunctions (&&) of ==, !=, in, not in, has(), !has() and all())"),
    ("{types: [Ingress, Sideways]}",
     "f.yaml (x/p): spec.types[1]: unknown type 'Sideways' (use Ingress or Egress)"),
    ("{ingress: [{action: Allow, source: {serviceAccounts: {names: [a]}}}]}",
     "f.yaml (x/p): spec.ingress[0].source.serviceAccounts: not supported: synth evaluates selectors, nets and "
     "domains"),
    ("{stagedAction: Set}",
     "f.yaml (x/p): spec.stagedAction: unknown field (expected tier, order, selector, types, ingress, egress, "
     "serviceAccountSelector, performanceHints)"),
    ("{egress: [{action: Allow, destination: {ports: ['80:70000']}, protocol: TCP}]}",
     "f.yaml (x/p): spec.egress[0].destination.ports[0]: '80:70000' is not a port or range within 1-65535"),
    ("{tier: Security}",
     "f.yaml (x/p): spec.tier: 'Security' is not a tier name: lower-case letters, digits and '-', starting and "
     "ending with a letter or digit, at most 63 characters"),
    ("{tier: team.a}",
     "f.yaml (x/p): spec.tier: 'team.a' is not a tier name: lower-case letters, digits and '-', starting and "
     "ending with a letter or digit, at most 63 characters"),
    (f"{{tier: {'a' * 64}}}",
     f"f.yaml (x/p): spec.tier: '{'a' * 64}' is not a tier name: lower-case letters, digits and '-', starting and "
     "ending with a letter or digit, at most 63 characters"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_CALICO)
def test_bad_calico_policies_are_refused_by_name(spec: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_from_calico(calico(spec), "f.yaml")
    assert str(raised.value) == message


SELECTORS = [
    ("all()", LabelSelector()),
    ("app == 'web'", LabelSelector.of({"app": "web"})),
    ("app == \"web\" && tier != 'db'", LabelSelector((("app", "web"),), (Requirement("tier", "NotIn", ("db",)),))),
    ("has(app) && !has(canary)",
     LabelSelector((), (Requirement("app", "Exists"), Requirement("canary", "DoesNotExist")))),
    ("env in {'a', 'b'} && env not in {'c'}",
     LabelSelector((), (Requirement("env", "In", ("a", "b")), Requirement("env", "NotIn", ("c",))))),
]


@pytest.mark.parametrize(("text", "expected"), SELECTORS)
def test_calico_selectors(text: str, expected: LabelSelector) -> None:
    assert parse_selector(text, "selector", Where("f", "x/p")) == expected


def test_calico_namespace_name_is_the_namespace_label() -> None:
    parsed = parse_selector("projectcalico.org/name == 'shop'", "s", Where("f", "x/p"), namespaces=True)
    assert parsed == LabelSelector.of({"kubernetes.io/metadata.name": "shop"})


# --- meaning in the engine ----------------------------------------------------------------------------


def web(ns: str = "x", **labels: str) -> Endpoint:
    return Endpoint("pod", namespace=ns, labels=labels or {"app": "web"}, ip="10.0.0.5", name=f"{ns}-pod")


def world(ip: str, *names: str) -> Endpoint:
    return Endpoint("world", ip=ip, names=names)


CNP = cnp("""
endpointSelector: {matchLabels: {app: web}}
egress:
- toFQDNs: [{matchName: api.example.com}, {matchPattern: '*.cdn.example.com'}]
  toPorts: [{ports: [{port: '443', protocol: TCP}]}]
- toEntities: [kube-apiserver]
  toPorts: [{ports: [{port: '6443', protocol: TCP}]}]
- toCIDR: [10.0.0.0/8]
  toPorts: [{ports: [{port: '9000', protocol: ANY}]}]
- toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]
  toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]
- toEndpoints: [{matchLabels: {app: db}}]
""")


@pytest.mark.parametrize(("dst", "protocol", "port", "verdict", "reason"), [
    (world("203.0.113.1", "API.example.com."), "TCP", 443, Verdict.ALLOWED, "allowed by x/p egress[0]"),
    (world("203.0.113.2", "a.cdn.example.com"), "TCP", 443, Verdict.ALLOWED, "allowed by x/p egress[0]"),
    (world("203.0.113.3", "a.b.cdn.example.com"), "TCP", 443, Verdict.DENIED, "no rule allows TCP/443"),
    (world("203.0.113.4"), "TCP", 443, Verdict.DENIED, "no rule allows TCP/443 to world 203.0.113.4"),
    (world("203.0.113.1", "api.example.com"), "TCP", 80, Verdict.DENIED, "no rule allows TCP/80"),
    (Endpoint("kube-apiserver", ip="10.96.0.1"), "TCP", 6443, Verdict.ALLOWED, "allowed by x/p egress[1]"),
    (Endpoint("host", ip="10.1.0.1"), "TCP", 9000, Verdict.DENIED, "no rule allows TCP/9000 to host 10.1.0.1"),
    (world("10.2.0.1"), "UDP", 9000, Verdict.ALLOWED, "allowed by x/p egress[2]"),
    (Endpoint("pod", namespace="x", labels={"app": "db"}, ip="10.0.0.9"), "TCP", 9000, Verdict.ALLOWED,
     "allowed by x/p egress[4]"),
    (Endpoint("pod", namespace="y", labels={"app": "other"}, ip="10.0.0.10"), "TCP", 9000, Verdict.DENIED,
     "no rule allows TCP/9000 to pod y/{app=other}"),
    (Endpoint("pod", namespace="kube-system", labels={"k8s-app": "kube-dns"}, ip="10.0.0.11"), "UDP", 53,
     Verdict.ALLOWED, "allowed by x/p egress[3]"),
    (Endpoint("pod", namespace="y", labels={"app": "db"}, ip="10.0.0.12"), "TCP", 5432, Verdict.DENIED,
     "no rule allows TCP/5432 to pod y/{app=db}"),
])
def test_cilium_peers_in_the_engine(dst: Endpoint, protocol: str, port: int, verdict: Verdict, reason: str) -> None:
    """Names through the names seen for the address (one label for `*`), entities by kind, CIDRs never
    matching ends with an identity (the pod at 10.0.0.10 is not in toCIDR 10.0.0.0/8), peers without a
    namespace key in the policy's namespace, ANY for every protocol."""
    engine = Engine(PolicySet.of(policies_from_cnp(CNP, "f.yaml")))
    decision = engine.evaluate(Traffic(web(), dst, protocol, port))
    assert decision.verdict == verdict
    assert reason in decision.egress.reason


def test_cilium_default_deny_and_namespace_keys() -> None:
    deny, peer = policies_from_cnp(cnp("{endpointSelector: {}, ingress: [{}], egress: [{}]}"), "f"), policies_from_cnp(
        cnp("""
endpointSelector: {}
ingress:
- fromEndpoints: [{matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: Exists}]}]
  toPorts: [{ports: [{port: '80', protocol: TCP}]}]
"""), "f")
    assert (deny[0].policy_types, deny[0].ingress, deny[0].egress) == (("Ingress", "Egress"), (), ())
    assert peer[0].ingress[0].peers[0].namespace_selector == LabelSelector()
    engine = Engine(PolicySet.of([*deny, *peer]))
    anywhere = Endpoint("pod", namespace="z", labels={"a": "b"}, ip="10.0.9.9")
    assert engine.evaluate(Traffic(anywhere, web(), "TCP", 80)).ingress.verdict == Verdict.ALLOWED
    assert engine.evaluate(Traffic(anywhere, web(), "TCP", 81)).ingress.verdict == Verdict.DENIED


def test_policies_of_different_kinds_sharing_a_name_are_told_apart() -> None:
    """A NetworkPolicy and a CiliumNetworkPolicy both named `web` both isolate the pod: reasons name each with
    its API."""
    netpol = policy_from_object({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                 "metadata": {"name": "web", "namespace": "x"},
                                 "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}, "np.yaml#1")  # fmt: skip
    cilium = policies_from_cnp(cnp("""
endpointSelector: {matchLabels: {app: web}}
ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
""", name="web"), "cnp.yaml#1")
    engine = Engine(PolicySet.of([netpol, *cilium]))
    client = Endpoint("pod", namespace="x", labels={"app": "client"}, ip="10.0.0.6", name="client")
    ingress = engine.evaluate(Traffic(client, web(), "TCP", 80)).ingress
    assert (ingress.verdict, ingress.isolated_by, ingress.allowed_by) == (
        Verdict.ALLOWED, ("x/web(cilium)", "x/web(kubernetes)"), ("x/web(cilium) ingress[0]",)
    )
    alone = Engine(PolicySet.of(cilium)).evaluate(Traffic(client, web(), "TCP", 80)).ingress
    assert (alone.isolated_by, alone.allowed_by) == (("x/web",), ("x/web ingress[0]",))


def client_to_web(*policies: NetworkPolicy) -> list[tuple[int, Verdict, tuple[str, ...], tuple[str, ...]]]:
    """(port, verdict, isolated by, allowed by) of ingress from x/{app=client} to web on TCP 80 and 443."""
    engine = Engine(PolicySet.of(list(policies)))
    client = Endpoint("pod", namespace="x", labels={"app": "client"}, ip="10.0.0.6", name="client")
    out = []
    for port in (80, 443):
        ingress = engine.evaluate(Traffic(client, web(), "TCP", port)).ingress
        out.append((port, ingress.verdict, ingress.isolated_by, ingress.allowed_by))
    return out


def calico_ingress(port: int, kind: str = "NetworkPolicy", staged_action: str = "Set") -> NetworkPolicy:
    """x/web, a Calico policy of `kind` that admits x/{app=client} on TCP `port`."""
    action = f"stagedAction: {staged_action}, " if kind == "StagedNetworkPolicy" else ""
    spec = (f"{{{action}selector: app == 'web', types: [Ingress], ingress: [{{action: Allow, protocol: TCP, "
            f"source: {{selector: app == 'client'}}, destination: {{ports: [{port}]}}}}]}}")
    return policy_from_calico(calico(spec, kind=kind, name="web"), f"{kind}.yaml")


def test_a_staged_policy_stands_in_for_the_calico_policy_of_its_name() -> None:
    """What Calico shows as pending: the staged policy decides, the enforced one of its name does not."""
    enforced, staged = calico_ingress(80), calico_ingress(443, "StagedNetworkPolicy")
    assert client_to_web(enforced) == [
        (80, Verdict.ALLOWED, ("x/web",), ("x/web ingress[0]",)),
        (443, Verdict.DENIED, ("x/web",), ()),
    ]
    assert client_to_web(enforced, staged) == [
        (80, Verdict.DENIED, ("x/web(calico-staged)",), ()),
        (443, Verdict.ALLOWED, ("x/web(calico-staged)",), ("x/web(calico-staged) ingress[0]",)),
    ]
    removal = calico_ingress(443, "StagedNetworkPolicy", "Delete")
    assert client_to_web(enforced, removal) == [(80, Verdict.ALLOWED, (), ()), (443, Verdict.ALLOWED, (), ())]
    assert PolicySet.of([enforced, staged]).staged_over() == ((staged, enforced),)


def test_a_staged_policy_replaces_no_policy_of_another_api() -> None:
    netpol = policy_from_object({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                 "metadata": {"name": "web", "namespace": "x"},
                                 "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}, "np.yaml#1")  # fmt: skip
    staged = calico_ingress(443, "StagedNetworkPolicy")
    assert PolicySet.of([netpol, staged]).staged_over() == ()
    assert client_to_web(netpol, staged)[1] == (
        443, Verdict.ALLOWED, ("x/web(calico-staged)", "x/web(kubernetes)"), ("x/web(calico-staged) ingress[0]",)
    )


def test_calico_domains_nets_and_staged() -> None:
    policy = policy_from_calico(calico("""
selector: app == 'web'
types: [Egress]
egress:
- {action: Log}
- {action: Allow, protocol: TCP, destination: {domains: ['*.example.com'], ports: [443]}}
- {action: Allow, protocol: UDP, destination: {nets: [192.0.2.0/24], notNets: [192.0.2.128/25], ports: ['100:200']}}
""", kind="StagedNetworkPolicy"), "f.yaml")
    assert (policy.api, policy.staged, policy.tier) == ("calico", True, "default")
    assert policy.egress[0].peers[0].fqdn == FQDN("*.example.com", pattern=True)
    engine = Engine(PolicySet.of([policy]))
    cases = [
        (world("203.0.113.1", "a.b.example.com"), "TCP", 443, Verdict.ALLOWED),  # Calico: `*` is one or more labels
        (world("203.0.113.1", "example.com"), "TCP", 443, Verdict.DENIED),
        (world("192.0.2.7"), "UDP", 150, Verdict.ALLOWED),
        (world("192.0.2.200"), "UDP", 150, Verdict.DENIED),
        (world("192.0.2.7"), "UDP", 250, Verdict.DENIED),
    ]
    for dst, protocol, port, verdict in cases:
        assert engine.evaluate(Traffic(web(), dst, protocol, port)).verdict == verdict, (dst, port)


@pytest.mark.parametrize("kind", ["NetworkPolicy", "StagedNetworkPolicy"])
def test_calico_tier_order_and_name_are_read_as_written(kind: str) -> None:
    policy = policy_from_calico(calico("{tier: security, order: 50}", kind=kind, name="security.web"), "f")
    assert (policy.name, policy.tier, policy.order) == ("security.web", "security", 50.0)
    plain = policy_from_calico(calico("{order: 12.5}", kind=kind, name="web"), "f")
    assert (plain.name, plain.tier, plain.order) == ("web", "default", 12.5)
    assert policy_from_calico(calico(f"{{tier: {'a' * 63}}}", kind=kind), "f").tier == "a" * 63


def test_calico_delete_stages_a_removal() -> None:
    policy = policy_from_calico(calico("{stagedAction: Delete, tier: default}", kind="StagedNetworkPolicy"), "f")
    assert policy.policy_types == ()


# --- the second half of verify with DNS-name rules ------------------------------------------------


A = FlowPod("x", "a-1", {"app": "a"}, "10.0.1.1")
B = FlowPod("x", "b-1", {"app": "b"}, "10.0.1.2")
CDN1, CDN2, OTHER = (FlowPeer("world", ip) for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"))


def egress_by_name(app: str, match: str, text: str) -> dict[str, Any]:
    spec = f"""
endpointSelector: {{matchLabels: {{app: {app}}}}}
egress:
- toFQDNs: [{{{match}: '{text}'}}]
  toPorts: [{{ports: [{{port: '443', protocol: TCP}}]}}]
"""
    return cnp(spec, name=f"{app}-egress")


def test_a_name_stands_for_every_address_it_had(tmp_path: Path) -> None:
    """`a` used svc.example.com at one address, `b` at another: `a` may reach the other address too (the same
    name), which is no unobserved allowance; a pattern wider than the names `a` used is one."""
    flows = [
        build_flow(A, CDN1, 443, names=["svc.example.com"]),
        build_flow(B, CDN2, 443, names=["svc.example.com"]),
        build_flow(B, OTHER, 443, names=["other.example.com"]),
    ]
    observed = observe_batches(batches(write(tmp_path / "flows.json", flows)), Settings())
    deny = cnp("{endpointSelector: {}, ingress: [{}], egress: [{}]}", name="default-deny")
    exact = [
        deny,
        egress_by_name("a", "matchName", "svc.example.com"),
        egress_by_name("b", "matchPattern", "*.example.com"),
    ]
    policies = PolicySet.of([p for obj in exact for p in policies_from_cnp(obj, "f.yaml")])
    result = verify(observed, policies, ["x"])
    assert result.denied_flows == 0
    assert [a.line() for a in result.over_permissive] == []
    wide = [deny, egress_by_name("a", "matchPattern", "*.example.com"), exact[2]]
    result = verify(observed, PolicySet.of([p for obj in wide for p in policies_from_cnp(obj, "f.yaml")]), ["x"])
    assert [(a.dst.selector, a.port, a.rules) for a in result.over_permissive] == [
        ("203.0.113.3/32", 443, ("x/a-egress egress[0]",))
    ]


def test_a_pattern_asked_for_is_flagged_not_counted(tmp_path: Path) -> None:
    """The same wide pattern, when the user asked for it: what only it allows is meant (`pattern`); a pattern
    nobody asked for still counts."""
    flows = [
        build_flow(A, CDN1, 443, names=["svc.example.com"]),
        build_flow(B, OTHER, 443, names=["other.example.com"]),
    ]
    observed = observe_batches(batches(write(tmp_path / "flows.json", flows)), Settings())
    deny = cnp("{endpointSelector: {}, ingress: [{}], egress: [{}]}", name="default-deny")
    wide = [
        deny,
        egress_by_name("a", "matchPattern", "*.example.com"),
        egress_by_name("b", "matchName", "other.example.com"),
    ]
    policies = PolicySet.of([p for obj in wide for p in policies_from_cnp(obj, "f.yaml")])
    asked = verify(observed, policies, ["x"], patterns=["*.example.com"])
    assert (asked.denied_flows, asked.over_permissive) == (0, ())
    assert [(a.flag, a.dst.selector, a.port, a.rules) for a in asked.unobserved] == [
        ("pattern", "203.0.113.3/32", 443, ("x/a-egress egress[0]",))
    ]
    other = verify(observed, policies, ["x"], patterns=["*.other.io"])
    assert [a.dst.selector for a in other.over_permissive] == ["203.0.113.3/32"]
