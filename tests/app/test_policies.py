"""Loading deployed NetworkPolicies: every input shape, defaulting, errors, and the cluster path."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES as ALL_FIXTURES
from kubeapi import FakeAPIServer, api_pod, kubeconfig, serving

from synth.app.cluster import load_cluster
from synth.app.deployed import LoadResult, SkippedObject, load_policies
from synth.base.errors import InputError, PolicyError
from synth.core.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicySet,
    PortSpec,
    Requirement,
    Rule,
    Workload,
)
from synth.policy.manifest import normalised_yaml, policy_from_object, policy_to_manifest

FIXTURES = ALL_FIXTURES / "policies"
GOOD = FIXTURES / "good"


def keys(result: LoadResult) -> list[tuple[str, str]]:
    return [p.key for p in result.policies.policies]


def by_name(result: LoadResult, name: str) -> NetworkPolicy:
    return next(p for p in result.policies.policies if p.name == name)


# --- input shapes ------------------------------------------------------------------------------------


def test_single_file_with_defaults() -> None:
    result = load_policies([str(GOOD / "single.yaml")])
    assert (result.files, result.documents, result.loaded, result.skipped) == (1, 1, 1, ())
    policy = result.policies.policies[0]
    assert policy.origin == f"{GOOD / 'single.yaml'}#1"
    assert policy.policy_types == ("Ingress", "Egress")  # defaulted: egress rules exist
    assert policy.labels == (("app", "api"), ("team", "payments"))
    assert policy.pod_selector == LabelSelector.of({"app": "api", "tier": "backend"})
    ingress = policy.ingress[0]
    assert ingress.peers == (
        Peer(
            pod_selector=LabelSelector(match_expressions=(Requirement("role", "In", ("edge", "web")),)),
            namespace_selector=LabelSelector.of({"kubernetes.io/metadata.name": "frontend"}),
        ),
        Peer(ip_block=IPBlock("10.0.0.0/16", ("10.0.5.0/24",))),
    )
    assert ingress.ports == (PortSpec("TCP", 8080), PortSpec("TCP", "metrics"))
    assert policy.egress == (
        Rule(
            peers=(Peer(pod_selector=LabelSelector()),),
            ports=(PortSpec("UDP", 53), PortSpec("TCP", 30000, 30100)),
        ),
    )


def test_multi_document_counts_skips() -> None:
    result = load_policies([str(GOOD / "multi.yaml")])
    assert keys(result) == [("payments", "default-deny"), ("payments", "egress-only")]
    assert result.documents == 5  # the empty document is not counted
    name = str(GOOD / "multi.yaml")
    assert result.skipped == (
        SkippedObject("Service", "v1", "api", f"{name}#1"),
        SkippedObject("NetworkPolicy", "crd.projectcalico.org/v1", "calico-one", f"{name}#5"),
    )
    assert result.skipped_by_kind() == (("crd.projectcalico.org/v1/NetworkPolicy", 1), ("v1/Service", 1))
    # A Deployment is read for its named ports; this one has no pod template (a patch, say).
    assert result.workloads == ()
    assert result.warnings == (
        f"{name}#4 (Deployment payments/api): no pod labels (no pod template?), so no pod can be matched to it: "
        "its named ports are not used",
    )
    assert by_name(result, "egress-only").policy_types == ("Egress",)
    assert by_name(result, "egress-only").egress == ()


def test_folder_is_recursive_and_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOOD)
    result = load_policies(["folder"])
    assert result.files == 4  # notes.txt is not read
    assert [p.origin for p in result.policies.policies] == [
        "folder/sub/b.yml#1",  # no namespace: `default`
        "folder/a.yaml#1",
        "folder/sub/c.json#1",
    ]
    assert keys(result) == [("default", "b"), ("x", "a"), ("z", "c")]
    assert result.skipped == ()  # a kustomization.yaml is how the folder is applied, not a skipped object
    assert by_name(result, "b").policy_types == ("Ingress", "Egress")
    assert by_name(result, "b").egress == (Rule(),)


def test_default_namespace_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOOD)
    assert ("shop", "b") in keys(load_policies(["folder/sub/b.yml"], default_namespace="shop"))


def test_kubectl_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOOD)
    result = load_policies(["list.yaml"])
    assert keys(result) == [("payments", "allow-dns"), ("shop", "default-deny")]
    dns = by_name(result, "allow-dns")
    assert dns.origin == "list.yaml#1.items[0]"
    assert dns.annotations == ()  # last-applied-configuration is bookkeeping
    assert dns.egress[0].ports == (PortSpec("UDP", 53), PortSpec("TCP", 53))


def test_network_policy_list_json_items_without_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOOD)
    result = load_policies(["nplist.json"])
    assert keys(result) == [("shop", "allow-web")]
    assert by_name(result, "allow-web").ingress[0].peers == (Peer(ip_block=IPBlock("::/0")),)


@pytest.mark.parametrize("fixture", ["single.yaml", "nplist.json"])
def test_stdin(monkeypatch: pytest.MonkeyPatch, fixture: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((GOOD / fixture).read_text()))
    result = load_policies(["-"])
    assert result.loaded == 1
    assert result.policies.policies[0].origin.startswith("<stdin>#1")


def test_several_paths_and_duplicates_across_files(tmp_path: Path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((GOOD / "single.yaml").read_text())
    with pytest.raises(PolicyError) as e:
        load_policies([str(GOOD / "single.yaml"), str(copy)])
    assert str(e.value) == (
        f"{copy}#1 (payments/api-ingress): duplicate NetworkPolicy, also defined at {GOOD / 'single.yaml'}#1"
    )


SAME_NAME = [
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\n"
    "spec: {podSelector: {matchLabels: {app: web}}}\n",
    "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web, namespace: x}\n"
    "spec: {endpointSelector: {matchLabels: {app: web}}, ingress: [{}]}\n",
    "apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: web, namespace: x}\n"
    "spec: {selector: app == 'web', types: [Ingress]}\n",
    "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: web, namespace: x}\n"
    "spec: {selector: app == 'web', types: [Ingress]}\n",
]


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0]])
def test_objects_of_different_kinds_may_share_a_name(tmp_path: Path, order: list[int]) -> None:
    path = tmp_path / "web.yaml"
    path.write_text("---\n".join(SAME_NAME[i] for i in order))
    result = load_policies([str(path)])
    origin = {i: f"{path}#{order.index(i) + 1}" for i in order}
    assert [(p.key, p.kind, p.origin) for p in result.policies.policies] == [  # the same order, whatever the input's
        (("x", "web"), "Calico NetworkPolicy", origin[3]),
        (("x", "web"), "Calico StagedNetworkPolicy", origin[2]),
        (("x", "web"), "CiliumNetworkPolicy", origin[1]),
        (("x", "web"), "NetworkPolicy", origin[0]),
    ]


def test_a_staged_policy_beside_the_calico_policy_of_its_name_is_named(tmp_path: Path) -> None:
    path = tmp_path / "web.yaml"
    path.write_text("---\n".join(SAME_NAME))
    result = load_policies([str(path)])
    assert result.warnings == (
        f"{path}#3 (x/web): the Calico StagedNetworkPolicy stands in for the Calico NetworkPolicy of its name "
        f"({path}#4): traffic is judged as if it were applied",
    )
    assert [p.kind for p in result.policies.in_effect()] == [
        "Calico StagedNetworkPolicy", "CiliumNetworkPolicy", "NetworkPolicy"
    ]


@pytest.mark.parametrize(("twice", "kind"), [
    (0, "NetworkPolicy"), (1, "CiliumNetworkPolicy"), (2, "Calico StagedNetworkPolicy"), (3, "Calico NetworkPolicy"),
])  # fmt: skip
def test_the_same_kind_and_name_twice_is_a_duplicate(tmp_path: Path, twice: int, kind: str) -> None:
    path = tmp_path / "web.yaml"
    path.write_text("---\n".join([*SAME_NAME, SAME_NAME[twice]]))
    with pytest.raises(PolicyError) as e:
        load_policies([str(path)])
    assert str(e.value) == f"{path}#5 (x/web): duplicate {kind}, also defined at {path}#{twice + 1}"


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match=r"^nope\.yaml: no such file or folder$"):
        load_policies(["nope.yaml"])


# --- defaulting through the converter ----------------------------------------------------------------

DEFAULTING = [
    ("no policyTypes, no egress", {"podSelector": {}}, ("Ingress",)),
    ("empty policyTypes, egress rules", {"policyTypes": [], "egress": [{}]}, ("Ingress", "Egress")),
    ("egress: [] does not add Egress", {"egress": []}, ("Ingress",)),
    ("explicit order is normalised", {"policyTypes": ["Egress", "Ingress"]}, ("Ingress", "Egress")),
    ("explicit Egress only", {"policyTypes": ["Egress"], "ingress": [{}]}, ("Egress",)),
]


@pytest.mark.parametrize(("spec", "types"), [c[1:] for c in DEFAULTING], ids=[c[0] for c in DEFAULTING])
def test_policy_types_defaulting(spec: dict[str, Any], types: tuple[str, ...]) -> None:
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    policy = policy_from_object(manifest, "t#1")
    assert policy.policy_types == types
    assert policy.pod_selector == LabelSelector()
    assert policy.namespace == "default"


def test_absent_spec_means_deny_all_ingress() -> None:
    policy = policy_from_object({"metadata": {"name": "p", "namespace": "x"}}, "t#1")
    assert (policy.pod_selector, policy.policy_types, policy.ingress) == (LabelSelector(), ("Ingress",), ())


# --- bad inputs: one fixture per failure mode, with its exact message -----------------------------------
# Each message is the fixture's name followed by the text below.

BAD = {
    "bad-cidr.yaml": "#1 (x/p): spec.egress[0].to[0].ipBlock.cidr: '10.0.0.0/33' is not a valid CIDR",
    "bad-label-key.yaml": "#1 (x/p): spec.podSelector.matchLabels: 'app name' is not a valid label key",
    "bad-operator.yaml": (
        "#1 (x/p): spec.podSelector.matchExpressions[0].operator: unknown operator 'Equals' "
        "(use In, NotIn, Exists or DoesNotExist)"
    ),
    "bad-policytypes.yaml": ("#1 (x/p): spec.policyTypes[1]: unknown policy type 'Egres' (use Ingress or Egress)"),
    "deployed.yaml": (
        "#2 (payments/api-ingress): spec.ingress[0].from[1].ipBlock.except[0]: 10.1.0.0/16 is not inside 10.0.0.0/16"
    ),
    "duplicate.yaml": "#2 (x/p): duplicate NetworkPolicy, also defined at duplicate.yaml#1",
    "empty-peer.yaml": ("#1 (x/p): spec.ingress[0].from[1]: a peer needs podSelector, namespaceSelector or ipBlock"),
    "endport-less.yaml": "#1 (x/p): spec.ingress[0].ports[0].endPort: 8000 is less than port 9000",
    "endport-named.yaml": (
        "#1 (x/p): spec.ingress[0].ports[0].endPort: needs a numeric port, not the named port 'http'"
    ),
    "endport-without-port.yaml": ("#1 (x/p): spec.egress[0].ports[0].endPort: needs a numeric port"),
    "except-family.yaml": (
        "#1 (x/p): spec.ingress[0].from[0].ipBlock.except[0]: fd00::/64 is IPv6 but cidr 10.0.0.0/8 is IPv4"
    ),
    "except-whole-cidr.yaml": (
        "#1 (x/p): spec.ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/8 must be a strict "
        "subset of 10.0.0.0/8, not all of it"
    ),
    "exists-with-values.yaml": (
        "#1 (x/p): spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: "
        "must be empty when operator is Exists"
    ),
    "in-without-values.yaml": (
        "#1 (x/p): spec.ingress[0].from[0].podSelector.matchExpressions[0].values: "
        "must be non-empty when operator is In"
    ),
    "invalid-json.json": ":2: invalid JSON: Expecting property name enclosed in double quotes",
    "invalid-yaml.yaml": ":4: invalid YAML: did not find expected ',' or '}'",
    "ipblock-with-selector.yaml": (
        "#1 (x/p): spec.egress[0].to[0]: ipBlock cannot be combined with podSelector or namespaceSelector in one peer"
    ),
    "label-not-string.yaml": (
        "#1 (x/p): spec.podSelector.matchLabels.tier: label value must be a string, got int 1 (quote it)"
    ),
    "lowercase-protocol.yaml": (
        "#1 (x/p): spec.ingress[0].ports[0].protocol: unknown protocol 'tcp' (use TCP, UDP or SCTP)"
    ),
    "missing-name.yaml": "#1: metadata.name: required",
    "policytypes-not-list.yaml": ("#1 (x/p): spec.policyTypes: must be a list, got str 'Ingress'"),
    "port-out-of-range.yaml": ("#1 (x/p): spec.ingress[0].ports[0].port: 70000 is not between 1 and 65535"),
    "quoted-port.yaml": (
        "#1 (x/p): spec.ingress[0].ports[0].port: '80' is not a valid port name (a number must not be quoted)"
    ),
    "unknown-field.yaml": "#1 (x/p): spec.ingress[0].form: unknown field (expected from, ports)",
    "unknown-protocol.yaml": (
        "#1 (x/p): spec.ingress[0].ports[0].protocol: unknown protocol 'ICMP' (use TCP, UDP or SCTP)"
    ),
}


@pytest.mark.parametrize(("fixture", "message"), sorted(BAD.items()), ids=sorted(BAD))
def test_bad_input(monkeypatch: pytest.MonkeyPatch, fixture: str, message: str) -> None:
    monkeypatch.chdir(FIXTURES / "bad")
    with pytest.raises(PolicyError) as e:
        load_policies([fixture])
    assert str(e.value) == fixture + message
    assert "\n" not in str(e.value)


def test_every_bad_fixture_has_a_message() -> None:
    assert sorted(p.name for p in (FIXTURES / "bad").iterdir()) == sorted(BAD)


# --- normalised manifest -------------------------------------------------------------------------------

SINGLE_NORMALISED = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: api-ingress
  namespace: payments
  labels:
    app: api
    team: payments
spec:
  podSelector:
    matchLabels:
      app: api
      tier: backend
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: frontend
      podSelector:
        matchExpressions:
        - key: role
          operator: In
          values:
          - edge
          - web
    - ipBlock:
        cidr: 10.0.0.0/16
        except:
        - 10.0.5.0/24
    ports:
    - protocol: TCP
      port: 8080
    - protocol: TCP
      port: metrics
  egress:
  - to:
    - podSelector: {}
    ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 30000
      endPort: 30100
"""


