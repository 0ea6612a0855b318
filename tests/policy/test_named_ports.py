"""Named ports resolved on the observed pods, from workload manifests or the cluster's pods: which
workload describes which pod, disagreements left unresolved with their reason, and what verify, the
diff and the check of unobserved allowances make of deployed policies that name their ports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Run
from kubeapi import FakeAPIServer, api_pod, kubeconfig, serving
from test_verify import batch, flow, netpol, pod, policies, write_policies

from synth.app import generation as pipeline
from synth.base.config import Settings
from synth.core.model import ContainerPort, PolicySet, Workload, WorkloadSource
from synth.policy.evaluate import Engine
from synth.policy.observed import Observed, observe_batches
from synth.policy.ports import NamedPortReport, attach_named_ports
from synth.policy.verify import VerifyResult, verify
from synth.render.checks import named_ports_text
from synth.store.dataset import Store

WEB = pod("x", "web-7d4b9c-x7k2p", "10.0.1.1", app="web", **{"pod-template-hash": "7d4b9c"})
API = pod("x", "api-5f6c7d-ccccc", "10.0.1.3", app="api", **{"pod-template-hash": "5f6c7d"})
PROM = pod("mon", "prom-0", "10.0.2.1", app="prom")


def flows() -> list[dict[str, Any]]:
    """web → api on its `http` port (8080) and on 8081, which no name stands for; a scrape of `metrics`."""
    return [*(flow(WEB, API, 8080) for _ in range(3)), flow(PROM, API, 9090), flow(WEB, API, 8081, count=2)]


def observed() -> Observed:
    return observe_batches([batch(flows())], Settings())


DENY = netpol("deny-ingress", "x", {"podSelector": {}, "policyTypes": ["Ingress"]})
API_HTTP = netpol("api-http", "x", {
    "podSelector": {"matchLabels": {"app": "api"}},
    "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}, {"port": "admin"}]},
    ],
})  # fmt: skip
API_METRICS = netpol("api-metrics", "x", {
    "podSelector": {"matchLabels": {"app": "api"}},
    "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics"}]}],
})  # fmt: skip
DEPLOYED = (DENY, API_HTTP, API_METRICS)


def deployment(name: str, labels: dict[str, str], ports: list[dict[str, Any]], namespace: str = "x") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "ports": ports}]}}},
    }


API_DEPLOYMENT = deployment("api", {"app": "api"}, [
    {"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090},
    {"name": "admin", "containerPort": 7000},
])  # fmt: skip
CANARY = deployment("api-canary", {"app": "api"}, [
    {"name": "http", "containerPort": 8081}, {"name": "metrics", "containerPort": 9090},
])  # fmt: skip


def workload(kind: str, labels: dict[str, str], ports: dict[str, int], *, name: str = "w", namespace: str = "x",
             source: WorkloadSource = "manifests") -> Workload:  # fmt: skip
    named = tuple(ContainerPort(n, p) for n, p in sorted(ports.items()))
    return Workload(kind, namespace, name, tuple(sorted(labels.items())), named, source, f"{name}.yaml#1")


def run(deployed: PolicySet, *workloads: Workload) -> VerifyResult:
    resolved, report = attach_named_ports(observed(), workloads, deployed)
    return verify(resolved, deployed, ["x"], named_ports=report)


def from_manifests(*manifests: dict[str, Any]) -> tuple[Workload, ...]:
    from synth.policy.workloads import workload_from_object

    return tuple(workload_from_object(m, f"m.yaml#{i}") for i, m in enumerate(manifests, 1))


def api_ports(result: Observed) -> tuple[Any, Any]:
    end = next(p.traffic.dst for p in result.pairs if p.dst.selector == "app=api")
    return end.named_ports, end.unresolved_ports


# --- which workload describes which pod --------------------------------------------------------------


MATCHING = [
    ("a Deployment whose template labels the pod carries", workload("Deployment", {"app": "api"}, {"http": 8080}),
     {"http": (8080, "TCP")}),
    ("a template label the pod lacks", workload("Deployment", {"app": "api", "tier": "db"}, {"http": 8080}), None),
    ("another namespace", workload("Deployment", {"app": "api"}, {"http": 8080}, namespace="y"), None),
    ("no labels describe no pod", workload("Job", {}, {"http": 8080}), None),
    ("a cluster pod carrying all the recorded labels (and more)",
     workload("Pod", {"app": "api", "pod-template-hash": "5f6c7d", "extra": "1"}, {"http": 8080}, source="cluster"),
     {"http": (8080, "TCP")}),
    ("a cluster pod with fewer labels than recorded is another pod",
     workload("Pod", {"app": "api"}, {"http": 8080}, source="cluster"), None),
    ("a Pod manifest with fewer labels (admission adds some)", workload("Pod", {"app": "api"}, {"http": 8080}),
     {"http": (8080, "TCP")}),
    ("known ports without the name", workload("Deployment", {"app": "api"}, {}), {}),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), [c[1:] for c in MATCHING], ids=[c[0] for c in MATCHING])
def test_which_workload_describes_the_pod(given: Workload, expected: dict[str, Any] | None) -> None:
    resolved, _ = attach_named_ports(observed(), [given], policies(*DEPLOYED))
    assert api_ports(resolved) == (expected, None)


def test_workloads_that_disagree_leave_the_name_unresolved_and_say_why() -> None:
    resolved, report = attach_named_ports(observed(), from_manifests(API_DEPLOYMENT, CANARY), policies(*DEPLOYED))
    named, unresolved = api_ports(resolved)
    assert named == {"metrics": (9090, "TCP")}
    assert unresolved == {
        "admin": "the workloads that match the pod disagree: TCP/7000 in Deployment x/api; no such port in "
        "Deployment x/api-canary",
        "http": "the workloads that match the pod disagree: TCP/8080 in Deployment x/api; TCP/8081 in "
        "Deployment x/api-canary",
    }
    assert report == NamedPortReport(resolved=(("manifests", 1),), conflicting=2)


def test_two_containers_of_one_pod_that_disagree() -> None:
    manifest = API_DEPLOYMENT | {"spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
        "containers": [{"name": "a", "ports": [{"name": "http", "containerPort": 8080}]}],
        "initContainers": [{"name": "b", "ports": [{"name": "http", "containerPort": 8443}]}],
    }}}}  # fmt: skip
    resolved, _ = attach_named_ports(observed(), from_manifests(manifest), policies(*DEPLOYED))
    assert api_ports(resolved)[1] == {
        "http": "the workloads that match the pod disagree: TCP/8080 in Deployment x/api; TCP/8443 in Deployment x/api"
    }


def test_the_pods_of_one_replica_set_are_named_as_one() -> None:
    pods = [workload("Pod", {"app": "api", "pod-template-hash": "5f6c7d"}, {"http": 8080}, name=f"api-{i}",
                     source="cluster") for i in range(3)]  # fmt: skip
    other = workload("Pod", {"app": "api", "pod-template-hash": "5f6c7d", "v": "2"}, {"http": 8081},
                     name="api-v2", source="cluster")  # fmt: skip
    resolved, report = attach_named_ports(observed(), [*pods, other], policies(*DEPLOYED))
    assert api_ports(resolved)[1] == {
        "http": "the workloads that match the pod disagree: TCP/8080 in Pod x/api-0 and 2 more pods; "
        "TCP/8081 in Pod x/api-v2",
    }
    assert report == NamedPortReport(conflicting=1, undeclared=2)  # admin and metrics: declared by none


def test_counted_are_the_names_rules_may_ask_of_each_destination() -> None:
    """Ingress rules of the policies that select the pod, and every egress rule (its peer may be the pod)."""
    elsewhere = netpol("prom", "mon", {"podSelector": {}, "ingress": [{"ports": [{"port": "scrape"}]}],
                                       "egress": [{"ports": [{"port": "http"}]}]})  # fmt: skip
    api = workload("Deployment", {"app": "api"}, {"http": 8080, "scrape": 9000})
    _, report = attach_named_ports(observed(), [api], policies(DENY, elsewhere))
    assert report == NamedPortReport(resolved=(("manifests", 1),))  # http on x/api; mon's `scrape` is not its


def test_nothing_changes_when_no_rule_names_a_port() -> None:
    before = observed()
    after, report = attach_named_ports(before, [workload("Deployment", {"app": "api"}, {"http": 8080})],
                                       policies(DENY))  # fmt: skip
    assert after is before and report == NamedPortReport()


# --- verify ------------------------------------------------------------------------------------------


def test_a_manifest_lets_verify_judge_named_port_rules_with_reasons() -> None:
    deployed = policies(*DEPLOYED)
    result = run(deployed, *from_manifests(API_DEPLOYMENT))
    assert (result.allowed_flows, result.denied_flows, result.unjudged_flows) == (4, 2, 0)
    resolved, _ = attach_named_ports(observed(), from_manifests(API_DEPLOYMENT), deployed)
    engine = Engine(deployed)
    reasons = {(p.src.selector, p.traffic.port): engine.evaluate(p.traffic).ingress.reason for p in resolved.pairs}
    assert reasons[("app=web", 8080)] == "allowed by x/api-http ingress[0]"
    assert reasons[("app=prom", 9090)] == "allowed by x/api-metrics ingress[0]"
    (denied,) = result.denied
    assert denied.line() == "x/app=web -> x/app=api TCP/8081"
    assert denied.reasons == (
        "ingress denied: pod x/{app=api} is isolated for ingress by x/api-http, "
        "x/api-metrics, x/deny-ingress and no rule allows TCP/8081 from pod x/{app=web} "
        "(its named ports: admin is TCP/7000, http is TCP/8080, metrics is TCP/9090)",
    )
    # 3 names the rules use (admin, http, metrics) on the one destination pod
    assert result.named_ports == NamedPortReport(resolved=(("manifests", 3),))
    assert named_ports_text(result.named_ports) == (
        "named ports (per destination pod and port name the rules use): 3 resolved from workload manifests"
    )
    assert result.summary() == (
        "verify: 2 observed flows denied, 0 unjudged; 5 connections allowed that no flow used"
    )


def test_without_a_manifest_named_port_rules_leave_the_flows_unjudged() -> None:
    result = run(policies(*DEPLOYED))
    assert (result.allowed_flows, result.denied_flows, result.unjudged_flows) == (0, 0, 6)
    assert result.unjudged_by_category() == (("named-port", 6),)
    assert {reason for edge in result.unjudged for reason in edge.reasons} == {
        "ingress unknown: named port 'http': container ports of pod x/{app=api} unknown",
        "ingress unknown: named port 'metrics': container ports of pod x/{app=api} unknown",
    }
    assert result.named_ports == NamedPortReport(unknown=3) and named_ports_text(result.named_ports) == ""
    assert result.summary() == (
        "verify: 0 observed flows denied, 6 unjudged (named-port); 2 connections allowed that no flow used"
    )


def test_disagreeing_workloads_leave_only_the_contested_name_unjudged() -> None:
    result = run(policies(*DEPLOYED), *from_manifests(API_DEPLOYMENT, CANARY))
    assert (result.allowed_flows, result.denied_flows, result.unjudged_flows) == (1, 0, 5)  # the scrape is judged
    assert [(e.line(), e.category) for e in result.unjudged] == [
        ("x/app=web -> x/app=api TCP/8080", "named-port"),
        ("x/app=web -> x/app=api TCP/8081", "named-port"),
    ]
    assert result.unjudged[0].reasons == (
        "ingress unknown: named port 'http' of pod x/{app=api} unresolved: the workloads "
        "that match the pod disagree: TCP/8080 in Deployment x/api; TCP/8081 in Deployment x/api-canary",
    )
    assert result.summary().startswith("verify: 0 observed flows denied, 5 unjudged (named-port);")


def test_unobserved_connections_on_named_ports_are_checked() -> None:
    """The candidates carry the pods' named ports too, and the ports names stand for are tried."""
    def ingress(result: VerifyResult) -> list[tuple[str, tuple[str, ...]]]:
        return [(a.line(), a.rules) for a in result.over_permissive if a.dst.kind == "pod"]  # no egress policies

    assert ingress(run(policies(*DEPLOYED), *from_manifests(API_DEPLOYMENT))) == [
        ("x/api -> x/api TCP/9090", ("x/api-metrics ingress[0]",)),
        ("x/web -> x/api TCP/7000", ("x/api-http ingress[0]",)),  # `admin`: no flow reached 7000
        ("x/web -> x/api TCP/9090", ("x/api-metrics ingress[0]",)),
    ]
    assert ingress(run(policies(*DEPLOYED))) == []  # unknown ports: nothing can be said


