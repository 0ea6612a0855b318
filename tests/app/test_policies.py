"""Loading deployed NetworkPolicies: every input shape, defaulting, errors, and the cluster path."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import FIXTURES as ALL_FIXTURES

from synth.app.deployed import LoadResult, SkippedObject, load_cluster, load_policies
from synth.base.errors import InputError, PolicyError
from synth.core.model import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicySet, PortSpec, Requirement, Rule
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
        SkippedObject("Deployment", "apps/v1", "api", f"{name}#4"),
        SkippedObject("NetworkPolicy", "crd.projectcalico.org/v1", "calico-one", f"{name}#5"),
    )
    assert result.skipped_by_kind() == (
        ("apps/v1/Deployment", 1),
        ("crd.projectcalico.org/v1/NetworkPolicy", 1),
        ("v1/Service", 1),
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
    assert result.skipped == (
        SkippedObject("Kustomization", "kustomize.config.k8s.io/v1beta1", "", "folder/sub/kustomization.yaml#1"),
    )
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


class _FakeAPIServer(BaseHTTPRequestHandler):
    """Serves NetworkPolicyLists in two pages (one item each) via `limit`/`continue`."""

    requests: ClassVar[list[tuple[str, dict[str, list[str]], str]]] = []
    status: ClassVar[int] = 200

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        type(self).requests.append((url.path, query, self.headers.get("Authorization", "")))
        if self.status != 200:
            self._send(self.status, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": self.status})
            return
        if url.path == "/apis/networking.k8s.io/v1/networkpolicies":
            items = [_api_item("api", "payments", "u1"), _api_item("web", "shop", "u2")]
        elif url.path == "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies":
            items = [_api_item("web", "shop", "u2"), _api_item("db", "shop", "u3")]
        else:
            self._send(404, {"kind": "Status", "code": 404})
            return
        second = query.get("continue") == ["page-2"]
        metadata: dict[str, Any] = {"resourceVersion": "4712"}
        if not second:  # the last page has no continue token
            metadata["continue"] = "page-2"
        page = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicyList",
            "metadata": metadata,
            "items": [items[1]] if second else [items[0]],
        }
        self._send(200, page)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def api_server() -> Iterator[str]:
    _FakeAPIServer.requests = []
    _FakeAPIServer.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeAPIServer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{server}"}}
users:
- name: test
  user: {{token: secret-token}}
contexts:
- name: test
  context: {{cluster: test, user: test}}
current-context: test
"""
    )
    return str(path)


def test_cluster_all_namespaces_two_pages(tmp_path: Path, api_server: str) -> None:
    result = load_cluster(_kubeconfig(tmp_path, api_server), context="test", namespaces=None)
    assert keys(result) == [("payments", "api"), ("shop", "web")]
    assert result.documents == 2
    api = by_name(result, "api")
    assert api.origin == f"{api_server}/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies/api"
    assert api.policy_types == ("Ingress",)
    assert api.ingress == (Rule(peers=(Peer(pod_selector=LabelSelector()),), ports=(PortSpec("TCP", 8080),)),)
    paths = [(path, query.get("continue"), query.get("limit")) for path, query, _ in _FakeAPIServer.requests]
    assert paths == [
        ("/apis/networking.k8s.io/v1/networkpolicies", None, ["500"]),
        ("/apis/networking.k8s.io/v1/networkpolicies", ["page-2"], ["500"]),
    ]
    assert all(auth == "Bearer secret-token" for _, _, auth in _FakeAPIServer.requests)


def test_cluster_per_namespace(tmp_path: Path, api_server: str) -> None:
    result = load_cluster(_kubeconfig(tmp_path, api_server), None, namespaces=["shop"])
    assert keys(result) == [("shop", "db"), ("shop", "web")]
    assert {path for path, _, _ in _FakeAPIServer.requests} == {
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
    }


def test_cluster_forbidden_gives_a_hint(tmp_path: Path, api_server: str) -> None:
    _FakeAPIServer.status = 403
    with pytest.raises(InputError) as e:
        load_cluster(_kubeconfig(tmp_path, api_server), None, None)
    assert str(e.value) == (
        f"{api_server}: listing NetworkPolicies failed: HTTP 403 Forbidden; the credentials need `list` on "
        "networkpolicies.networking.k8s.io (try `kubectl auth can-i list networkpolicies -A`)"
    )


def test_cluster_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    with pytest.raises(InputError) as e:
        load_cluster(_kubeconfig(tmp_path, server), None, None, timeout=2)
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
