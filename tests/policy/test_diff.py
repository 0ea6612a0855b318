"""Deployed vs proposed: text diff of normalised YAML, connectivity of observed traffic, the attack
surface a proposal removes, name stability, exit codes and output formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import GOLDEN, Run
from test_verify import (
    ALLOW_ALL_INGRESS,
    API_FROM_WEB,
    BOOKINFO_BROKEN,
    DENY_INGRESS,
    batch,
    captures_store,  # noqa: F401 - a fixture shared with test_verify
    netpol,
    observed_small,
    policies,
    small_flows,
    write_policies,
)

from synth.app import generation as pipeline
from synth.base.config import Settings
from synth.core.model import PolicyFormat, PolicySet
from synth.core.synthesize import synthesize
from synth.policy.diff import DiffResult, adopt_deployed_names, diff, text_diff
from synth.render.checks import diff_summary, render_diff
from synth.store.dataset import Store


def proposed_small() -> PolicySet:
    return synthesize(observed_small().edges, ["x"], Settings()).policies


def small_diff(deployed: PolicySet) -> DiffResult:
    return diff(observed_small(), deployed, proposed_small(), ["x"])


def lines(result: DiffResult, attribute: str, change: str | None = None) -> list[str]:
    return [c.line() for c in getattr(result, attribute) if change is None or c.change == change]


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    writer = Store(str(path)).writer({"source": "test"})
    writer.write(batch(small_flows()))
    writer.close()
    return path


# --- the library -------------------------------------------------------------------------------------


def test_same_set_is_no_difference() -> None:
    result = small_diff(proposed_small())
    assert not result.differs
    assert {o.status for o in result.objects} == {"unchanged"}
    assert {c.change for c in result.connectivity} == {"unchanged"}
    assert result.surface == ()


def test_text_diff_ignores_key_order_defaults_and_evidence() -> None:
    written = netpol(
        "api-ingress",
        "x",
        {
            "ingress": [{"ports": [{"port": 8080}], "from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
            "podSelector": {"matchLabels": {"app": "api"}},
        },
    )
    written["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "synth"}
    written["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    proposed = next(p for p in proposed_small().policies if p.name == "api-ingress")
    (changed,) = text_diff(policies(written), PolicySet.of([proposed]), ["x"])
    # only the rule deployed lacks shows: protocol TCP and policyTypes were defaulted, keys reordered
    assert changed.status == "changed"
    assert [line for line in changed.text.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "+  - from:",
        "+    - namespaceSelector:",
        "+        matchLabels:",
        "+          kubernetes.io/metadata.name: mon",
        "+      podSelector:",
        "+        matchLabels:",
        "+          app: prom",
        "+    ports:",
        "+    - protocol: TCP",
        "+      port: 9090",
    ]


def test_text_diff_pairs_objects_by_name_and_by_kind_where_kinds_share_a_name() -> None:
    proposed = next(p for p in proposed_small().policies if p.name == "api-ingress")
    as_cilium = replace(proposed, api="cilium")
    """A NetworkPolicy rewritten as a CiliumNetworkPolicy of the same name is another object: the old one stays in
    force until deleted, so it is removed (by its own resource) and the new one added."""
    rewritten = text_diff(PolicySet.of([proposed]), PolicySet.of([as_cilium]), ["x"])
    assert [(o.name, o.status, o.resource) for o in rewritten] == [
        ("api-ingress", "added", "ciliumnetworkpolicies.cilium.io"),
        ("api-ingress", "removed", "networkpolicies.networking.k8s.io"),
    ]
    assert "+kind: CiliumNetworkPolicy\n" in rewritten[0].text and "-kind: NetworkPolicy\n" in rewritten[1].text
    both = text_diff(PolicySet.of([proposed, as_cilium]), PolicySet.of([proposed]), ["x"])
    assert [(o.name, o.status) for o in both] == [("api-ingress", "removed"), ("api-ingress", "unchanged")]
    assert "-kind: CiliumNetworkPolicy\n" in both[0].text


def test_a_broken_deployed_set_shows_the_edges_the_proposal_fixes() -> None:
    result = small_diff(policies(DENY_INGRESS, API_FROM_WEB))
    assert result.differs
    assert lines(result, "connectivity", "newly-allowed") == [
        "mon/app=prom -> x/app=api TCP/9090",
        "x/app=api -> x/app=db TCP/5432",
    ]
    assert lines(result, "connectivity", "newly-blocked") == []
    fixed = result.connectivity[0]
    assert fixed.deployed_reason.startswith("ingress denied: pod x/{app=api,tier=backend} is isolated for ingress")
    assert fixed.proposed_reason.endswith("ingress allowed by x/api-ingress ingress[1]")
    assert result.surface == ()


def test_an_open_deployed_set_shows_the_attack_surface_the_proposal_removes() -> None:
    result = small_diff(policies(ALLOW_ALL_INGRESS))
    statuses = {o.name: o.status for o in result.objects}
    assert statuses == {
        "allow-all": "removed",
        "allow-dns": "added",
        "api-egress": "added",
        "api-ingress": "added",
        "db-ingress": "added",
        "default-deny": "added",
        "web-egress": "added",
    }
    # the observed attempt web -> db was let through by the open set; the proposal blocks it
    assert lines(result, "connectivity", "newly-blocked") == ["x/app=web -> x/app=db TCP/5432"]
    assert lines(result, "surface") == [
        "mon/app=prom -> x/app=api TCP/8080",
        "mon/app=prom -> x/app=api TCP/8081",
        "mon/app=prom -> x/app=db TCP/5432",
        "x/app=api -> x/app=api TCP/8080",
        "x/app=api -> x/app=api TCP/8081",
        "x/app=api -> x/app=api TCP/9090",
        "x/app=db -> x/app=api TCP/8080",
        "x/app=db -> x/app=api TCP/8081",
        "x/app=db -> x/app=api TCP/9090",
        "x/app=db -> x/app=db TCP/5432",
        "x/app=web -> x/app=api TCP/8081",
        "x/app=web -> x/app=api TCP/9090",
    ]
    assert all(c.deployed_reason.endswith("ingress allowed by x/allow-all ingress[0]") for c in result.surface)


def test_golden_text_for_the_open_set(update_golden: bool) -> None:
    text = render_diff(small_diff(policies(ALLOW_ALL_INGRESS)), "text")
    golden = GOLDEN / "diff" / "allow-all-ingress.txt"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_proposed_policies_keep_deployed_names_for_the_same_pods_and_direction() -> None:
    deny_all = netpol("deny-all", "x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    other_ns = netpol("api-allow", "y", {"podSelector": {"matchLabels": {"app": "api"}}})
    renamed_set, renamed = adopt_deployed_names(proposed_small(), policies(deny_all, API_FROM_WEB, other_ns))
    # default-deny keeps its name (apply order and roll-back name it), even beside a deployed deny-all
    assert renamed == (("x", "api-ingress", "api-from-web"),)
    assert [p.name for p in renamed_set.policies] == [
        "allow-dns",
        "api-egress",
        "api-from-web",
        "db-ingress",
        "default-deny",
        "web-egress",
    ]
    # a deployed name another proposed policy already uses is never taken
    clash = netpol("db-ingress", "x", {"podSelector": {"matchLabels": {"app": "api"}}})
    assert adopt_deployed_names(proposed_small(), policies(clash))[1] == ()


def test_a_calico_policy_outside_the_default_tier_takes_only_a_name_of_its_tier() -> None:
    proposed = synthesize(observed_small().edges, ["x"], Settings(), PolicyFormat("calico", tier="security")).policies
    assert {p.name for p in proposed.policies} == {
        "security.allow-dns", "security.api-egress", "security.api-ingress", "security.db-ingress",
        "security.default-deny", "security.web-egress",
    }
    # Calico before 3.32 refuses `api-from-web` in tier security: the proposed name stays
    assert adopt_deployed_names(proposed, policies(API_FROM_WEB))[1] == ()
    in_tier = {**API_FROM_WEB, "metadata": {"name": "security.api-from-web", "namespace": "x"}}
    deny_all = netpol("security.deny-all", "x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    renamed = adopt_deployed_names(proposed, policies(API_FROM_WEB, in_tier, deny_all))[1]
    # default-deny keeps its name in a tier too
    assert renamed == (("x", "security.api-ingress", "security.api-from-web"),)


def test_generate_with_deployed_renames_and_diffs(small_store: Path) -> None:
    generated = pipeline.generate(
        Store(str(small_store)), Settings(), namespaces=["x"], deployed=policies(DENY_INGRESS, API_FROM_WEB)
    )
    assert generated.diff is not None
    assert "x/api-from-web.yaml" in generated.files and "x/api-ingress.yaml" not in generated.files
    statuses = {o.name: o.status for o in generated.diff.objects}
    assert statuses["api-from-web"] == "changed" and statuses["deny-ingress"] == "removed"
    assert diff_summary(generated.diff) == (
        "diff x: 1 changed, 5 added, 1 removed, 0 unchanged policies; observed traffic: 2 newly allowed, "
        "0 newly blocked, 5 unchanged; 0 never-observed paths allowed by deployed are closed; deployed verify: "
        "4 observed flows denied, 1 unjudged (protocol); 3 connections allowed that no flow used"
    )


# --- the CLI ---------------------------------------------------------------------------------------------


def test_diff_command_exit_codes_and_formats(synth: Callable[..., Run], small_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert synth("generate", "-n", "x", "--out", out, "--store", small_store).code == 0
    same = synth("diff", "-n", "x", "--deployed", out, "--store", small_store)
    assert same.code == 0, same.err
    assert same.out.startswith("diff x: 0 changed, 0 added, 0 removed, 6 unchanged policies")
    assert "skipped" not in same.err  # generate's own kustomization.yaml files are no news

    open_set = write_policies(tmp_path / "open.yaml", ALLOW_ALL_INGRESS)
    text = synth("diff", "-n", "x", "--deployed", open_set, "--store", small_store)
    assert text.code == 1
    assert text.out == (GOLDEN / "diff" / "allow-all-ingress.txt").read_text()

    markdown = synth("diff", "-n", "x", "--deployed", open_set, "-o", "markdown", "--store", small_store)
    assert markdown.code == 1
    assert markdown.out.startswith("### NetworkPolicy changes in x\n")
    assert (
        "<details><summary>removed: x/allow-all</summary>" in markdown.out
        and "```diff\n--- deployed/x/allow-all" in markdown.out
    )
    assert "| newly-blocked | x/app=web | x/app=db | TCP/5432 | 2 |" in markdown.out
    assert "#### Never observed, allowed today, closed by the proposal (12)" in markdown.out

    document = json.loads(synth("diff", "-n", "x", "--deployed", open_set, "-o", "json", "--store", small_store).out)
    assert document["differs"] is True and len(document["surface"]) == 12
    assert {c["change"] for c in document["connectivity"]} == {"newly-blocked", "unchanged"}
    assert document["objects"][0] == {
        "namespace": "x",
        "name": "allow-all",
        "status": "removed",
        "diff": small_diff(policies(ALLOW_ALL_INGRESS)).objects[0].text,
    }


def test_diff_command_usage_and_cluster_errors(synth: Callable[..., Run], small_store: Path, tmp_path: Path) -> None:
    open_set = write_policies(tmp_path / "open.yaml", ALLOW_ALL_INGRESS)
    both = synth("diff", "-n", "x", "--deployed", open_set, "--cluster", "--store", small_store)
    assert both.code == 2 and "either as files (--deployed PATH) or with --cluster" in both.err
    assert synth("diff", "-n", "x", "--store", small_store).code == 2
    missing = tmp_path / "no-kubeconfig"
    cluster = synth("diff", "-n", "x", "--cluster", "--kubeconfig", missing, "--store", small_store)
    assert cluster.code == 3 and f"{missing}: cannot load the Kubernetes configuration" in cluster.err


def test_generate_with_deployed_prints_a_summary_and_writes_the_diff(
    synth: Callable[..., Run], small_store: Path, tmp_path: Path
) -> None:
    broken = write_policies(tmp_path / "broken.yaml", DENY_INGRESS, API_FROM_WEB)
    report = tmp_path / "DIFF.md"
    run = synth("generate", "-n", "x", "--deployed", broken, "--diff-out", report, "--store", small_store)
    assert run.code == 0
    err = run.err.splitlines()
    assert "x: api-ingress keeps the deployed name api-from-web" in err
    assert any(line.startswith("diff x: 1 changed, 5 added, 1 removed") for line in err)
    assert "name: api-from-web" in run.out
    assert report.read_text().startswith("### NetworkPolicy changes in x\n")
    no_deployed = synth("generate", "-n", "x", "--diff-out", report, "--store", small_store)
    assert no_deployed.code == 2


# --- real captures ---------------------------------------------------------------------------------------


def test_real_captures_diff_against_a_broken_cluster(
    synth: Callable[..., Run],
    captures_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    broken = write_policies(tmp_path / "broken.yaml", *BOOKINFO_BROKEN)
    run = synth("diff", "-n", "bookinfo", "--deployed", broken, "-o", "json", "--store", captures_store)
    assert run.code == 1
    document: dict[str, Any] = json.loads(run.out)
    fixed = [
        (c["src"]["selector"], c["dst"]["selector"], c["port"])
        for c in document["connectivity"]
        if c["change"] == "newly-allowed"
    ]
    assert fixed == [
        ("app=productpage", "app=details", 9080),
        ("app=ratings", "app=productpage", 9080),
        ("app=reviews,version=v2", "app=ratings", 9080),  # only reviews-v2 called ratings
        ("app=prometheus", "app=reviews,version=v1", 15090),
    ]
    # The deployed policy selects every `app: reviews` pod; the proposal has one policy per version
    # (reviews-v1/v2/v3 differ by `version`), so none of them takes over the deployed name.
    assert document["renamed"] == []


def test_default_deny_keeps_its_name_when_the_cluster_has_a_deny_all(small_store: Path) -> None:
    from test_verify import netpol

    deny_all = netpol("deny-all", "x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    generated = pipeline.generate(Store(str(small_store)), Settings(), namespaces=["x"], deployed=policies(deny_all))
    assert "x/default-deny.yaml" in generated.files
    kustomization = generated.files["x/kustomization.yaml"]
    assert kustomization.rstrip().endswith("- default-deny.yaml")