def test_normalised_yaml_golden() -> None:
    policy = load_policies([str(GOOD / "single.yaml")]).policies.policies[0]
    assert normalised_yaml(policy) == SINGLE_NORMALISED


def test_manifest_same_for_file_and_model() -> None:
    built = NetworkPolicy(
        name="default-deny",
        namespace="shop",
        policy_types=("Ingress", "Egress"),
        labels=(("x", "1"),),
    )
    loaded = policy_from_object(
        {
            "kind": "NetworkPolicy",
            "metadata": {"labels": {"x": "1"}, "namespace": "shop", "name": "default-deny"},
            "spec": {"policyTypes": ["Egress", "Ingress"], "ingress": [], "podSelector": {}},
        },
        "f.yaml#1",
    )
    assert normalised_yaml(built) == normalised_yaml(loaded)
    assert policy_to_manifest(built) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "shop", "labels": {"x": "1"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def test_manifest_round_trips_through_the_loader() -> None:
    for policy in load_policies([str(GOOD)]).policies.policies:
        again = policy_from_object(policy_to_manifest(policy), policy.origin)
        assert again == policy


def test_manifest_sorts_unsorted_model_selectors() -> None:
    selector = LabelSelector(
        match_labels=(("b", "2"), ("a", "1")),
        match_expressions=(Requirement("z", "NotIn", ("q", "p")), Requirement("a", "Exists")),
    )
    manifest = policy_to_manifest(NetworkPolicy(name="p", namespace="x", pod_selector=selector))
    assert manifest["spec"]["podSelector"] == {
        "matchLabels": {"a": "1", "b": "2"},
        "matchExpressions": [
            {"key": "a", "operator": "Exists"},
            {"key": "z", "operator": "NotIn", "values": ["p", "q"]},
        ],
    }
    assert list(manifest["spec"]["podSelector"]["matchLabels"]) == ["a", "b"]


# --- cluster ---------------------------------------------------------------------------------------------


def _api_item(name: str, namespace: str, uid: str) -> dict[str, Any]:
    """An item as the API server returns it inside a NetworkPolicyList (no kind, defaulted fields)."""
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "4711",
            "generation": 1,
            "creationTimestamp": "2026-07-01T10:00:00Z",
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "networking.k8s.io/v1",
                    "time": "2026-07-01T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:podSelector": {}, "f:policyTypes": {}}},
                }
            ],
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": name}},
            "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}], "from": [{"podSelector": {}}]}],
            "policyTypes": ["Ingress"],
        },
    }