# --- the diff against deployed policies ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    writer = Store(str(path)).writer({"source": "test"})
    writer.write(batch(flows()))
    writer.close()
    return path


def test_the_diff_replays_named_port_rules_with_the_manifests(store: Path) -> None:
    deployed = policies(*DEPLOYED)
    with_manifest = pipeline.generate(Store(str(store)), Settings(), namespaces=["x"], deployed=deployed,
                                      workloads=from_manifests(API_DEPLOYMENT))  # fmt: skip
    without = pipeline.generate(Store(str(store)), Settings(), namespaces=["x"], deployed=deployed)
    assert with_manifest.diff is not None and without.diff is not None

    def changes(result: Any) -> dict[str, str]:
        return {c.line(): c.change for c in result.connectivity}

    assert changes(without.diff) == {
        "x/app=web -> x/app=api TCP/8080": "changed-unjudged",
        "x/app=web -> x/app=api TCP/8081": "changed-unjudged",
        "mon/app=prom -> x/app=api TCP/9090": "changed-unjudged",
    }
    assert changes(with_manifest.diff) == {
        "x/app=web -> x/app=api TCP/8080": "unchanged",
        "x/app=web -> x/app=api TCP/8081": "newly-allowed",  # denied today: not the `http` port
        "mon/app=prom -> x/app=api TCP/9090": "unchanged",
    }
    assert with_manifest.diff.named_ports == NamedPortReport(resolved=(("manifests", 3),))
    # the scrape port (9090) is open to every pod today: that shows only when `metrics` is known to be 9090
    assert [c.line() for c in with_manifest.diff.surface] == [
        "x/app=api -> x/app=api TCP/9090",
        "x/app=web -> x/app=api TCP/9090",
    ]
    assert without.diff.surface == ()


