"""Workload manifests beside the policies: every kind read for named ports, Lists, what is not checked,
and one bad input per failure mode with its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES as ALL_FIXTURES

from synth.app.deployed import SkippedObject, load_policies
from synth.base.errors import PolicyError
from synth.core.model import ContainerPort, Workload
from synth.policy.workloads import is_workload, workload_from_object

FIXTURES = ALL_FIXTURES / "workloads"


def test_every_workload_kind_is_read_and_unread_parts_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "good")
    result = load_policies(["shop.yaml"])
    assert result.loaded == 0 and result.warnings == ()
    assert result.skipped == (SkippedObject("Service", "v1", "web", "shop.yaml#8"),)
    assert result.workloads == (
        Workload("Deployment", "shop", "web", (("app", "web"), ("tier", "front")), (
            ContainerPort("dns", 5353, "UDP"), ContainerPort("http", 8080), ContainerPort("metrics", 9090),
            ContainerPort("proxy-admin", 15000),  # an init container's (a sidecar's)
        ), "manifests", "shop.yaml#1"),
        Workload("StatefulSet", "shop", "db", (("app", "db"),), (ContainerPort("pg", 5432),), "manifests",
                 "shop.yaml#2"),
        Workload("DaemonSet", "kube-system", "agent", (("k8s-app", "agent"),),
                 (ContainerPort("sctp-feed", 3868, "SCTP"),), "manifests", "shop.yaml#3"),
        Workload("ReplicaSet", "shop", "cache-5f6c7d", (("app", "cache"), ("pod-template-hash", "5f6c7d")),
                 (ContainerPort("redis", 6379),), "manifests", "shop.yaml#4"),
        Workload("Job", "shop", "migrate", (("app", "migrate"),), (), "manifests", "shop.yaml#5"),
        Workload("CronJob", "shop", "report", (("app", "report"),), (ContainerPort("http", 8000),), "manifests",
                 "shop.yaml#6"),
        Workload("Pod", "default", "debug", (("app", "debug"), ("app.kubernetes.io/name", "debug")),
                 (ContainerPort("http", 8080),), "manifests", "shop.yaml#7"),
    )  # fmt: skip


def test_kubectl_list_and_typed_pod_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "good")
    result = load_policies(["pods.yaml", "podlist.json"], default_namespace="shop")
    assert [(w.describe(), w.origin, w.ports) for w in result.workloads] == [
        ("Pod shop/web-7d4b9c-x7k2p", "pods.yaml#1.items[0]", (ContainerPort("http", 8080),)),
        ("Pod shop/db-0", "pods.yaml#1.items[1]", (ContainerPort("pg", 5432),)),
        ("Pod payments/api-5f6c7d-ccccc", "podlist.json#1.items[0]", (ContainerPort("https", 8443),)),
    ]
    assert result.workloads[0].labels == (("app", "web"), ("pod-template-hash", "7d4b9c"), ("tier", "front"))
    assert result.skipped == ()


def test_a_workload_without_a_pod_template_is_kept_out_with_a_warning(tmp_path: Path) -> None:
    patch = tmp_path / "patch.yaml"
    patch.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
                     "spec: {replicas: 3}\n")
    result = load_policies([str(patch)])
    assert result.workloads == () and result.skipped == ()
    assert result.warnings == (
        f"{patch}#1 (Deployment shop/web): no pod labels (no pod template?), so no pod can be matched to it: "
        "its named ports are not used",
    )


@pytest.mark.parametrize(
    ("api_version", "kind", "read"),
    [
        ("v1", "Pod", True),
        ("apps/v1", "Deployment", True),
        ("extensions/v1beta1", "Deployment", True),
        ("batch/v1", "CronJob", True),
        ("apps/v1", "Pod", False),
        ("argoproj.io/v1alpha1", "Rollout", False),
        ("apps.openshift.io/v1", "DeploymentConfig", False),
        ("v1", "Service", False),
    ],
)
def test_which_kinds_are_workloads(api_version: str, kind: str, read: bool) -> None:
    assert is_workload(kind, api_version) is read


def test_the_converter_defaults_the_protocol_and_skips_unnamed_ports() -> None:
    workload = workload_from_object(
        {"kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}},
         "spec": {"containers": [{"ports": [{"containerPort": 80}, {"name": "dns", "containerPort": 53,
                                                                   "protocol": "UDP"}]}]}},
        "t#1", "x", "cluster",
    )  # fmt: skip
    assert workload == Workload("Pod", "x", "p", (("app", "p"),), (ContainerPort("dns", 53, "UDP"),), "cluster", "t#1")


# --- bad inputs: one fixture per failure mode, with its exact message -----------------------------------
# Each message is the fixture's name followed by the text below.

BAD = {
    "container-port-range.yaml": (
        "#1 (Deployment shop/web): spec.template.spec.containers[0].ports[0].containerPort: "
        "70000 is not between 1 and 65535"
    ),
    "containers-not-list.yaml": (
        "#1 (DaemonSet kube-system/agent): spec.template.spec.containers: must be a list, got dict {'name': 'agent'}"
    ),
    "cronjob-protocol.yaml": (
        "#1 (CronJob shop/report): spec.jobTemplate.spec.template.spec.initContainers[0].ports[0].protocol: "
        "unknown protocol 'tcp' (use TCP, UDP or SCTP)"
    ),
    "duplicate-port-name.yaml": (
        "#1 (Deployment shop/web): spec.template.spec.containers[0].ports[1].name: duplicate port name 'http'"
    ),
    "label-not-string.yaml": (
        "#1 (Deployment shop/web): spec.template.metadata.labels.version: label value must be a string, "
        "got int 2 (quote it)"
    ),
    "list-item.yaml": (
        "#1.items[1] (Pod shop/b): spec.containers[0].ports[0].containerPort: must be a number, got str '80'"
    ),
    "missing-container-port.yaml": "#2 (Pod shop/debug): spec.containers[0].ports[0].containerPort: required",
    "missing-name.yaml": "#1 (Deployment): metadata.name: required",
    "port-name.yaml": (
        "#1 (StatefulSet shop/db): spec.template.spec.containers[0].ports[1].name: 'Postgres_Main' is not a valid "
        "port name (at most 15 of a-z, 0-9 and -, with a letter)"
    ),
    "template-not-mapping.yaml": "#1 (Job shop/migrate): spec.template: must be a mapping, got str 'migrate'",
    "unknown-port-field.yaml": (
        "#1 (Deployment shop/web): spec.template.spec.containers[0].ports[0].contianerPort: unknown field "
        "(expected name, containerPort, protocol, hostPort, hostIP)"
    ),
}


@pytest.mark.parametrize(("fixture", "message"), sorted(BAD.items()), ids=sorted(BAD))
def test_bad_input(monkeypatch: pytest.MonkeyPatch, fixture: str, message: str) -> None:
    monkeypatch.chdir(FIXTURES / "bad")
    with pytest.raises(PolicyError) as e:
        load_policies([fixture])
    assert str(e.value) == fixture + message


def test_every_bad_fixture_has_a_message() -> None:
    assert sorted(p.name for p in (FIXTURES / "bad").iterdir()) == sorted(BAD)
