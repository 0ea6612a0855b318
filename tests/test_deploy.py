"""deploy/: the in-cluster recorder's manifests and image are valid and locked down."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT

from synth.policy.manifest import policy_from_object

DEPLOY = ROOT / "deploy"
MANIFESTS = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_manifest_passes_kubernetes_validate_strict() -> None:
    validator = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(validator), "--strict", *map(str, MANIFESTS)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kustomization_lists_the_manifests_it_needs() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "synth"
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).is_file(), resource
    assert set(kustomization["resources"]) == {p.name for p in MANIFESTS} - {"reader.yaml"}


def pod_specs() -> list[dict[str, Any]]:
    specs = []
    for doc in documents():
        if doc["kind"] == "Job":
            specs.append(doc["spec"]["template"]["spec"])
        elif doc["kind"] == "Pod":
            specs.append(doc["spec"])
    return specs


def test_pods_run_as_non_root_with_a_read_only_root_and_resources() -> None:
    specs = pod_specs()
    assert len(specs) == 2
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_the_recorder_runs_synth_collect_for_a_window_into_the_volume() -> None:
    (job,) = [doc for doc in documents() if doc["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["collect", "hubble"] and "--duration" in args
    store = args[args.index("--store") + 1]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(store.startswith(mount + "/") for mount in mounts) and "/tmp" in mounts
    # the arguments parse as the CLI's own options (a typo in a flag would fail the pod at start)
    from synth.cli import cli

    command = cli.commands["collect"].commands["hubble"]  # type: ignore[attr-defined]
    context = command.make_context("hubble", list(args[2:]))
    assert context.params["server"] == "hubble-relay.kube-system.svc.cluster.local:80"
    assert context.params["duration"] == "48h" and context.params["store_path"] == store


def test_the_recorders_own_network_policy_is_valid_and_least_privilege() -> None:
    (policy,) = [doc for doc in documents() if doc["kind"] == "NetworkPolicy"]
    parsed = policy_from_object(policy, "deploy/networkpolicy.yaml#0")
    assert parsed.ingress == () and {r.ports[0].port for r in parsed.egress} == {4245, 53}


def test_the_image_is_multi_stage_pinned_and_non_root() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert len(bases) == 2, "multi-stage: a build stage and a slim run stage"
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base) for base in bases), bases
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.M)
    assert 'ENTRYPOINT ["synth"]' in dockerfile