# --- the CLI -------------------------------------------------------------------------------------------


def test_verify_command_reads_the_manifests_beside_the_policies(
    synth: Callable[..., Run], store: Path, tmp_path: Path
) -> None:
    judged = synth("verify", "--policies", write_policies(tmp_path / "all.yaml", *DEPLOYED, API_DEPLOYMENT),
                   "--store", store)  # fmt: skip
    assert judged.code == 1  # 8081 is denied
    assert judged.out.splitlines()[:3] == [
        "replayed 6 observed request flows (all namespaces) through 3 policies: 4 allowed, 2 denied, 0 unjudged",
        "named ports (per destination pod and port name the rules use): 3 resolved from workload manifests",
        "DENIED: 1 edges, 2 flows",
    ]
    assert judged.err == ""  # the Deployment is read, not skipped
    document = json.loads(synth("verify", "--policies", tmp_path / "all.yaml", "-o", "json", "--store", store).out)
    assert document["named_ports"] == {"conflicting": 0, "resolved": {"manifests": 3}, "undeclared": 0, "unknown": 0}
    unjudged = synth("verify", "--policies", write_policies(tmp_path / "p.yaml", *DEPLOYED), "--store", store)
    assert unjudged.code == 0
    assert "named ports" not in unjudged.out.splitlines()[1]
    assert unjudged.out.endswith(
        "verify: 0 observed flows denied, 6 unjudged (named-port); 4 connections allowed that no flow used\n"
    )


