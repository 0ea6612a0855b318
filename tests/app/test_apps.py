"""Apps whose workloads share labels (`scripts/apps_model.py`), generated, imported and turned into policies, then
read back independently: the YAML is parsed with PyYAML and evaluated here, from upstream NetworkPolicy semantics,
against every pod seen with its real labels from the generator. The policies must allow exactly the request
connections the flows show (no observed flow denied, nothing allowed that no flow used), plus what synth allows on
purpose and reports: DNS to the cluster DNS for every pod, and public ingress where the report flags it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import ROOT

from synth.app.generation import Generated, generate
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.store.dataset import Store


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_flows", ROOT / "scripts" / "gen_flows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_flows"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
import apps_model  # noqa: E402  (the generator put scripts/ on sys.path)

Endpoint = tuple[str, str]  # (namespace, workload) of a pod, or ("world", address)
Connection = tuple[Endpoint, Endpoint, str, int]
NOT_SEEN = "192.0.2.77"  # an internet address no flow came from: only public ingress may admit it
DNS = ("kube-system", "coredns")


@dataclass(frozen=True)
class Pod:
    """A pod seen in the flows, with its labels as the generator gave them."""

    namespace: str
    name: str
    workload: str
    labels: Mapping[str, str]
    ip: str


@dataclass(frozen=True)
class AppRun:
    """One app: its namespace, the flows' observed connections, the pods seen, synth's output."""

    app: str
    namespace: str
    observed: frozenset[Connection]
    pods: tuple[Pod, ...]
    world: tuple[str, ...]
    generated: Generated

    def policies(self) -> list[dict[str, Any]]:
        documents = [yaml.safe_load(text) for name, text in sorted(self.generated.files.items())]
        return [d for d in documents if d.get("kind") == "NetworkPolicy"]

    def selectors(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p["spec"]["podSelector"] for p in self.policies()}


@pytest.fixture(scope="module")
def runs(apps_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, AppRun]:
    return {app: _run(app, apps_dir, tmp_path_factory) for app in apps_model.APPS}


@pytest.fixture(params=apps_model.APPS)
def run(request: pytest.FixtureRequest, runs: dict[str, AppRun]) -> AppRun:
    return runs[request.param]


def _run(app: str, apps_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AppRun:
    path = apps_dir / f"{app}.json"
    store = Store(str(tmp_path_factory.mktemp(f"store-{app}")))
    import_files(store, "hubble", [str(path)])
    namespace = apps_model.app_namespace(app)
    generated = generate(store, Settings(), namespaces=[namespace])
    observed, seen, world = _read_flows(path)
    model = {(p.namespace, p.name): p for p in apps_model.build_app(app).pods}
    pods = tuple(
        Pod(ns, name, model[(ns, name)].workload, dict(model[(ns, name)].labels), model[(ns, name)].ip)
        for ns, name in sorted(seen)
    )
    return AppRun(app, namespace, frozenset(observed), pods, tuple(sorted(world)), generated)


def _read_flows(path: Path) -> tuple[set[Connection], set[tuple[str, str]], set[str]]:
    """Request connections at workload level, the pods seen, and the internet addresses seen."""
    observed: set[Connection] = set()
    pods: set[tuple[str, str]] = set()
    world: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        flow = json.loads(line).get("flow")
        if flow is None:
            continue
        ends = []
        for side, address in (("source", flow["IP"]["source"]), ("destination", flow["IP"]["destination"])):
            endpoint = flow[side]
            if "pod_name" in endpoint:
                pods.add((endpoint["namespace"], endpoint["pod_name"]))
                ends.append((endpoint["namespace"], endpoint["workloads"][0]["name"]))
            else:
                world.add(address)
                ends.append(("world", address))
        if flow.get("is_reply") is False and flow["verdict"] in ("FORWARDED", "REDIRECTED", "AUDIT"):
            ((protocol, ports),) = flow["l4"].items()
            observed.add((ends[0], ends[1], protocol, ports["destination_port"]))
    return observed, pods, world


# --- the evaluator: upstream semantics, written from the API reference, not from synth --------------------------


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: matchLabels and matchExpressions ANDed; NotIn/DoesNotExist match a missing key."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        ok = {
            "In": key in labels and labels.get(key) in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class End:
    """One end of a connection: a pod (namespace, labels) or an address outside the cluster."""

    endpoint: Endpoint
    ip: str
    namespace: str | None = None
    labels: Mapping[str, str] | None = None


def peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: End) -> bool:
    if "ipBlock" in peer:
        # ipBlock is for addresses outside the cluster; whether it also matches pod IPs depends on the CNI
        # (Cilium: no), and synth's only ipBlocks are external addresses, so pods never match one here.
        if other.labels is not None:
            return False
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        networks = [ipaddress.ip_network(block["cidr"])] + [ipaddress.ip_network(c) for c in block.get("except", [])]
        inside = address.version == networks[0].version and address in networks[0]
        return inside and not any(address.version == n.version and address in n for n in networks[1:])
    if other.labels is None or other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace})
    else:
        namespace_ok = other.namespace == policy_namespace
    return namespace_ok and selects(peer.get("podSelector"), other.labels)


def ports_match(ports: Iterable[Mapping[str, Any]], protocol: str, port: int) -> bool:
    ports = list(ports)
    return not ports or any(
        p.get("protocol", "TCP") == protocol
        and (p.get("port") is None or p["port"] == port or p["port"] <= port <= p.get("endPort", p["port"]))
        for p in ports
    )


def policy_types(spec: Mapping[str, Any]) -> list[str]:
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def direction_allows(
    policies: list[dict[str, Any]], pod: End, other: End, direction: str, protocol: str, port: int
) -> bool:
    """Isolated pods admit only what some rule of a policy selecting them allows; others admit everything."""
    if pod.labels is None:
        return True
    field, peers_field = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    applying = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"].get("podSelector") or {}, pod.labels)
        and direction in policy_types(p["spec"])
    ]
    if not applying:
        return True
    return any(
        (not rule.get(peers_field) or any(peer_matches(peer, p["metadata"]["namespace"], other)
                                          for peer in rule[peers_field]))
        and ports_match(rule.get("ports") or [], protocol, port)
        for p in applying
        for rule in p["spec"].get(field) or []
    )


def allowed_connections(run: AppRun) -> tuple[set[Connection], set[Connection]]:
    """Every connection (workload level) some pod pair may make, and those some pod pair of may not."""
    policies = run.policies()
    ends = [End((p.namespace, p.workload), p.ip, p.namespace, p.labels) for p in run.pods]
    ends += [End(("world", ip), ip) for ip in (*run.world, NOT_SEEN)]
    ports = {(protocol, port) for _, _, protocol, port in run.observed} | {("UDP", 53), ("TCP", 53)}
    allowed: set[Connection] = set()
    denied: set[Connection] = set()
    for src in ends:
        for dst in ends:
            if src is dst or run.namespace not in (src.namespace, dst.namespace):
                continue  # only connections with a pod of the app's namespace at one end
            for protocol, port in sorted(ports):
                ok = direction_allows(policies, src, dst, "Egress", protocol, port) and direction_allows(
                    policies, dst, src, "Ingress", protocol, port
                )
                (allowed if ok else denied).add((src.endpoint, dst.endpoint, protocol, port))
    return allowed, denied


def on_purpose(run: AppRun) -> set[Connection]:
    """What synth allows beyond the flows and says so: DNS for every pod, and the ports its report calls public."""
    workloads = {(p.namespace, p.workload) for p in run.pods if p.namespace == run.namespace}
    extra = {(w, DNS, protocol, 53) for w in workloads for protocol in ("UDP", "TCP")}
    for finding in run.generated.synthesis.findings:
        if finding.kind == "public-exposure":
            namespace, _, workload = finding.subject.partition("/")
            protocol, port = finding.detail.split(" ")[:2]
            target = (namespace, workload.partition("/")[2])
            extra |= {(("world", ip), target, protocol, int(port)) for ip in (*run.world, NOT_SEEN)}
    return extra


# --- the tests -----------------------------------------------------------------------------------------------------


def test_the_policies_allow_exactly_what_was_observed(run: AppRun) -> None:
    allowed, denied = allowed_connections(run)
    observed = {c for c in run.observed if run.namespace in (c[0][0], c[1][0])}
    assert observed, run.app
    assert sorted(observed - allowed) == [], "observed connections the policies deny"
    assert sorted(allowed - observed - on_purpose(run)) == [], "connections allowed that no flow made"
    # and every pod of a workload is treated alike: no pod is left out of a connection its workload made
    assert sorted(allowed & denied) == [], "connections allowed for some pods of a workload and denied for others"
    assert not [f for f in run.generated.synthesis.findings if f.kind == "inseparable"]
    assert run.generated.verification.ok
    assert run.generated.verification.over_permissive == ()  # synth's own second half agrees


def test_tiered_app_selectors(runs: dict[str, AppRun]) -> None:
    run = runs["tiered"]
    selectors = run.selectors()
    tier = {"app": "retail"}
    assert selectors == {
        "allow-dns": {},
        "default-deny": {},
        "retail-web-ingress": {"matchLabels": {**tier, "tier": "web"}},
        "retail-web-egress": {"matchLabels": {**tier, "tier": "web"}},
        "retail-api-ingress": {
            "matchLabels": {**tier, "tier": "api"},
            "matchExpressions": [{"key": "track", "operator": "DoesNotExist"}],
        },
        "retail-api-egress": {
            "matchLabels": {**tier, "tier": "api"},
            "matchExpressions": [{"key": "track", "operator": "DoesNotExist"}],
        },
        "retail-canary-ingress": {"matchLabels": {**tier, "track": "canary"}},
        "retail-canary-egress": {"matchLabels": {**tier, "track": "canary"}},
        "retail-worker-egress": {"matchLabels": {**tier, "tier": "worker"}},
        "retail-cache-ingress": {"matchLabels": {**tier, "tier": "cache"}},
        "retail-db-ingress": {"matchLabels": {**tier, "tier": "db"}},
    }
    public = [f for f in run.generated.synthesis.findings if f.kind == "public-exposure"]
    assert [(f.subject, f.detail.split(":")[0]) for f in public] == [
        ("retail/Deployment/web", "TCP 8080 is open to any address")
    ]


def test_version_split_app_selectors(runs: dict[str, AppRun]) -> None:
    run = runs["versions"]
    selectors = run.selectors()
    assert selectors["ratings-ingress"] == {"matchLabels": {"app": "ratings"}}
    for version in ("v1", "v2", "v3"):
        assert selectors[f"reviews-{version}-ingress"] == {"matchLabels": {"app": "reviews", "version": version}}
    assert "reviews-v1-egress" not in selectors  # reviews-v1 calls nobody
    ratings = next(p for p in run.policies() if p["metadata"]["name"] == "ratings-ingress")
    peers = [peer["podSelector"] for rule in ratings["spec"]["ingress"] for peer in rule["from"]]
    assert peers == [
        {"matchLabels": {"app": "reviews", "version": "v2"}},
        {"matchLabels": {"app": "reviews", "version": "v3"}},
    ]


def test_rollout_app_selector_leaves_version_out(runs: dict[str, AppRun]) -> None:
    run = runs["rollout"]
    versions = {p.labels.get("version") for p in run.pods if p.workload == "orders"}
    assert versions == {"1.0", "1.1"}  # both ReplicaSets were seen
    selectors = run.selectors()
    orders = {"matchLabels": {"app": "orders"}, "matchExpressions": [{"key": "component", "operator": "DoesNotExist"}]}
    assert selectors["orders-ingress"] == selectors["orders-egress"] == orders
    assert selectors["orders-worker-egress"] == {"matchLabels": {"app": "orders", "component": "worker"}}
    assert all("version" not in json.dumps(s) for s in selectors.values())


def test_apps_are_deterministic_and_leave_the_sample_alone(apps_dir: Path, tmp_path: Path) -> None:
    assert gen.main(["apps", "--out", str(tmp_path)]) == 0
    for app in apps_model.APPS:
        assert (tmp_path / f"{app}.json").read_bytes() == (apps_dir / f"{app}.json").read_bytes(), app
    assert not (ROOT / "sample_flows" / "tiered.json").exists()
