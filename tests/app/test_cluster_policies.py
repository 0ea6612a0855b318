"""The cluster's CiliumNetworkPolicies and Calico (Staged)NetworkPolicies beside its NetworkPolicies: listed
page by page, per namespace or across all, with the meaning they have in files; a resource the cluster does
not serve is left out silently, one the credentials may not list is an error with the RBAC hint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import FakeAPIServer, kubeconfig, serving

from synth.app.cluster import load_cluster
from synth.app.deployed import LoadResult, load_policies
from synth.base.errors import InputError

NETWORKPOLICIES = "/apis/networking.k8s.io/v1/networkpolicies"
CILIUM = "/apis/cilium.io/v2/ciliumnetworkpolicies"
CALICO = "/apis/projectcalico.org/v3/networkpolicies"
STAGED = "/apis/projectcalico.org/v3/stagednetworkpolicies"
SHOP_NETWORKPOLICIES = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
SHOP_CILIUM = "/apis/cilium.io/v2/namespaces/shop/ciliumnetworkpolicies"
SHOP_CALICO = "/apis/projectcalico.org/v3/namespaces/shop/networkpolicies"
SHOP_STAGED = "/apis/projectcalico.org/v3/namespaces/shop/stagednetworkpolicies"
DISCOVERY = ["/apis/cilium.io/v2", "/apis/projectcalico.org/v3"]
ITEM_TYPES = {  # collection -> (apiVersion, kind) of its items
    NETWORKPOLICIES: ("networking.k8s.io/v1", "NetworkPolicy"),
    CILIUM: ("cilium.io/v2", "CiliumNetworkPolicy"),
    CALICO: ("projectcalico.org/v3", "NetworkPolicy"),
    STAGED: ("projectcalico.org/v3", "StagedNetworkPolicy"),
}


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "resourceVersion": "4711",
            "generation": 1, "creationTimestamp": "2026-07-01T10:00:00Z"}  # fmt: skip


def api_netpol(name: str, namespace: str, port: int) -> dict[str, Any]:
    """A NetworkPolicy as the API server lists it: no kind, defaulted fields."""
    return {"metadata": _metadata(name, namespace), "spec": {
        "podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"protocol": "TCP", "port": port}]}],
    }}  # fmt: skip


def api_cnp(name: str, namespace: str, port: int) -> dict[str, Any]:
    """A CiliumNetworkPolicy as the API server lists a custom resource: kind, apiVersion, a status."""
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": _metadata(name, namespace),
            "spec": {"endpointSelector": {"matchLabels": {"app": name}},
                     "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                                  "toPorts": [{"ports": [{"port": str(port), "protocol": "TCP"}]}]}]},
            "status": {"conditions": [{"type": "Valid", "status": "True"}]}}  # fmt: skip


def api_calico(name: str, namespace: str, port: int, staged: bool = False) -> dict[str, Any]:
    """A Calico (Staged)NetworkPolicy as the Calico API server lists it: no kind, tier (and stagedAction) set."""
    spec: dict[str, Any] = {
        "tier": "default", "selector": f"app == '{name}'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'client'"},
                     "destination": {"ports": [port]}}],
    }  # fmt: skip
    if staged:
        spec["stagedAction"] = "Set"
    return {"metadata": _metadata(name, namespace), "spec": spec}


@pytest.fixture
def cluster() -> Iterator[FakeAPIServer]:
    """Each kind across all namespaces (two pages but for the one staged policy) and in `shop`, where all
    four kinds have a `web`."""
    fake = FakeAPIServer(collections={
        NETWORKPOLICIES: [api_netpol("web", "shop", 80)],
        CILIUM: [api_cnp("api", "payments", 8443), api_cnp("web", "shop", 443)],
        CALICO: [api_calico("db", "shop", 5432), api_calico("web", "shop", 8080)],
        STAGED: [api_calico("web", "shop", 8081, staged=True)],
        SHOP_NETWORKPOLICIES: [api_netpol("web", "shop", 80)],
        SHOP_CILIUM: [api_cnp("web", "shop", 443)],
        SHOP_CALICO: [api_calico("web", "shop", 8080)],
        SHOP_STAGED: [api_calico("web", "shop", 8081, staged=True)],
    })  # fmt: skip
    with serving(fake):
        yield fake


def kinds(result: LoadResult) -> list[tuple[str, str, str]]:
    return [(p.namespace, p.name, p.kind) for p in result.policies.policies]


def test_all_namespaces_page_by_page(tmp_path: Path, cluster: FakeAPIServer) -> None:
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, None)
    assert kinds(result) == [
        ("payments", "api", "CiliumNetworkPolicy"),
        ("shop", "db", "Calico NetworkPolicy"),
        ("shop", "web", "Calico NetworkPolicy"),
        ("shop", "web", "Calico StagedNetworkPolicy"),
        ("shop", "web", "CiliumNetworkPolicy"),
        ("shop", "web", "NetworkPolicy"),
    ]
    assert result.documents == 6
    assert [p.origin for p in result.policies.policies if p.name == "web"] == [
        f"{cluster.url}/apis/projectcalico.org/v3/namespaces/shop/networkpolicies/web",
        f"{cluster.url}/apis/projectcalico.org/v3/namespaces/shop/stagednetworkpolicies/web",
        f"{cluster.url}/apis/cilium.io/v2/namespaces/shop/ciliumnetworkpolicies/web",
        f"{cluster.url}/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/web",
    ]
    assert cluster.paths() == [
        (DISCOVERY[0], None, None),
        (DISCOVERY[1], None, None),
        (NETWORKPOLICIES, None, ["500"]),
        (CILIUM, None, ["500"]),
        (CILIUM, ["page-2"], ["500"]),
        (CALICO, None, ["500"]),
        (CALICO, ["page-2"], ["500"]),
        (STAGED, None, ["500"]),
    ]


def test_one_namespace(tmp_path: Path, cluster: FakeAPIServer) -> None:
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, ["shop"])
    assert kinds(result) == [
        ("shop", "web", "Calico NetworkPolicy"),
        ("shop", "web", "Calico StagedNetworkPolicy"),
        ("shop", "web", "CiliumNetworkPolicy"),
        ("shop", "web", "NetworkPolicy"),
    ]
    assert [path for path, _, _ in cluster.paths()] == [
        *DISCOVERY, SHOP_NETWORKPOLICIES, SHOP_CILIUM, SHOP_CALICO, SHOP_STAGED
    ]


def test_the_same_meaning_as_from_files(tmp_path: Path, cluster: FakeAPIServer) -> None:
    """The objects written to a file with their kind load into the same policies, but for their origin."""
    documents = [{**item, "apiVersion": api_version, "kind": kind}
                 for path, (api_version, kind) in ITEM_TYPES.items() for item in cluster.collections[path]]  # fmt: skip
    file = tmp_path / "deployed.yaml"
    file.write_text(yaml.safe_dump_all(documents))
    from_file = load_policies([str(file)])
    from_cluster = load_cluster(kubeconfig(tmp_path, cluster.url), None, None)
    assert from_file.loaded == from_cluster.loaded == 6
    assert [replace(p, origin="") for p in from_cluster.policies.policies] == [
        replace(p, origin="") for p in from_file.policies.policies
    ]


def test_a_staged_policy_beside_the_calico_policy_of_its_name_is_named(tmp_path: Path, cluster: FakeAPIServer) -> None:
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, ["shop"])
    prefix = f"{cluster.url}/apis/projectcalico.org/v3/namespaces/shop"
    assert result.warnings == (
        f"{prefix}/stagednetworkpolicies/web (shop/web): the Calico StagedNetworkPolicy stands in for the Calico "
        f"NetworkPolicy of its name ({prefix}/networkpolicies/web): traffic is judged as if it were applied",
    )


def test_not_installed_is_left_out_silently(tmp_path: Path) -> None:
    """Not installed (discovery of cilium.io answers 404, that of projectcalico.org names no staged policies):
    nothing of it is listed; a collection that answers 404 all the same (discovery named it) has nothing."""
    fake = FakeAPIServer(collections={NETWORKPOLICIES: [api_netpol("web", "shop", 80)],
                                      CALICO: [api_calico("web", "shop", 8080)]},
                         status={CALICO: 404})  # fmt: skip
    with serving(fake):
        result = load_cluster(kubeconfig(tmp_path, fake.url), None, None)
    assert (kinds(result), result.warnings) == ([("shop", "web", "NetworkPolicy")], ())
    assert [path for path, _, _ in fake.paths()] == [*DISCOVERY, NETWORKPOLICIES, CALICO]
    assert fake.answer(DISCOVERY[0], {})[0] == 404


def test_a_failed_discovery_lists_all_the_same(tmp_path: Path, cluster: FakeAPIServer) -> None:
    cluster.status[DISCOVERY[0]] = 503
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, ["shop"])
    assert ("shop", "web", "CiliumNetworkPolicy") in kinds(result)


HINT = "the credentials need `list` on {rbac} (try `kubectl auth can-i list {name} {scope}`)"
REFUSED = [
    (CILIUM, 403, None, "listing CiliumNetworkPolicies failed: HTTP 403 Forbidden; " + HINT.format(
        rbac="ciliumnetworkpolicies.cilium.io", name="ciliumnetworkpolicies.cilium.io", scope="-A")),
    (SHOP_CALICO, 403, ["shop"], "listing Calico NetworkPolicies failed: HTTP 403 Forbidden; " + HINT.format(
        rbac="networkpolicies.projectcalico.org", name="networkpolicies.projectcalico.org", scope="-n shop")),
    (STAGED, 401, None, "listing Calico StagedNetworkPolicies failed: HTTP 401 Unauthorized; " + HINT.format(
        rbac="stagednetworkpolicies.projectcalico.org", name="stagednetworkpolicies.projectcalico.org", scope="-A")),
    (SHOP_NETWORKPOLICIES, 403, ["shop"], "listing NetworkPolicies failed: HTTP 403 Forbidden; " + HINT.format(
        rbac="networkpolicies.networking.k8s.io", name="networkpolicies", scope="-n shop")),
    (CALICO, 503, None, "listing Calico NetworkPolicies failed: HTTP 503 Service Unavailable"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "status", "namespaces", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_is_an_error_with_a_hint(
    tmp_path: Path, cluster: FakeAPIServer, path: str, status: int, namespaces: list[str] | None, message: str
) -> None:
    cluster.status[path] = status
    with pytest.raises(InputError) as e:
        load_cluster(kubeconfig(tmp_path, cluster.url), None, namespaces)
    assert str(e.value) == f"{cluster.url}: {message}"


CLUSTERWIDE = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
GLOBAL = "/apis/projectcalico.org/v3/globalnetworkpolicies"


def test_cluster_wide_policies_in_force_are_said_not_read(tmp_path: Path, cluster: FakeAPIServer) -> None:
    """Two CiliumClusterwideNetworkPolicies (two pages) are counted and named in a warning; Calico's
    GlobalNetworkPolicies, that the credentials may not list, are said unknown; neither becomes a policy."""
    cluster.collections[CLUSTERWIDE] = [{"metadata": {"name": "deny-all"}, "spec": {"endpointSelector": {}}},
                                        {"metadata": {"name": "dns"}, "spec": {"endpointSelector": {}}}]
    cluster.status[GLOBAL] = 403
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, ["shop"])
    assert ("shop", "web", "CiliumNetworkPolicy") in kinds(result)
    assert result.warnings[:2] == (
        f"{cluster.url}: 2 CiliumClusterwideNetworkPolicies in force, not read: synth judges namespaced policies "
        "only, so its verdicts leave them out (`kubectl get ciliumclusterwidenetworkpolicies.cilium.io`)",
        f"{cluster.url}: listing Calico GlobalNetworkPolicies failed: HTTP 403 Forbidden; the credentials need `list` "
        "on globalnetworkpolicies.projectcalico.org (try `kubectl auth can-i list "
        "globalnetworkpolicies.projectcalico.org -A`); any Calico GlobalNetworkPolicies in force are not known to "
        "synth",
    )
    assert [path for path, _, _ in cluster.paths()].count(CLUSTERWIDE) == 2


def test_no_cluster_wide_policies_no_warning(tmp_path: Path, cluster: FakeAPIServer) -> None:
    cluster.collections[CLUSTERWIDE] = []
    result = load_cluster(kubeconfig(tmp_path, cluster.url), None, ["shop"])
    assert not [w for w in result.warnings if "Clusterwide" in w]