def test_a_malformed_manifest_is_an_error_naming_the_field(
    synth: Callable[..., Run], store: Path, tmp_path: Path
) -> None:
    bad = deployment("api", {"app": "api"}, [{"name": "http", "containerPort": "8080"}])
    path = write_policies(tmp_path / "bad.yaml", *DEPLOYED, bad)
    run = synth("verify", "--policies", path, "--store", store)
    assert run.code == 3 and run.out == ""
    assert run.err == (
        f"synth: error: {path}#4 (Deployment x/api): spec.template.spec.containers[0].ports[0].containerPort: "
        "must be a number, got str '8080'\n"
    )


def test_verify_takes_policies_from_files_or_the_cluster(synth: Callable[..., Run], store: Path) -> None:
    neither = synth("verify", "--store", store)
    assert neither.code == 2 and "give the policies either as files (--policies PATH) or with --cluster" in neither.err
    both = synth("verify", "--policies", "p.yaml", "--cluster", "--store", store)
    assert both.code == 2


def _api_policy(manifest: dict[str, Any]) -> dict[str, Any]:
    """A policy as the API server lists it: no kind, `policyTypes` defaulted."""
    spec = {"policyTypes": ["Ingress"], **manifest["spec"]}
    return {"metadata": {**manifest["metadata"], "uid": manifest["metadata"]["name"]}, "spec": spec}


