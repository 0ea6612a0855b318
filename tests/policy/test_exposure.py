"""The second half of least privilege: connections the policies allow that no flow used.

One small recording (web -> api -> db, api -> one external address, one external client -> web,
DNS from web) replayed against policy sets from exact to wide open; every case names the
allowances it expects, with the rule that allows them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Run
from test_verify import batch, other, pod

from synth.base.config import DnsTarget, Settings
from synth.core.model import PolicySet
from synth.policy.manifest import policy_from_object
from synth.policy.observed import Observed, observe_batches
from synth.policy.verify import verify
from synth.store.dataset import Store

WEB = pod("x", "web-7d4b9c-x7k2p", "10.0.1.1", app="web")
API = pod("x", "api-5f6d7c-q2w4x", "10.0.1.2", app="api")
DB = pod("x", "db-0", "10.0.1.3", app="db")
WORKER_A = pod("x", "worker-a-6c7d8f-r4t5z", "10.0.1.4", app="worker")
WORKER_B = pod("x", "worker-b-6c7d8f-v7b8n", "10.0.1.5", app="worker")
DNS = pod("kube-system", "coredns-5d78c9869d-bcdfg", "10.0.9.9", **{"k8s-app": "kube-dns"})
CARDS = other("world", "203.0.113.10")
CLIENT = other("world", "198.51.100.7")

FLOWS = [
    {"src": WEB, "dst": API, "port": 8080},
    {"src": API, "dst": DB, "port": 5432},
    {"src": API, "dst": CARDS, "port": 443},
    {"src": CLIENT, "dst": WEB, "port": 80, "direction": "ingress"},
    {"src": WEB, "dst": DNS, "port": 53, "protocol": "UDP"},
    {"src": WORKER_A, "dst": API, "port": 8080},
    {"src": WORKER_B, "dst": DB, "port": 5432},
]


@pytest.fixture(scope="module")
def observed() -> Observed:
    return observe_batches([batch(FLOWS)], Settings())


def policies(*documents: dict[str, Any]) -> PolicySet:
    return PolicySet.of([policy_from_object(doc, f"case.yaml#{i}") for i, doc in enumerate(documents)])


def policy(name: str, selector: dict[str, str], ingress: list[Any] | None = None,
           egress: list[Any] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector} if selector else {}, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "x"}, "spec": spec}  # fmt: skip


def pods(**labels: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels}}


def tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


DNS_EGRESS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}  # fmt: skip
DEFAULT_DENY = policy("default-deny", {}, ingress=[], egress=[])
EXACT = (
    DEFAULT_DENY,
    policy("allow-dns", {}, egress=[DNS_EGRESS]),
    policy("web", {"app": "web"}, ingress=[{"from": [{"ipBlock": {"cidr": "198.51.100.7/32"}}], "ports": [tcp(80)]}],
           egress=[{"to": [pods(app="api")], "ports": [tcp(8080)]}]),
    policy("api", {"app": "api"}, ingress=[{"from": [pods(app="web"), pods(app="worker")], "ports": [tcp(8080)]}],
           egress=[{"to": [pods(app="db")], "ports": [tcp(5432)]},
                   {"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [tcp(443)]}]),
    policy("db", {"app": "db"}, ingress=[{"from": [pods(app="api"), pods(app="worker")], "ports": [tcp(5432)]}]),
    policy("worker", {"app": "worker"}, egress=[{"to": [pods(app="api")], "ports": [tcp(8080)]},
                                                {"to": [pods(app="db")], "ports": [tcp(5432)]}]),
)  # fmt: skip


def lines(result: Any, flagged: bool = False) -> list[tuple[str, str, tuple[str, ...]]]:
    chosen = [a for a in result.unobserved if bool(a.flag) == flagged]
    return [(a.flag, a.line(), a.rules) for a in chosen]


def test_an_exact_set_allows_nothing_unobserved_but_what_it_flags(observed: Observed) -> None:
    result = verify(observed, policies(*EXACT), ["x"])
    assert result.ok and result.over_permissive == ()
    dns = [(f"x/{who} -> kube-system/coredns {protocol}/53", ("x/allow-dns egress[0]",))
           for who in ("api", "db", "web", "worker-a", "worker-b") for protocol in ("TCP", "UDP")
           if (who, protocol) != ("web", "UDP")]  # fmt: skip
    assert lines(result, flagged=True) == [
        *(("dns", line, rules) for line, rules in dns),
        # The two workers carry the same labels: what one did, the rule allows the other too.
        ("inseparable", "x/worker-a -> x/db TCP/5432", ("x/db ingress[0]", "x/worker egress[1]")),
        ("inseparable", "x/worker-b -> x/api TCP/8080", ("x/api ingress[0]", "x/worker egress[0]")),
    ]
    assert "0 connections allowed that no flow used (besides 9 dns, 2 inseparable, flagged)" in result.summary()


def test_a_namespace_open_inside_lists_every_unused_connection_with_its_rule(observed: Observed) -> None:
    allow_inside = policy("inside", {}, ingress=[{"from": [pods()]}], egress=[{"to": [pods()]}, DNS_EGRESS])
    result = verify(observed, policies(DEFAULT_DENY, allow_inside), ["x"])
    found = {line: rules for _, line, rules in lines(result)}
    assert found["x/web -> x/db TCP/5432"] == ("x/inside egress[0]", "x/inside ingress[0]")
    assert found["x/db -> x/api TCP/8080"] == ("x/inside egress[0]", "x/inside ingress[0]")
    # A rule without ports opens every port: shown once per pair as `*`.
    assert found["x/web -> x/api TCP/*"] == ("x/inside egress[0]", "x/inside ingress[0]")
    assert found["x/api -> x/web UDP/*"] == ("x/inside egress[0]", "x/inside ingress[0]")
    # Observed connections never appear, and nothing outside the namespace's pods is allowed.
    assert "x/web -> x/api TCP/8080" not in found
    assert not any("world" in line for line in found)


def test_an_address_range_wider_than_the_addresses_seen_shows(observed: Observed) -> None:
    wide = policy("api-wide", {"app": "api"}, egress=[{"to": [{"ipBlock": {"cidr": "203.0.113.0/24",
                                                                          "except": ["203.0.113.0/30"]}}],
                                                       "ports": [tcp(443)]}])  # fmt: skip
    result = verify(observed, policies(*EXACT, wide), ["x"])
    assert lines(result) == [
        ("", "x/api -> world 203.0.113.254/32 TCP/443", ("x/api-wide egress[0]",)),
    ]


def test_ingress_from_any_address_is_one_flagged_public_allowance(observed: Observed) -> None:
    public = policy("web-public", {"app": "web"}, ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                                            "ports": [tcp(80)]}])  # fmt: skip
    result = verify(observed, policies(*EXACT, public), ["x"])
    assert result.over_permissive == ()
    public_lines = [line for flag, line, _ in lines(result, flagged=True) if flag == "public"]
    assert public_lines == ["world 0.0.0.0/0 -> x/web TCP/80"]


def test_a_direction_no_policy_isolates_is_one_allowance_per_workload(observed: Observed) -> None:
    result = verify(observed, PolicySet.of([]), ["x"])
    workloads = ("api", "db", "web", "worker-a", "worker-b")
    assert sorted(line for _, line, _ in lines(result)) == sorted(
        [f"x/{w} -> anything on any port" for w in workloads] + [f"anything -> x/{w} on any port" for w in workloads]
    )
    assert {rules for _, _, rules in lines(result)} == {
        ("no egress policy selects it",), ("no ingress policy selects it",)
    }
    # With default-deny only the directions stay closed; nothing is allowed at all.
    assert verify(observed, policies(DEFAULT_DENY), ["x"]).unobserved == ()


def test_dns_flags_follow_the_configured_dns_pods(observed: Observed) -> None:
    elsewhere = DnsTarget(namespace="dns", pod_labels=(("app", "nodelocal"),))
    result = verify(observed, policies(*EXACT), ["x"], elsewhere)
    assert [line for _, line, _ in lines(result)] == [
        f"x/{who} -> kube-system/coredns {protocol}/53"
        for who in ("api", "db", "web", "worker-a", "worker-b") for protocol in ("TCP", "UDP")
        if (who, protocol) != ("web", "UDP")
    ]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    writer = Store(str(path)).writer({"source": "test"})
    writer.write(batch(FLOWS))
    writer.close()
    return path


def test_verify_strict_fails_on_unused_allowances_and_json_lists_them(
    synth: Callable[..., Run], store: Path, tmp_path: Path
) -> None:
    wide = tmp_path / "wide.yaml"
    open_api = policy("api-any", {"app": "api"}, ingress=[{}])
    wide.write_text(yaml.safe_dump_all([*EXACT, open_api]))
    lenient = synth("verify", "--policies", wide, "-n", "x", "--store", store)
    assert lenient.code == 0
    assert "ALLOWED, NEVER OBSERVED: " in lenient.out
    # web's own egress rules still hold; what api-any lets in is what no egress policy holds back.
    assert "  kube-system/coredns -> x/api TCP/*  allowed by x/api-any ingress[0]" in lenient.out
    assert "  world 192.0.2.1/32 -> x/api TCP/8080  allowed by x/api-any ingress[0]" in lenient.out
    assert "x/web -> x/api TCP/*" not in lenient.out
    strict = synth("verify", "--policies", wide, "-n", "x", "--strict", "-o", "json", "--store", store)
    assert strict.code == 1
    document = json.loads(strict.out)
    unused = {(a["src"]["workload"], a["dst"]["workload"], a["protocol"], a["port"]): a["rules"]
              for a in document["allowed_unobserved"]}  # fmt: skip
    assert unused[("Deployment/coredns", "Deployment/api", "TCP", None)] == ["x/api-any ingress[0]"]
    assert ("Deployment/web", "Deployment/api", "TCP", None) not in unused
    exact = tmp_path / "exact.yaml"
    exact.write_text(yaml.safe_dump_all(list(EXACT)))
    assert synth("verify", "--policies", exact, "-n", "x", "--strict", "--store", store).code == 0


def test_addresses_the_rules_tell_apart_have_their_own_signature() -> None:
    """Addresses no rule admits share one signature (one refusal answers for all, an address in a range's
    hole too); a /32 and a range tell theirs apart, and a signature never stands for a pod."""
    from synth.policy.evaluate import Endpoint, Engine

    wide = policy("api-wide", {"app": "api"}, egress=[{"to": [{"ipBlock": {"cidr": "203.0.113.0/24",
                                                                          "except": ["203.0.113.0/30"]}}],
                                                       "ports": [tcp(443)]}])  # fmt: skip
    engine = Engine(policies(*EXACT, wide))

    def signature(address: str) -> object:
        return engine.peer_signature(Endpoint("world", ip=address))

    assert signature("192.0.2.1") == signature("192.0.2.99") == signature("2001:db8::1") == signature("203.0.113.1")
    assert len({signature(a) for a in ("192.0.2.1", "198.51.100.7", "203.0.113.10", "203.0.113.77")}) == 4
    assert engine.peer_signature(Endpoint("pod", namespace="x", labels={"app": "api"})) is None
