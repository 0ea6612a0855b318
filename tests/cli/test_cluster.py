"""`synth verify --cluster` end to end: the deployed policy is a CiliumNetworkPolicy, or a Calico policy with
a staged one of its name, listed from a fake API server through a kubeconfig."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Run
from flowbuilder import Pod, flow, write
from kubeapi import FakeAPIServer, kubeconfig, serving

from synth.app.ingest import import_files
from synth.store.dataset import Store

CLIENT = Pod("shop", "client-1", {"app": "client"}, "10.0.0.1", "Deployment/client")
WEB = Pod("shop", "web-1", {"app": "web"}, "10.0.0.2", "Deployment/web")
SHOP = "/apis/{}/namespaces/shop/{}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client → web on TCP 443 three times, on TCP 8080 twice."""
    folder = tmp_path_factory.mktemp("cluster")
    flows = [flow(CLIENT, WEB, port, time=f"2026-11-20T10:00:0{i}Z")
             for i, port in enumerate((443, 443, 443, 8080, 8080))]  # fmt: skip
    path = folder / "store"
    import_files(Store(str(path)), "hubble", [str(write(folder / "flows.json", flows))])
    return path


def verify_cluster(synth: Callable[..., Run], tmp_path: Path, store: Path, collections: dict[str, Any]) -> Run:
    """`synth verify --cluster -n shop` against a cluster of `collections` (and no NetworkPolicy)."""
    fake = FakeAPIServer(collections={SHOP.format("networking.k8s.io/v1", "networkpolicies"): [], **collections})
    with serving(fake):
        config = kubeconfig(tmp_path, fake.url)
        return synth("verify", "--cluster", "--kubeconfig", config, "--context", "test", "-n", "shop", "--store", store)


def web_ingress(ports: list[int], kind: str) -> dict[str, Any]:
    """shop/web admitting shop/{app=client} on `ports`, as a CiliumNetworkPolicy (listed with its kind) or a
    Calico (Staged)NetworkPolicy (listed without)."""
    metadata = {"name": "web", "namespace": "shop", "uid": f"uid-{kind}", "resourceVersion": "4711"}
    if kind == "CiliumNetworkPolicy":
        to_ports = [{"ports": [{"port": str(p), "protocol": "TCP"} for p in ports]}]
        return {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": metadata,
                "spec": {"endpointSelector": {"matchLabels": {"app": "web"}},
                         "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}], "toPorts": to_ports}]}}
    rule = {"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'client'"},
            "destination": {"ports": ports}}
    spec = {"tier": "default", "selector": "app == 'web'", "types": ["Ingress"], "ingress": [rule]}
    return {"metadata": metadata, "spec": spec | ({"stagedAction": "Set"} if kind == "StagedNetworkPolicy" else {})}


def test_verify_a_cilium_policy_from_the_cluster(synth: Callable[..., Run], tmp_path: Path, store: Path) -> None:
    cnp = web_ingress([443], "CiliumNetworkPolicy")
    run = verify_cluster(synth, tmp_path, store, {SHOP.format("cilium.io/v2", "ciliumnetworkpolicies"): [cnp]})
    assert run.code == 1, run.err
    assert run.err == ""
    assert run.out.splitlines()[:4] == [
        "replayed 5 observed request flows (shop) through 1 policies: 3 allowed, 2 denied, 0 unjudged",
        "DENIED: 1 edges, 2 flows",
        "  shop/app=client -> shop/app=web TCP/8080  2 flows, 2026-11-20T10:00:03Z .. 2026-11-20T10:00:04Z",
        "    ingress denied: pod shop/{app=web} is isolated for ingress by shop/web and no rule allows TCP/8080 "
        "from pod shop/{app=client}",
    ]


def test_verify_judges_the_staged_calico_policy_in_place_of_the_enforced_one(
    synth: Callable[..., Run], tmp_path: Path, store: Path
) -> None:
    """The enforced policy admits 443 and 8080; the one staged under its name only 443, and it decides."""
    collections = {
        SHOP.format("projectcalico.org/v3", "networkpolicies"): [web_ingress([443, 8080], "NetworkPolicy")],
        SHOP.format("projectcalico.org/v3", "stagednetworkpolicies"): [web_ingress([443], "StagedNetworkPolicy")],
    }
    run = verify_cluster(synth, tmp_path, store, collections)
    assert run.code == 1, run.err
    assert run.out.splitlines()[0] == (
        "replayed 5 observed request flows (shop) through 1 policies: 3 allowed, 2 denied, 0 unjudged"
    )
    assert ("    ingress denied: pod shop/{app=web} is isolated for ingress by shop/web(calico-staged) and no rule "
            "allows TCP/8080 from pod shop/{app=client}") in run.out.splitlines()  # fmt: skip
    assert "the Calico StagedNetworkPolicy stands in for the Calico NetworkPolicy of its name" in run.err