@pytest.fixture
def cluster() -> Iterator[FakeAPIServer]:
    """Namespace x: the deployed policies, and its pods over two pages."""
    labels = {"app": "api", "pod-template-hash": "5f6c7d"}
    fake = FakeAPIServer(collections={
        "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies": [_api_policy(p) for p in DEPLOYED],
        "/api/v1/namespaces/x/pods": [
            api_pod("api-5f6c7d-ccccc", "x", labels, [{"name": "http", "containerPort": 8080}],
                    init_ports=[{"name": "metrics", "containerPort": 9090}]),
            api_pod("web-7d4b9c-x7k2p", "x", {"app": "web", "pod-template-hash": "7d4b9c"}, []),
        ],
    })  # fmt: skip
    with serving(fake):
        yield fake


def test_verify_cluster_resolves_named_ports_on_the_clusters_pods(
    synth: Callable[..., Run], store: Path, tmp_path: Path, cluster: FakeAPIServer
) -> None:
    config = kubeconfig(tmp_path, cluster.url)
    run = synth("verify", "--cluster", "--kubeconfig", config, "--context", "test", "-n", "x", "--store", store)
    assert run.code == 1, run.err
    assert run.out.splitlines()[:2] == [
        "replayed 6 observed request flows (x) through 3 policies: 4 allowed, 2 denied, 0 unjudged",
        "named ports (per destination pod and port name the rules use): 2 resolved from the cluster's pods; "
        "1 not declared by the pod",
    ]
    assert [path for path, _, _ in cluster.paths()] == [
        "/apis/cilium.io/v2",  # discovery: not installed
        "/apis/projectcalico.org/v3",
        "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies",
        "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies",
        "/apis/networking.k8s.io/v1/namespaces/x/networkpolicies",
        "/api/v1/namespaces/x/pods",
        "/api/v1/namespaces/x/pods",
    ]


def test_diff_generate_and_report_show_what_was_resolved(
    synth: Callable[..., Run], store: Path, tmp_path: Path
) -> None:
    path = write_policies(tmp_path / "all.yaml", *DEPLOYED, API_DEPLOYMENT)
    run = synth("diff", "-n", "x", "--deployed", path, "--store", store)
    assert run.code == 1
    assert (
        "deployed named ports (per destination pod and port name the rules use): 3 resolved from workload manifests"
    ) in run.out.splitlines()
    generate = synth("generate", "-n", "x", "--deployed", path, "--store", store)
    assert generate.code == 0
    assert (
        "deployed named ports (per destination pod and port name the rules use): 3 resolved from workload manifests"
    ) in generate.err.splitlines()
    report = synth("report", "-n", "x", "--deployed", path, "--store", store)
    assert report.code == 0
    assert (
        "Deployed named ports (per destination pod and port name the rules use): 3 resolved from workload manifests."
    ) in report.out.splitlines()


def test_the_pr_counts_what_stays_unjudged(synth: Callable[..., Run], store: Path, tmp_path: Path) -> None:
    path = write_policies(tmp_path / "policies.yaml", *DEPLOYED)
    report = synth("report", "-n", "x", "--deployed", path, "--store", store)
    assert report.code == 0
    assert "0 newly blocked, 0 newly allowed, 3 changed but not judged, 0 unchanged." in report.out
    assert "Deployed named ports" not in report.out
    row = next(line for line in report.out.splitlines() if line.startswith("| x/web | x/api | TCP 8080 |"))
    assert "| ingress unknown: named port 'http': container ports of pod x/{app=api} " in row
