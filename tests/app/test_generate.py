"""Generation end to end on the sample shop: golden YAML, determinism, validation, selectors, safety."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import GOLDEN, SAMPLE_FLOWS, Run
from flowbuilder import Pod, flow, write

from synth.app.flows import aggregate_store
from synth.app.generation import generate
from synth.base.config import Settings
from synth.core.model import LabelSelector
from synth.store.dataset import Store


def generated_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.yaml"))}


@pytest.fixture(scope="module")
def sample_output(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synth.cli import main

    out = tmp_path_factory.mktemp("out")
    assert main(["generate", "-n", "payments", "-n", "shop", "--store", str(sample_store), "--out", str(out)]) == 0
    return out


def test_golden_yaml_for_the_sample_shop(sample_output: Path, update_golden: bool) -> None:
    files = generated_files(sample_output)
    golden = GOLDEN / "generate"
    if update_golden:
        for name, text in files.items():
            (golden / name).parent.mkdir(parents=True, exist_ok=True)
            (golden / name).write_text(text)
    expected = {str(p.relative_to(golden)): p.read_text() for p in sorted(golden.rglob("*.yaml"))}
    assert files == expected


def test_every_policy_file_passes_kubernetes_validate_strict(sample_output: Path) -> None:
    policies = [p for p in sample_output.rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(policies) > 6
    validator = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run(
        [str(validator), "--strict", *map(str, policies)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yaml_parses_back_and_has_the_rules_of_generation(sample_output: Path) -> None:
    payments = {p.stem: yaml.safe_load(p.read_text()) for p in (sample_output / "payments").glob("*.yaml")}
    deny = payments["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}
    dns = payments["allow-dns"]["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    kustomization = payments["kustomization"]["resources"]
    assert kustomization[-1] == "default-deny.yaml" and "allow-dns.yaml" in kustomization
    api_egress = payments["api-server-egress"]["spec"]
    blocks = [peer["ipBlock"]["cidr"] for rule in api_egress["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert blocks and all(b.endswith("/32") for b in blocks) and "0.0.0.0/0" not in blocks
    shop_frontend = yaml.safe_load((sample_output / "shop" / "frontend-ingress.yaml").read_text())["spec"]
    public = [r for r in shop_frontend["ingress"] if r["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]
    assert [r["ports"] for r in public] == [[{"protocol": "TCP", "port": 8080}]]


def test_no_reply_or_ephemeral_port_reaches_a_rule(sample_output: Path) -> None:
    for path in sample_output.rglob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        if document.get("kind") != "NetworkPolicy":
            continue
        for direction in ("ingress", "egress"):
            for rule in document["spec"].get(direction) or []:
                for port in rule.get("ports", []):
                    assert port["port"] < 32768, (path.name, port)


def test_denied_attempts_do_not_become_rules(sample_output: Path) -> None:
    ledger = yaml.safe_load((sample_output / "payments" / "ledger-database-ingress.yaml").read_text())
    peers = [peer for rule in ledger["spec"]["ingress"] for peer in rule["from"]]
    assert {"app": "cart"} not in [p.get("podSelector", {}).get("matchLabels") for p in peers]


def test_each_policy_selects_the_pods_whose_flows_made_it(sample_store: Path) -> None:
    settings = Settings()
    result = generate(Store(str(sample_store)), settings, namespaces=["payments", "shop"])
    edges = result.edges
    for policy in result.synthesis.policies.policies:
        if policy.pod_selector.is_empty:
            continue
        ends = [e.dst if "Ingress" in policy.policy_types else e.src for e in edges.edges]
        pods = {
            pod
            for end in ends
            if end.kind == "pod"
            and end.namespace == policy.namespace
            and end.selector == policy.pod_selector.canonical()
            for pod in end.pods
        }
        assert pods, policy.name
        for pod in pods:
            labels = dict(edges.pod_labels[(policy.namespace, pod)])
            assert policy.pod_selector.matches(labels), (policy.name, pod)
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if peer.pod_selector is not None and rule.evidence is not None:
                    namespace = policy.namespace
                    if peer.namespace_selector is not None:
                        namespace = dict(peer.namespace_selector.match_labels)["kubernetes.io/metadata.name"]
                    for pod in rule.evidence.peer_pods:
                        assert peer.pod_selector.matches(dict(edges.pod_labels[(namespace, pod)]))


def test_regeneration_is_byte_identical_whatever_the_input_order(
    tmp_path: Path, synth: Callable[..., Run], sample_output: Path
) -> None:
    lines = [line for path in SAMPLE_FLOWS for line in gzip.decompress(path.read_bytes()).decode().splitlines(True)]
    random.Random(7).shuffle(lines)
    half = len(lines) // 2
    (tmp_path / "b.json").write_text("".join(lines[:half]))
    (tmp_path / "a.json.gz").write_bytes(gzip.compress("".join(lines[half:]).encode()))
    store = tmp_path / "store"
    assert synth("import", "hubble", tmp_path / "a.json.gz", tmp_path / "b.json", "--store", store).code == 0
    out = tmp_path / "out"
    assert synth("generate", "-n", "shop", "-n", "payments", "--store", store, "--out", out).code == 0
    assert generated_files(out) == generated_files(sample_output)


def test_stdout_stream_without_out(sample_store: Path, synth: Callable[..., Run]) -> None:
    result = synth("generate", "-n", "payments", "--store", sample_store)
    assert result.code == 0
    documents = list(yaml.safe_load_all(result.out))
    assert [d["metadata"]["name"] for d in documents][-1] == "default-deny"
    assert all(d["kind"] == "NetworkPolicy" for d in documents)
    assert "payments: " in result.err


def test_out_dir_keeps_foreign_files_and_drops_stale_ones(
    sample_store: Path, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    out = tmp_path / "out"
    (out / "payments").mkdir(parents=True)
    (out / "payments" / "README.md").write_text("hand-written\n")
    (out / "payments" / "old-ingress.yaml").write_text("# Generated by synth from observed traffic.\nkind: x\n")
    assert synth("generate", "-n", "payments", "--store", sample_store, "--out", out).code == 0
    names = sorted(p.name for p in (out / "payments").iterdir())
    assert "README.md" in names and "old-ingress.yaml" not in names
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


NASTY = [
    'quote"in"value',
    "colon: value",
    "new\nline",
    "{{ lookup('x') }}",
    "tab\there",
    "#comment",
    "- dash",
    "☃ unicode",
    "&anchor",
    "*alias",
    "'single'",
    "yes",
    "null",
    "1.5",
    "0x1F",
    "",
]


@pytest.mark.parametrize("value", NASTY)
def test_untrusted_labels_and_names_keep_the_yaml_valid(tmp_path: Path, value: str, synth: Callable[..., Run]) -> None:
    client = Pod("shop", f"web-{value}-pod", {"app": "web", "note": value}, "10.0.0.1", "Deployment/web")
    server = Pod("shop", "db-0", {"app": "db", "owner": value}, "10.0.0.2", "StatefulSet/db")
    path = write(tmp_path / "f.json", [flow(client, server, 5432)])
    store = tmp_path / "store"
    assert synth("import", "hubble", path, "--store", store).code == 0
    out = tmp_path / "out"
    result = synth("generate", "-n", "shop", "--store", store, "--out", out)
    assert result.code == 0, result.err
    workload_policies = [*(out / "shop").glob("*-ingress.yaml"), *(out / "shop").glob("*-egress.yaml")]
    assert len(workload_policies) == 2
    for policy in workload_policies:
        document = yaml.safe_load(policy.read_text())
        selector = document["spec"]["podSelector"]["matchLabels"]
        assert selector in ({"app": "web"}, {"app": "db"})
    ingress = yaml.safe_load((out / "shop" / "db-ingress.yaml").read_text())["spec"]["ingress"][0]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {"app": "web"}}}]


def test_labels_that_are_values_yaml_would_retype_stay_strings(tmp_path: Path, synth: Callable[..., Run]) -> None:
    client = Pod("shop", "web-1", {"app": "true", "ver": "1.10"}, "10.0.0.1")
    server = Pod("shop", "db-0", {"app": "0123"}, "10.0.0.2")
    store = tmp_path / "store"
    synth("import", "hubble", write(tmp_path / "f.json", [flow(client, server, 5432)]), "--store", store)
    result = synth("generate", "-n", "shop", "--store", store)
    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.out)}
    selectors = {name: d["spec"]["podSelector"].get("matchLabels") for name, d in documents.items()}
    assert {"app": "true"} in selectors.values() and {"app": "0123"} in selectors.values()


def test_unknown_namespace_is_a_usage_error(sample_store: Path, synth: Callable[..., Run]) -> None:
    result = synth("generate", "-n", "paymnets", "--store", sample_store)
    assert result.code == 2
    assert "no traffic of namespace paymnets" in result.err and "payments" in result.err


def test_empty_store_is_a_clear_error(tmp_path: Path, synth: Callable[..., Run]) -> None:
    (tmp_path / "empty").mkdir()
    result = synth("generate", "-n", "payments", "--store", tmp_path / "empty")
    assert result.code == 3 and "no flows stored yet" in result.err and "Traceback" not in result.err


def test_window_selects_flows(sample_store: Path) -> None:
    store = Store(str(sample_store))
    everything = aggregate_store(store, Settings())
    first_day = aggregate_store(store, Settings(), until_ns=1795132800 * 10**9)  # 2026-11-20T00:00Z, mid-window
    assert 0 < sum(r.count for r in first_day.edges) < sum(r.count for r in everything.edges)


def test_selector_helpers() -> None:
    assert LabelSelector.of({"b": "2", "a": "1"}).canonical() == "a=1,b=2"


def test_namespaces_generated_one_after_another_share_the_top_kustomization(
    sample_store: Path, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    out = tmp_path / "out"
    assert synth("generate", "-n", "payments", "--store", sample_store, "--out", out).code == 0
    assert synth("generate", "-n", "shop", "--store", sample_store, "--out", out).code == 0
    top = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert top["resources"] == ["payments", "shop"] and top["sortOptions"] == {"order": "fifo"}


def test_all_namespaces_leaves_system_namespaces_out_unless_named(
    sample_store: Path, synth: Callable[..., Run], tmp_path: Path
) -> None:
    run = synth("generate", "-A", "--out", tmp_path / "all", "--store", sample_store)
    assert run.code == 0, run.err
    assert "left out system namespaces kube-system: name them with -n to generate theirs" in run.err
    assert not (tmp_path / "all" / "kube-system").exists() and (tmp_path / "all" / "payments").is_dir()
    named = synth("generate", "-A", "-n", "kube-system", "--out", tmp_path / "named", "--store", sample_store)
    assert named.code == 0 and "left out" not in named.err
    assert (tmp_path / "named" / "kube-system" / "default-deny.yaml").is_file()


def test_cluster_dns_admits_every_pod_allow_dns_lets_send(sample_store: Path, tmp_path: Path) -> None:
    """A pod not seen resolving names in the window must not lose DNS when kube-system is isolated."""
    generated = generate(Store(str(sample_store)), Settings(), namespaces=["kube-system"])
    (dns,) = [p for p in generated.synthesis.policies.in_namespace("kube-system") if p.name == "kube-dns-ingress"]
    everyone = [r for r in dns.ingress if any(p.namespace_selector == LabelSelector() and p.pod_selector is None
                                              for p in r.peers)]  # fmt: skip
    assert len(everyone) == 1
    assert sorted((p.protocol, p.port) for p in everyone[0].ports) == [("TCP", 53), ("UDP", 53)]
    assert len(everyone[0].peers) == 1  # one peer kind per rule, nothing else widened
