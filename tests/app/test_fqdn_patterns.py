"""`--fqdn-pattern`: names seen that a pattern asked for matches become one pattern rule (Cilium `matchPattern`,
Calico Enterprise wildcard domain) with the names behind it; the YAML reads back through the strict converters;
verify allows every observed flow and flags, rather than counts, what only the pattern allows; the PR text
names the pattern and its names; the usage errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Run, assert_format_usage_error
from flowbuilder import Peer, Pod, flow, write

from synth.app.generation import Generated, describe, generate
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.model import FQDN, PolicyFormat
from synth.policy.calico import policy_from_calico
from synth.policy.cilium import policies_from_cnp
from synth.store.dataset import Store

WEB = Pod("shop", "web-1", {"app": "web"}, "10.0.0.1", "Deployment/web")
WORKER = Pod("shop", "worker-1", {"app": "worker"}, "10.0.0.2", "Deployment/worker")
SEEN = {  # address: (client, port, names seen for it)
    "203.0.113.1": (WEB, 443, "a.cdn.example.com."),
    "203.0.113.2": (WEB, 443, "B.cdn.example.com"),
    "203.0.113.3": (WEB, 443, "x.y.cdn.example.com"),
    "203.0.113.4": (WEB, 8443, "api.example.com"),
    "203.0.113.5": (WORKER, 443, "c.cdn.example.com"),
}
PATTERNS = ("*.cdn.example.com", "*.unused.example.org")  # the second has no name seen under it
CILIUM = PolicyFormat("cilium", fqdn_patterns=PATTERNS)
CALICO = PolicyFormat("calico", calico_enterprise=True, fqdn_patterns=PATTERNS)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fqdn")
    flows = [flow(client, Peer("world", address), port, names=[name])
             for address, (client, port, name) in SEEN.items()]
    path = folder / "store"
    import_files(Store(str(path)), "hubble", [str(write(folder / "flows.json", flows))])
    return path


def generated(store_path: Path, policy_format: PolicyFormat) -> Generated:
    return generate(Store(str(store_path)), Settings(), namespaces=["shop"], policy_format=policy_format)


def egress_of(result: Generated, name: str) -> dict[str, Any]:
    return yaml.safe_load(result.files[f"shop/{name}.yaml"])  # type: ignore[no-any-return]


def tcp(port: int) -> dict[str, Any]:
    return {"ports": [{"port": str(port), "protocol": "TCP"}]}


def test_cilium_names_under_a_pattern_become_the_pattern(store_path: Path) -> None:
    """One matchPattern for a.cdn and b.cdn (`*` is one label, so x.y.cdn stays a name); the pattern no
    name fell under is not written; the evidence lists the names behind the pattern."""
    result = generated(store_path, CILIUM)
    web = egress_of(result, "web-egress")["spec"]["egress"]
    assert web == [
        {"toFQDNs": [{"matchPattern": "*.cdn.example.com"}], "toPorts": [tcp(443)]},
        {"toFQDNs": [{"matchName": "api.example.com"}], "toPorts": [tcp(8443)]},
        {"toFQDNs": [{"matchName": "x.y.cdn.example.com"}], "toPorts": [tcp(443)]},
    ]
    text = result.files["shop/web-egress.yaml"]
    assert "  # DNS names seen under the pattern: a.cdn.example.com, b.cdn.example.com\n" in text
    assert "unused" not in "".join(result.files.values())
    worker = egress_of(result, "worker-egress")["spec"]["egress"]
    assert worker[0]["toFQDNs"] == [{"matchPattern": "*.cdn.example.com"}]
    dns = egress_of(result, "allow-dns")["spec"]["egress"][0]
    assert dns["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}


def test_cilium_output_reads_back_through_the_agents_rules(store_path: Path) -> None:
    result = generated(store_path, CILIUM)
    policy = policies_from_cnp(egress_of(result, "web-egress"), "web-egress.yaml")[0]
    assert [rule.peers[0].fqdn for rule in policy.egress] == [
        FQDN("*.cdn.example.com", pattern=True), FQDN("api.example.com"), FQDN("x.y.cdn.example.com")
    ]


def test_calico_enterprise_pattern_is_a_wildcard_domain_of_one_or_more_labels(store_path: Path) -> None:
    """Calico's `*` is one or more labels, so x.y.cdn falls under the pattern too."""
    result = generated(store_path, CALICO)
    document = egress_of(result, "web-egress")
    assert document["spec"]["egress"] == [
        {"action": "Allow", "protocol": "TCP", "destination": {"domains": ["*.cdn.example.com"], "ports": [443]}},
        {"action": "Allow", "protocol": "TCP", "destination": {"domains": ["api.example.com"], "ports": [8443]}},
    ]
    assert ("  # DNS names seen under the pattern: a.cdn.example.com, b.cdn.example.com, x.y.cdn.example.com\n"
            in result.files["shop/web-egress.yaml"])
    policy = policy_from_calico(document, "web-egress.yaml")
    assert policy.egress[0].peers[0].fqdn == FQDN("*.cdn.example.com", pattern=True)