NETWORKPOLICIES = "/apis/networking.k8s.io/v1/networkpolicies"
SHOP_NETWORKPOLICIES = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
# discovery of the custom policy resources' groups, before anything is listed (404 here: neither is installed)
DISCOVERY = [("/apis/cilium.io/v2", None, None), ("/apis/projectcalico.org/v3", None, None)]


@pytest.fixture
def api_server() -> Iterator[FakeAPIServer]:
    """NetworkPolicyLists of all namespaces and of `shop`, two pages each."""
    fake = FakeAPIServer(
        collections={
            NETWORKPOLICIES: [_api_item("api", "payments", "u1"), _api_item("web", "shop", "u2")],
            SHOP_NETWORKPOLICIES: [_api_item("web", "shop", "u2"), _api_item("db", "shop", "u3")],
        }
    )
    with serving(fake):
        yield fake


def test_cluster_all_namespaces_two_pages(tmp_path: Path, api_server: FakeAPIServer) -> None:
    result = load_cluster(kubeconfig(tmp_path, api_server.url), context="test", namespaces=None)
    assert keys(result) == [("payments", "api"), ("shop", "web")]
    assert result.documents == 2
    api = by_name(result, "api")
    assert api.origin == f"{api_server.url}/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies/api"
    assert api.policy_types == ("Ingress",)
    assert api.ingress == (Rule(peers=(Peer(pod_selector=LabelSelector()),), ports=(PortSpec("TCP", 8080),)),)
    # no policy names a port: the pods are not listed; the cluster has neither Cilium's nor Calico's policies
    assert api_server.paths() == [*DISCOVERY, (NETWORKPOLICIES, None, ["500"]), (NETWORKPOLICIES, ["page-2"], ["500"])]
    assert all(auth == "Bearer secret-token" for _, _, auth in api_server.requests)


