"""Cilium and Calico output end to end: golden YAML per format, read back and verified by both halves,
DNS names and the DNS proxy rule, entities, staged Calico, on the sample shop and the generated apps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import GOLDEN, Run
from test_apps import gen

from synth.app.generation import generate
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.model import PolicyFormat
from synth.policy.calico import policy_from_calico
from synth.store.dataset import Store

FORMATS = {
    "cilium": ("--format", "cilium"),
    "calico": ("--format", "calico"),
    "calico-staged": ("--format", "calico", "--staged", "--calico-enterprise"),
    "calico-tier": ("--format", "calico", "--tier", "security", "--order", "50"),
}


def generated_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.yaml"))}


def documents(out: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {
        str(p.relative_to(out)): yaml.safe_load(p.read_text())
        for p in sorted(out.rglob("*.yaml"))
        if p.name != "kustomization.yaml"
    }


@pytest.fixture(scope="module")
def outputs(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from synth.cli import main

    found = {}
    for name, options in FORMATS.items():
        out = tmp_path_factory.mktemp(name)
        args = ["generate", "-n", "payments", "-n", "shop", "-n", "monitoring", *options, "--store", str(sample_store),
                "--out", str(out), "--pr"]
        assert main(args) == 0
        found[name] = out
    return found


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_golden_yaml_per_format(outputs: dict[str, Path], name: str, update_golden: bool) -> None:
    files = generated_files(outputs[name])
    assert set(files) == {n for n in files if n.endswith(".yaml")}
    golden = GOLDEN / f"generate-{name}"
    if update_golden:
        for relative, text in files.items():
            (golden / relative).parent.mkdir(parents=True, exist_ok=True)
            (golden / relative).write_text(text)
    expected = {str(p.relative_to(golden)): p.read_text() for p in sorted(golden.rglob("*.yaml"))}
    assert files == expected


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_read_back_and_verified_by_both_halves(
    outputs: dict[str, Path], name: str, sample_store: Path, synth: object
) -> None:
    run: Run = synth(  # type: ignore[operator]
        "verify", "--store", sample_store, "--policies", outputs[name], "-n", "payments", "-n", "shop", "--strict"
    )
    assert run.code == 0, run.out + run.err
    assert "verify: 0 observed flows denied, 0 unjudged; 0 connections allowed that no flow used" in run.out


@pytest.mark.parametrize("name", ["cilium", "calico", "calico-tier"])
def test_diff_against_its_own_output_is_empty(
    outputs: dict[str, Path], name: str, sample_store: Path, synth: object
) -> None:
    run: Run = synth(  # type: ignore[operator]
        "diff", "--store", sample_store, "-n", "payments", "-n", "shop", "--deployed", outputs[name], *FORMATS[name]
    )
    assert run.code == 0, run.out
    assert "0 changed, 0 added, 0 removed" in run.out


def test_cilium_names_instead_of_addresses_and_the_dns_proxy(outputs: dict[str, Path]) -> None:
    docs = documents(outputs["cilium"])
    # the addresses that had DNS names, as the Kubernetes output shows them (an ipBlock with its names)
    kubernetes = "".join(p.read_text() for p in sorted((GOLDEN / "generate").rglob("*.yaml")))
    with_names = set(re.findall(r"# DNS names: .*\n  - to:\n    - ipBlock:\n        cidr: (\S+)\n", kubernetes))
    assert with_names == {"203.0.113.10/32", "203.0.113.11/32", "203.0.113.12/32"}
    fqdn_namespaces, proxied = set(), set()
    for doc in docs.values():
        assert doc["apiVersion"] == "cilium.io/v2" and doc["kind"] == "CiliumNetworkPolicy"
        for rule in doc["spec"].get("egress", []):
            assert not set(rule.get("toCIDR", [])) & with_names
            peers = [k for k in rule if k != "toPorts"]
            assert len(peers) <= 1, rule  # one peer kind per rule
            if "toFQDNs" in rule:
                fqdn_namespaces.add(doc["metadata"]["namespace"])
            if any("rules" in entry for entry in rule.get("toPorts", [])):
                assert doc["spec"]["endpointSelector"] == {}
                assert rule["toPorts"][0]["rules"] == {"dns": [{"matchPattern": "*"}]}
                proxied.add(doc["metadata"]["namespace"])
    assert fqdn_namespaces == {"payments"}
    assert proxied == fqdn_namespaces  # every pod with a toFQDNs rule has the DNS proxy rule (allow-dns selects all)
    api = docs["payments/api-server-egress.yaml"]["spec"]["egress"]
    assert {"toFQDNs": [{"matchName": "api.cardprocessor.example.com"}],
            "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]} in api
    deny = docs["payments/default-deny.yaml"]["spec"]
    assert deny == {"endpointSelector": {}, "ingress": [{}], "egress": [{}]}


def test_calico_tier_order_selectors_and_namespaces(outputs: dict[str, Path]) -> None:
    docs = documents(outputs["calico"])
    for doc in docs.values():
        assert (doc["apiVersion"], doc["kind"]) == ("projectcalico.org/v3", "NetworkPolicy")
        assert (doc["spec"]["tier"], doc["spec"]["order"]) == ("default", 100)
        assert "stagedAction" not in doc["spec"]
        for rule in doc["spec"].get("egress", []):
            assert "domains" not in rule.get("destination", {})  # open-source Calico has no domains
    ingress = docs["payments/api-server-ingress.yaml"]["spec"]
    assert ingress["selector"] == "app.kubernetes.io/component == 'server' && app.kubernetes.io/name == 'api'"
    assert {
        "action": "Allow",
        "protocol": "TCP",
        "source": {"selector": "app == 'checkout'", "namespaceSelector": "projectcalico.org/name == 'shop'"},
        "destination": {"ports": [8443]},
    } in ingress["ingress"]
    assert docs["payments/default-deny.yaml"]["spec"] == {
        "tier": "default", "order": 100, "selector": "all()", "types": ["Ingress", "Egress"]
    }
    api = docs["payments/api-server-egress.yaml"]["spec"]["egress"]
    assert any(rule["destination"].get("nets") == ["203.0.113.10/32"] for rule in api)


def test_calico_staged_enterprise_uses_domains(outputs: dict[str, Path]) -> None:
    docs = documents(outputs["calico-staged"])
    assert {doc["kind"] for doc in docs.values()} == {"StagedNetworkPolicy"}
    assert {doc["spec"]["stagedAction"] for doc in docs.values()} == {"Set"}
    api = docs["payments/api-server-egress.yaml"]["spec"]["egress"]
    assert {"action": "Allow", "protocol": "TCP",
            "destination": {"domains": ["api.cardprocessor.example.com"], "ports": [443]}} in api


def test_the_pr_text_shows_dns_name_rules_and_the_policy_api(outputs: dict[str, Path]) -> None:
    text = (outputs["cilium"] / "PR.md").read_text()
    assert "- **Policy API:** Cilium CiliumNetworkPolicy (cilium.io/v2)" in text
    rule = r"\| egress \| DNS name api\.cardprocessor\.example\.com \| TCP 443 \| [0-9,]+ \| 6 \| .* \| "
    assert re.search(rule + r"api\.cardprocessor\.example\.com \|\n", text)
    assert ("| payments/Deployment/api | api.cardprocessor.example.com on TCP 443: addresses seen 203.0.113.10, "
            "203.0.113.11, 203.0.113.12 |") in text
    assert "Calico open source has no DNS-name rules" in (outputs["calico"] / "PR.md").read_text()
    staged = (outputs["calico-staged"] / "PR.md").read_text()
    assert ("- **Policy API:** Calico Enterprise/Cloud StagedNetworkPolicy (projectcalico.org/v3, tier default, "
            "order 100; lower orders are evaluated first within a tier): staged, shows what would be denied and "
            "enforces nothing\n") in staged
    assert "Their simulated verdict shows as policies.pending in the flow logs" in staged


def test_a_tier_names_every_policy_and_sets_tier_and_order(outputs: dict[str, Path]) -> None:
    plain, tiered = documents(outputs["calico"]), documents(outputs["calico-tier"])
    # the same policies as in tier default, each named (and filed) `security.<name>`
    assert set(tiered) == {path.replace("/", "/security.") for path in plain}
    for path, doc in tiered.items():
        name = doc["metadata"]["name"]
        assert (f"{doc['metadata']['namespace']}/{name}.yaml", doc["kind"]) == (path, "NetworkPolicy")
        assert doc["spec"] == {**plain[path.replace("/security.", "/")]["spec"], "tier": "security", "order": 50}
        policy = policy_from_calico(doc, path)
        assert (policy.name, policy.tier, policy.order, policy.staged) == (name, "security", 50.0, False)
    kustomization = (outputs["calico-tier"] / "payments" / "kustomization.yaml").read_text()
    assert kustomization.endswith("- security.reconcile-batch-egress.yaml\n- security.default-deny.yaml\n")


def test_staged_policies_in_a_tier_read_back_and_pass_both_halves(
    sample_store: Path, tmp_path: Path, synth: object
) -> None:
    run: Run = synth(  # type: ignore[operator]
        "generate", "-n", "payments", "--format", "calico", "--staged", "--tier", "security", "--order", "50",
        "--store", sample_store, "--out", tmp_path,
    )
    assert run.code == 0, run.err
    docs = documents(tmp_path)
    assert len(docs) == 6
    for path, doc in docs.items():
        assert (doc["kind"], doc["metadata"]["name"]) == ("StagedNetworkPolicy", path.split("/")[1][:-len(".yaml")])
        assert doc["metadata"]["name"].startswith("security.")
        assert (doc["spec"]["stagedAction"], doc["spec"]["tier"], doc["spec"]["order"]) == ("Set", "security", 50)
        policy = policy_from_calico(doc, path)
        assert (policy.staged, policy.tier, policy.order) == (True, "security", 50.0)
    verified: Run = synth(  # type: ignore[operator]
        "verify", "--store", sample_store, "--policies", tmp_path, "-n", "payments", "--strict"
    )
    assert verified.code == 0, verified.out
    assert "verify: 0 observed flows denied, 0 unjudged; 0 connections allowed that no flow used" in verified.out


def test_the_pr_text_of_a_tier(outputs: dict[str, Path]) -> None:
    text = (outputs["calico-tier"] / "PR.md").read_text()
    assert ("- **Policy API:** Calico NetworkPolicy (projectcalico.org/v3, tier security, order 50; lower orders are "
            "evaluated first within a tier)\n") in text
    check = ("The policies are in the Calico tier security, which must exist before they are applied (this fails "
             "if it does not):\n\n```sh\nkubectl get tiers.projectcalico.org security\n```\n\n1. Apply the allow "
             "policies first")
    assert text.count(check) == 3  # in the roll-out of each namespace, before its first step
    deny = outputs["calico-tier"] / "payments" / "security.default-deny.yaml"
    assert f"   kubectl apply -f {deny} && ROLLED_OUT=" in text
    assert f"   kubectl delete -f {deny}\n" in text
    assert "tiers.projectcalico.org" not in (outputs["calico"] / "PR.md").read_text()


@pytest.mark.parametrize("command", ["generate", "report", "diff"])
@pytest.mark.parametrize("option", [("--staged",), ("--calico-enterprise",), ("--tier", "security"), ("--order", "50")],
                         ids=lambda option: option[0])
def test_calico_options_need_the_calico_format(command: str, option: tuple[str, ...], synth: object) -> None:
    run: Run = synth(command, "-n", "payments", *option)  # type: ignore[operator]
    assert run.code == 2
    assert run.err == f"synth: error: {option[0]} is a Calico option: add --format calico\n"
    run = synth(command, "-n", "payments", "--format", "cilium", *option)  # type: ignore[operator]
    assert run.err == f"synth: error: {option[0]} is a Calico option: add --format calico\n"


NOT_A_TIER = "is not a tier name: lower-case letters, digits and '-', starting and ending with a letter or digit, " \
             "at most 63 characters"


@pytest.mark.parametrize(("option", "message"), [
    (("--tier", "Security"), f"--tier: 'Security' {NOT_A_TIER}"),
    (("--tier", "team.a"), f"--tier: 'team.a' {NOT_A_TIER}"),
    (("--tier", "security-"), f"--tier: 'security-' {NOT_A_TIER}"),
    (("--tier", ""), f"--tier: '' {NOT_A_TIER}"),
    (("--tier", "a" * 64), f"--tier: '{'a' * 64}' {NOT_A_TIER}"),
    (("--order", "-1"), "--order '-1': must be 0 or more"),
    (("--order", "fifty"), "--order 'fifty': not a finite number"),
    (("--order", "nan"), "--order 'nan': not a finite number"),
    (("--order", "inf"), "--order 'inf': not a finite number"),
])
def test_bad_tiers_and_orders_are_usage_errors(option: tuple[str, str], message: str, synth: object) -> None:
    run: Run = synth("generate", "-n", "payments", "--format", "calico", *option)  # type: ignore[operator]
    assert (run.code, run.err) == (2, f"synth: error: {message}\n")


@pytest.mark.parametrize(("options", "name", "order"), [
    (("--tier", "default", "--order", "0"), "allow-dns", 0),
    (("--tier", "a" * 63, "--order", "0.00001"), f"{'a' * 63}.allow-dns", 0.00001),
])
def test_the_edges_of_tier_and_order_are_taken(
    options: tuple[str, ...], name: str, order: float, sample_store: Path, synth: object
) -> None:
    run: Run = synth(  # type: ignore[operator]
        "generate", "-n", "payments", "--format", "calico", *options, "--store", sample_store
    )
    assert run.code == 0, run.err
    docs = [doc for doc in yaml.safe_load_all(run.out) if doc]
    assert name in {doc["metadata"]["name"] for doc in docs}
    assert {doc["spec"]["order"] for doc in docs} == {order}


def test_host_traffic_becomes_entities_only_when_asked(
    outputs: dict[str, Path], sample_store: Path, synth: object
) -> None:
    plain = "".join(generated_files(outputs["cilium"]).values())
    assert "  - toEntities:\n    - kube-apiserver\n" in plain
    assert "fromEntities" not in plain and "kube-apiserver at" not in plain
    asked: Run = synth(  # type: ignore[operator]
        "generate", "-n", "monitoring", "--format", "cilium", "--allow-host-traffic", "--store", sample_store
    )
    assert asked.code == 0
    assert "  - fromEntities:\n    - host\n" in asked.out


# --- the generated apps -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Store]:
    out = tmp_path_factory.mktemp("apps")
    assert gen.main(["apps", "--out", str(out)]) == 0
    stores = {}
    for capture in sorted(out.glob("*.json")):
        store = Store(str(tmp_path_factory.mktemp(f"store-{capture.stem}")))
        import_files(store, "hubble", [str(capture)])
        stores[capture.stem] = store
    return stores


@pytest.mark.parametrize("fmt", [PolicyFormat("cilium"), PolicyFormat("calico", staged=True, calico_enterprise=True)],
                         ids=["cilium", "calico"])
def test_generated_apps_pass_both_halves_in_every_format(app_stores: dict[str, Store], fmt: PolicyFormat) -> None:
    assert len(app_stores) == 3
    for name, store in app_stores.items():
        generated = generate(store, Settings(), all_namespaces=True, policy_format=fmt)
        result = generated.verification
        assert (result.denied_flows, len(result.over_permissive), result.unjudged_flows) == (0, 0, 0), name
        assert {p.api for p in generated.synthesis.policies.policies} == {fmt.api}