@pytest.mark.parametrize("policy_format", [CILIUM, CALICO], ids=["cilium", "calico"])
def test_both_halves_allow_every_flow_and_flag_the_pattern(store_path: Path, policy_format: PolicyFormat) -> None:
    """No observed flow denied; what only the pattern allows (web to worker's c.cdn address, worker to web's
    addresses under the pattern) is flagged, not counted as allowed that no flow used."""
    verification = generated(store_path, policy_format).verification
    assert (verification.denied_flows, verification.unjudged_flows, verification.over_permissive) == (0, 0, ())
    flagged = sorted(a.line() for a in verification.unobserved if a.flag == "pattern")
    under = ["203.0.113.1/32", "203.0.113.2/32"] + (["203.0.113.3/32"] if policy_format.api == "calico" else [])
    assert flagged == sorted(
        ["shop/web -> world 203.0.113.5/32 TCP/443"] + [f"shop/worker -> world {a} TCP/443" for a in under]
    )
    assert verification.flagged() == (("pattern", len(flagged)),)
    assert f"(besides {len(flagged)} pattern, flagged)" in verification.summary()


def test_without_patterns_nothing_is_flagged_and_names_stay_exact(store_path: Path) -> None:
    result = generated(store_path, PolicyFormat("cilium"))
    assert "matchPattern: \"*.cdn" not in "".join(result.files.values())
    assert result.verification.unobserved == ()


def test_the_pr_text_lists_the_pattern_and_the_names_behind_it(store_path: Path) -> None:
    result = generated(store_path, CILIUM)
    text = describe(Store(str(store_path)), result)
    assert ("- **Policy API:** Cilium CiliumNetworkPolicy (cilium.io/v2); DNS-name patterns asked for: "
            "\\*.cdn.example.com, \\*.unused.example.org\n") in text
    assert ("| egress | DNS pattern \\*.cdn.example.com | TCP 443 | 2 | 1 |") in text
    assert "| a.cdn.example.com, b.cdn.example.com |\n" in text
    assert ("| shop/Deployment/web | pattern \\*.cdn.example.com (names seen: a.cdn.example.com, b.cdn.example.com) "
            "on TCP 443: addresses seen 203.0.113.1, 203.0.113.2 |") in text
    assert "The names under a pattern asked for (--fqdn-pattern) are allowed by the pattern" in text


def test_its_own_output_passes_generate_diff_and_verify_when_the_pattern_is_named(
    store_path: Path, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    """generate --strict writes it; diff finds nothing to change; verify --strict passes when told the pattern
    was asked for, and counts what only the pattern allows when not."""
    options = ("--format", "cilium", "--fqdn-pattern", "*.cdn.example.com")
    out = tmp_path / "out"
    run = synth("generate", "-n", "shop", *options, "--store", store_path, "--out", out, "--strict")
    assert run.code == 0, run.err
    assert "0 connections allowed that no flow used (besides 3 pattern, flagged)" in run.err
    run = synth("diff", "-n", "shop", *options, "--store", store_path, "--deployed", out)
    assert run.code == 0, run.out + run.err
    assert "0 changed, 0 added, 0 removed" in run.out
    check = ("verify", "-n", "shop", "--policies", out, "--strict", "--store", store_path)
    run = synth(*check, "--fqdn-pattern", "*.CDN.example.com.")
    assert run.code == 0, run.out
    assert "  [pattern] shop/web -> world 203.0.113.5/32 TCP/443\n" in run.out
    assert "(names under a DNS-name pattern asked for 3)" in run.out
    run = synth(*check)
    assert run.code == 1
    assert "3 connections allowed that no flow used" in run.out


@pytest.mark.parametrize(("options", "message"), [
    (("--fqdn-pattern", "*.x.io"),
     "--fqdn-pattern allows egress by DNS name: add --format cilium, or --format calico --calico-enterprise"),
    (("--format", "calico", "--fqdn-pattern", "*.x.io"),
     "--fqdn-pattern allows egress by DNS name: add --format cilium, or --format calico --calico-enterprise"),
    (("--format", "cilium", "--fqdn-pattern", "*.x.io", "--fqdn-pattern", "a**.x.io"),
     "--fqdn-pattern 'a**.x.io': `**` only as a leading `**.` (several labels); `*` matches within one label"),
    (("--format", "calico", "--calico-enterprise", "--fqdn-pattern", "api-*.x.io"),
     "--fqdn-pattern 'api-*.x.io': Calico takes `*` only as a whole label, not 'api-*'"),
])
def test_patterns_the_format_cannot_take_are_usage_errors(
    store_path: Path, synth: Callable[..., Run], options: tuple[str, ...], message: str
) -> None:
    assert_format_usage_error(synth, store_path, options, message)