def test_cluster_per_namespace(tmp_path: Path, api_server: FakeAPIServer) -> None:
    result = load_cluster(kubeconfig(tmp_path, api_server.url), None, namespaces=["shop"])
    assert keys(result) == [("shop", "db"), ("shop", "web")]
    assert [path for path, _, _ in api_server.paths()] == [*(d[0] for d in DISCOVERY), *[SHOP_NETWORKPOLICIES] * 2]


def test_cluster_forbidden_gives_a_hint(tmp_path: Path, api_server: FakeAPIServer) -> None:
    api_server.status["*"] = 403
    with pytest.raises(InputError) as e:
        load_cluster(kubeconfig(tmp_path, api_server.url), None, None)
    assert str(e.value) == (
        f"{api_server.url}: listing NetworkPolicies failed: HTTP 403 Forbidden; the credentials need `list` on "
        "networkpolicies.networking.k8s.io (try `kubectl auth can-i list networkpolicies -A`)"
    )


PODS = "/api/v1/pods"
SHOP_PODS = "/api/v1/namespaces/shop/pods"


def _name_the_port(item: dict[str, Any]) -> dict[str, Any]:
    item["spec"]["ingress"][0]["ports"] = [{"port": "http"}]
    return item


def test_cluster_pods_are_listed_when_a_policy_names_a_port(tmp_path: Path, api_server: FakeAPIServer) -> None:
    _name_the_port(api_server.collections[NETWORKPOLICIES][0])
    api_server.collections[PODS] = [
        api_pod("api-7d4b9c-x7k2p", "payments", {"app": "api", "pod-template-hash": "7d4b9c"},
                [{"name": "http", "containerPort": 8080}, {"containerPort": 8081}],
                init_ports=[{"name": "metrics", "containerPort": 9090}]),
        api_pod("web-5f6c7d-q9z4m", "shop", {"app": "web"}, [{"name": "http", "containerPort": 80}]),
        api_pod("static-node-1", "shop", {}, [{"name": "http", "containerPort": 81}]),  # no labels: no match
    ]  # fmt: skip
    result = load_cluster(kubeconfig(tmp_path, api_server.url), None, None)
    assert [p.key for p in result.policies.policies] == [("payments", "api"), ("shop", "web")]
    assert result.workloads == (
        Workload("Pod", "payments", "api-7d4b9c-x7k2p", (("app", "api"), ("pod-template-hash", "7d4b9c")),
                 (ContainerPort("http", 8080), ContainerPort("metrics", 9090)), "cluster",
                 f"{api_server.url}/api/v1/namespaces/payments/pods/api-7d4b9c-x7k2p"),
        Workload("Pod", "shop", "web-5f6c7d-q9z4m", (("app", "web"),), (ContainerPort("http", 80),), "cluster",
                 f"{api_server.url}/api/v1/namespaces/shop/pods/web-5f6c7d-q9z4m"),
    )  # fmt: skip
    assert result.warnings == () and result.documents == 2
    assert api_server.paths() == [
        *DISCOVERY,
        (NETWORKPOLICIES, None, ["500"]),
        (NETWORKPOLICIES, ["page-2"], ["500"]),
        (PODS, None, ["500"]),
        (PODS, ["page-2"], ["500"]),
        (PODS, ["page-3"], ["500"]),
    ]


def test_cluster_pods_of_the_namespaces_asked_for(tmp_path: Path, api_server: FakeAPIServer) -> None:
    _name_the_port(api_server.collections[SHOP_NETWORKPOLICIES][1])
    db = api_pod("db-0", "shop", {"app": "db"}, [{"name": "pg", "containerPort": 5432}])
    api_server.collections[SHOP_PODS] = [db]
    result = load_cluster(kubeconfig(tmp_path, api_server.url), None, ["shop"])
    assert [w.describe() for w in result.workloads] == ["Pod shop/db-0"]
    assert [path for path, _, _ in api_server.paths()][2:] == [SHOP_NETWORKPOLICIES, SHOP_NETWORKPOLICIES, SHOP_PODS]


def test_cluster_pods_forbidden_leaves_named_ports_unresolved(tmp_path: Path, api_server: FakeAPIServer) -> None:
    _name_the_port(api_server.collections[NETWORKPOLICIES][1])
    api_server.status[PODS] = 403
    result = load_cluster(kubeconfig(tmp_path, api_server.url), None, None)
    assert result.loaded == 2 and result.workloads == ()
    assert result.warnings == (
        f"{api_server.url}: listing Pods failed: HTTP 403 Forbidden; the credentials need `list` on pods "
        "(try `kubectl auth can-i list pods -A`); named ports of the policies stay unresolved",
    )


def test_cluster_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    with pytest.raises(InputError) as e:
        load_cluster(kubeconfig(tmp_path, server), None, None, timeout=2)
    assert str(e.value) == (
        f"{server}: cannot reach the Kubernetes API server (MaxRetryError); "
        "check the kubeconfig context and that the cluster is up"
    )


def test_cluster_bad_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(InputError, match=r"cannot load the Kubernetes configuration"):
        load_cluster(str(path), context="missing", namespaces=None)


def test_in_cluster_without_service_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    with pytest.raises(InputError, match=r"cannot load the Kubernetes configuration"):
        load_cluster(None, None, None)


def test_loaded_set_is_a_policy_set() -> None:
    assert isinstance(load_policies([]).policies, PolicySet)


def test_kindless_items_of_other_lists_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: s}\n  spec: {ports: [{port: 80}]}\n")
    result = load_policies([str(path)])
    assert (result.loaded, result.skipped) == (0, (SkippedObject("", "", "s", f"{path}#1.items[0]"),))
