"""Labels to selectors: the rule that decides whether a policy survives the next rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flowbuilder import Peer as FlowPeer
from flowbuilder import Pod, flow, write
from reports import report_of

from synth.app.generation import generate
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.identity import (
    Labels,
    choose_identity,
    owner_of_pod,
    policy_base_names,
    resolve_identities,
    selection_problems,
    valid_label_key,
    valid_label_value,
)
from synth.core.model import LabelSelector, NetworkPolicy, Peer, Requirement, Rule
from synth.store.dataset import Store

S = Settings()


def L(*pairs: tuple[str, str]) -> Labels:
    return tuple(sorted(pairs))


CASES = [
    # name, label sets of the workload's pods, expected selector, method
    (
        "rollout keeps one selector",
        [
            L(("app", "api"), ("pod-template-hash", "7d9f8b6c5d"), ("version", "1.4")),
            L(("app", "api"), ("pod-template-hash", "5c4b7f9d8"), ("version", "1.5")),
        ],
        "app=api",
        "stable-key",
    ),
    (
        "only app.kubernetes.io/name gets that key",
        [L(("app.kubernetes.io/name", "ledger"), ("team", "payments"))],
        "app.kubernetes.io/name=ledger",
        "stable-key",
    ),
    (
        "name and component together",
        [
            L(
                ("app.kubernetes.io/name", "api"),
                ("app.kubernetes.io/component", "server"),
                ("app.kubernetes.io/version", "1.4"),
            )
        ],
        "app.kubernetes.io/component=server,app.kubernetes.io/name=api",
        "stable-key",
    ),
    (
        "component only when every pod has it",
        [
            L(("app.kubernetes.io/name", "api"), ("app.kubernetes.io/component", "server")),
            L(("app.kubernetes.io/name", "api")),
        ],
        "app.kubernetes.io/name=api",
        "stable-key",
    ),
    ("k8s-app", [L(("k8s-app", "kube-dns"), ("pod-template-hash", "x"))], "k8s-app=kube-dns", "stable-key"),
    (
        "name",
        [L(("name", "fluentd"), ("controller-revision-hash", "abc"), ("pod-template-generation", "3"))],
        "name=fluentd",
        "stable-key",
    ),
    (
        "stable key that differs across pods falls to the next key",
        [L(("app", "a"), ("k8s-app", "shared")), L(("app", "b"), ("k8s-app", "shared"))],
        "k8s-app=shared",
        "stable-key",
    ),
    (
        "no stable key: the intersection of non-volatile labels",
        [
            L(("tier", "backend"), ("team", "x"), ("job-name", "run-1"), ("controller-uid", "u1")),
            L(("tier", "backend"), ("team", "x"), ("job-name", "run-2"), ("controller-uid", "u2")),
        ],
        "team=x,tier=backend",
        "intersection",
    ),
    (
        "intersection keeps version when nothing better exists",
        [L(("tier", "web"), ("version", "v1"))],
        "tier=web,version=v1",
        "intersection",
    ),
    (
        "cronjob pods: job labels never enter",
        [
            L(
                ("app.kubernetes.io/name", "reconcile"),
                ("batch.kubernetes.io/job-name", "reconcile-290"),
                ("job-name", "reconcile-290"),
                ("batch.kubernetes.io/controller-uid", "x"),
            )
        ],
        "app.kubernetes.io/name=reconcile",
        "stable-key",
    ),
    (
        "statefulset pod name label dropped",
        [
            L(("statefulset.kubernetes.io/pod-name", "ledger-0"), ("role", "db")),
            L(("statefulset.kubernetes.io/pod-name", "ledger-1"), ("role", "db")),
        ],
        "role=db",
        "intersection",
    ),
    ("nothing shared: no selector at all", [L(("a", "1")), L(("b", "2"))], "", "none"),
    ("no labels at all", [()], "", "none"),
]


@pytest.mark.parametrize(("name", "sets", "selector", "method"), CASES, ids=[c[0] for c in CASES])
def test_selector_choice(name: str, sets: list[Labels], selector: str, method: str) -> None:
    identity = choose_identity("ns", "Deployment/w", sets, S)
    assert identity.method == method
    if method != "none":
        assert identity.selector.canonical() == selector
        for pod in sets:  # the selector selects every pod that produced flows
            assert identity.selector.matches(dict(pod))
    else:
        assert identity.key.startswith("?")


def test_invalid_labels_never_enter_a_selector_and_are_reported() -> None:
    evil = L(("app", 'x"; rm -rf /'), ("team", "ok"), ("bad key!", "v"), ("k", "a\nb"))
    identity = choose_identity("ns", "Deployment/w", [evil], S)
    assert identity.selector.canonical() == "team=ok"
    assert set(identity.rejected_labels) == {'app=x"; rm -rf /', "bad key!=v", "k=a\nb"}


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("a/b/c", False),
        ("-x", False),
        ("x" * 63, True),
        ("x" * 64, False),
        ("Example.com/x", False),
        ("example.com/", False),
        ("k8s.io/x_y.z", True),
    ],
)
def test_label_key_validation(key: str, ok: bool) -> None:
    assert valid_label_key(key) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("v1.2_3-x", True),
        ("-x", False),
        ("a b", False),
        ("x" * 63, True),
        ("x" * 64, False),
        ("{{x}}", False),
    ],
)
def test_label_value_validation(value: str, ok: bool) -> None:
    assert valid_label_value(value) is ok


@pytest.mark.parametrize(
    ("pod", "owner"),
    [
        ("api-7d9f8b6c5d-x2x4z", "Deployment/api"),
        ("reviews-v1-545db77b95-s6jb8", "Deployment/reviews-v1"),
        ("ledger-0", "StatefulSet/ledger"),
        ("reconcile-29012345-abcde", "CronJob/reconcile"),
        ("node-local-dns-88zrp", "node-local-dns"),
        ("nginx-86c57db685-*", "Deployment/nginx"),
        ("standalone", "standalone"),
    ],
)
def test_owner_from_pod_name(pod: str, owner: str) -> None:
    assert owner_of_pod(pod) == owner


def test_workloads_sharing_app_are_told_apart_by_version_and_names_are_stable() -> None:
    groups = {
        ("bookinfo", "Deployment/reviews-v1"): [L(("app", "reviews"), ("version", "v1"))],
        ("bookinfo", "Deployment/reviews-v2"): [L(("app", "reviews"), ("version", "v2"))],
        ("bookinfo", "Deployment/details"): [L(("app", "details"))],
    }
    identities = resolve_identities(groups, S)
    assert identities[("bookinfo", "Deployment/reviews-v1")].key == "app=reviews,version=v1"
    assert identities[("bookinfo", "Deployment/reviews-v2")].key == "app=reviews,version=v2"
    names = policy_base_names(identities.values())
    assert names[("bookinfo", "app=reviews,version=v1")] == "reviews-v1"
    assert names[("bookinfo", "app=reviews,version=v2")] == "reviews-v2"
    assert names[("bookinfo", "app=details")] == "details"


def test_colliding_names_get_a_deterministic_suffix() -> None:
    groups = {
        ("ns", "Deployment/a"): [L(("app", "web"))],
        ("ns", "Deployment/b"): [L(("app.kubernetes.io/name", "web"))],
    }
    first = policy_base_names(resolve_identities(groups, S).values())
    second = policy_base_names(resolve_identities(dict(reversed(list(groups.items()))), S).values())
    assert first == second
    assert first[("ns", "app.kubernetes.io/name=web")] == "web"
    assert first[("ns", "app=web")].startswith("web-") and len(first[("ns", "app=web")]) == len("web-") + 6


# --- separating selectors: one namespace, several workloads -------------------------------------------------

TIERED = {
    "Deployment/web": [L(("app", "retail"), ("tier", "web"), ("pod-template-hash", "5d8f7c9b6"))],
    "Deployment/api": [L(("app", "retail"), ("tier", "api"), ("pod-template-hash", "7c9d5b8f6"))],
    "Deployment/api-canary": [
        L(("app", "retail"), ("tier", "api"), ("track", "canary"), ("pod-template-hash", "6b7c8d9f5"))
    ],
    "Deployment/worker": [L(("app", "retail"), ("tier", "worker"))],
    "StatefulSet/cache": [L(("app", "retail"), ("tier", "cache"), ("statefulset.kubernetes.io/pod-name", "cache-0"))],
    "StatefulSet/db": [L(("app", "retail"), ("tier", "db"), ("statefulset.kubernetes.io/pod-name", "db-0"))],
}

LAYOUTS = [
    # name, {workload: label sets}, {workload: expected selector}, expected groups of merged workloads
    (
        "one app, tiers and a canary",
        TIERED,
        {
            "Deployment/web": "app=retail,tier=web",
            "Deployment/api": "app=retail,tier=api,track DoesNotExist",
            "Deployment/api-canary": "app=retail,track=canary",
            "Deployment/worker": "app=retail,tier=worker",
            "StatefulSet/cache": "app=retail,tier=cache",
            "StatefulSet/db": "app=retail,tier=db",
        },
        [],
    ),
    (
        "one app, versions",
        {
            "Deployment/reviews-v1": [L(("app", "reviews"), ("version", "v1"))],
            "Deployment/reviews-v2": [L(("app", "reviews"), ("version", "v2"))],
            "Deployment/reviews-v3": [L(("app", "reviews"), ("version", "v3"))],
            "Deployment/ratings-v1": [L(("app", "ratings"), ("version", "v1"))],
        },
        {
            "Deployment/reviews-v1": "app=reviews,version=v1",
            "Deployment/reviews-v2": "app=reviews,version=v2",
            "Deployment/reviews-v3": "app=reviews,version=v3",
            "Deployment/ratings-v1": "app=ratings",
        },
        [],
    ),
    (
        "app.kubernetes.io/name with component (its companion), and a plain component key",
        {
            "Deployment/shop-api": [L(("app.kubernetes.io/name", "shop"), ("app.kubernetes.io/component", "api"))],
            "Deployment/shop-worker": [
                L(("app.kubernetes.io/name", "shop"), ("app.kubernetes.io/component", "worker"))
            ],
            "Deployment/front": [L(("app", "store"), ("component", "frontend"))],
            "Deployment/back": [L(("app", "store"), ("component", "backend"))],
        },
        {
            "Deployment/shop-api": "app.kubernetes.io/component=api,app.kubernetes.io/name=shop",
            "Deployment/shop-worker": "app.kubernetes.io/component=worker,app.kubernetes.io/name=shop",
            "Deployment/front": "app=store,component=frontend",
            "Deployment/back": "app=store,component=backend",
        },
        [],
    ),
    (
        "stable with another track value, stable without track, canary",
        {
            "Deployment/api": [L(("app", "api"), ("track", "stable"))],
            "Deployment/api-plain": [L(("app", "api"))],
            "Deployment/api-canary": [L(("app", "api"), ("track", "canary"))],
        },
        {
            "Deployment/api": "app=api,track=stable",
            "Deployment/api-plain": "app=api,track DoesNotExist",
            "Deployment/api-canary": "app=api,track=canary",
        },
        [],
    ),
    (
        "NotIn when some of the stable pods carry the key (NotIn also matches the pods without it)",
        {
            "Deployment/api": [L(("app", "api"), ("track", "stable")), L(("app", "api"))],
            "Deployment/api-canary": [L(("app", "api"), ("track", "canary"))],
        },
        {"Deployment/api": "app=api,track NotIn (canary)", "Deployment/api-canary": "app=api,track=canary"},
        [],
    ),
    (
        "a rollout changing version inside one Deployment never puts version in its selector",
        {
            "Deployment/api": [L(("app", "api"), ("version", "1.4")), L(("app", "api"), ("version", "1.5"))],
            "Deployment/api-worker": [L(("app", "api"), ("role", "worker"))],
        },
        {"Deployment/api": "app=api,role DoesNotExist", "Deployment/api-worker": "app=api,role=worker"},
        [],
    ),
    (
        "Exists when every pod carries a key the other workload lacks, with changing values",
        {
            "Deployment/api": [L(("app", "x"), ("version", "a")), L(("app", "x"), ("version", "b"))],
            "Deployment/sidecar": [L(("app", "x"))],
        },
        {"Deployment/api": "app=x,version Exists", "Deployment/sidecar": "app=x,version DoesNotExist"},
        [],
    ),
    (
        "a well-known key is preferred to an arbitrary one",
        {
            "Deployment/a": [L(("app", "x"), ("tier", "a"), ("flavor", "p"))],
            "Deployment/b": [L(("app", "x"), ("tier", "b"), ("flavor", "q"))],
        },
        {"Deployment/a": "app=x,tier=a", "Deployment/b": "app=x,tier=b"},
        [],
    ),
    (
        "fewer keys before well-known ones",
        {
            "Deployment/w": [L(("app", "a"), ("tier", "t"), ("role", "r"), ("flavor", "w"))],
            "Deployment/x": [L(("app", "a"), ("tier", "t"), ("role", "s"), ("flavor", "x"))],
            "Deployment/y": [L(("app", "a"), ("tier", "u"), ("role", "r"), ("flavor", "y"))],
        },
        {
            "Deployment/w": "app=a,flavor=w",
            "Deployment/x": "app=a,role=s",
            "Deployment/y": "app=a,tier=u",
        },
        [],
    ),
    (
        "no stable key: the intersection, plus what leaves out the superset",
        {
            "Deployment/a": [L(("team", "x"), ("tier", "web"))],
            "Deployment/b": [L(("team", "x"), ("tier", "web"), ("debug", "on"))],
        },
        {"Deployment/a": "team=x,tier=web,debug DoesNotExist", "Deployment/b": "debug=on,team=x,tier=web"},
        [],
    ),
    (
        "identical labels cannot be separated: one identity for both",
        {
            "Deployment/a": [L(("app", "x"), ("pod-template-hash", "1"))],
            "Deployment/b": [L(("app", "x"), ("pod-template-hash", "2"))],
            "Deployment/c": [L(("app", "y"))],
        },
        {"Deployment/a": "app=x", "Deployment/b": "app=x", "Deployment/c": "app=y"},
        [("Deployment/a", "Deployment/b")],
    ),
    (
        "a label combination no single term excludes cannot be separated",
        {
            "Deployment/w": [L(("a", "1"), ("b", "1"), ("c", "1")), L(("a", "1"), ("b", "2"), ("c", "2"))],
            "Deployment/x": [L(("a", "1"), ("b", "1"), ("c", "2"))],
        },
        {"Deployment/w": "a=1", "Deployment/x": "a=1"},
        [("Deployment/w", "Deployment/x")],
    ),
]


@pytest.mark.parametrize(("name", "layout", "expected", "merged"), LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_separating_selectors(
    name: str, layout: dict[str, list[Labels]], expected: dict[str, str], merged: list[tuple[str, ...]]
) -> None:
    identities = resolve_identities({("ns", w): sets for w, sets in layout.items()}, S)
    assert {w: identities[("ns", w)].key for w in layout} == expected
    assert sorted({i.workloads for i in identities.values() if i.merged}) == merged
    for workload, identity in ((w, identities[("ns", w)]) for w in layout):
        for other, sets in layout.items():  # every label set seen: its own all selected, the others' none
            selected = other in identity.workloads
            assert all(identity.selector.matches(dict(labels)) is selected for labels in sets), (workload, other)
    reordered = resolve_identities({("ns", w): sets for w, sets in reversed(layout.items())}, S)
    assert reordered == identities


def test_tiered_names_are_readable_and_unique() -> None:
    identities = resolve_identities({("retail", w): sets for w, sets in TIERED.items()}, S)
    names = policy_base_names(identities.values())
    assert sorted(names.values()) == [
        "retail-api",
        "retail-cache",
        "retail-canary",
        "retail-db",
        "retail-web",
        "retail-worker",
    ]


def test_namespaces_are_separated_independently() -> None:
    groups = {
        ("a", "Deployment/api"): [L(("app", "api"), ("tier", "x"))],
        ("a", "Deployment/web"): [L(("app", "web"))],
        ("b", "Deployment/api"): [L(("app", "api"), ("tier", "y"))],
    }
    identities = resolve_identities(groups, S)
    assert identities[("a", "Deployment/api")].key == "app=api"
    assert identities[("b", "Deployment/api")].key == "app=api"


def test_canonical_selector_is_the_same_whatever_the_order_of_its_parts() -> None:
    first = LabelSelector(
        (("tier", "api"), ("app", "retail")),
        (Requirement("track", "NotIn", ("qa", "canary")), Requirement("debug", "DoesNotExist")),
    )
    second = LabelSelector(
        (("app", "retail"), ("tier", "api")),
        (Requirement("debug", "DoesNotExist"), Requirement("track", "NotIn", ("canary", "qa"))),
    )
    assert first.canonical() == second.canonical() == "app=retail,tier=api,debug DoesNotExist,track NotIn (canary|qa)"


def test_selection_problems_catch_a_selector_that_selects_another_workloads_pods() -> None:
    pods = {
        ("ns", "web-1"): L(("app", "retail"), ("tier", "web")),
        ("ns", "db-0"): L(("app", "retail"), ("tier", "db")),
    }
    members = {("ns", "app=retail,tier=web"): ["web-1"], ("ns", "app=retail,tier=db"): ["db-0"]}
    too_wide = NetworkPolicy("retail-ingress", "ns", LabelSelector.of({"app": "retail"}), ("Ingress",))
    exact = NetworkPolicy("web-ingress", "ns", LabelSelector.of({"app": "retail", "tier": "web"}), ("Ingress",))
    peer = Rule(peers=(Peer(pod_selector=LabelSelector.of({"app": "retail"})),))
    db = LabelSelector.of({"app": "retail", "tier": "db"})
    wide_peer = NetworkPolicy("db-ingress", "ns", db, ("Ingress",), (peer,))
    assert selection_problems([exact], members, pods) == ()
    assert selection_problems([too_wide], members, pods) == (
        "ns/retail-ingress: podSelector {app=retail} selects pod ns/db-0 of app=retail,tier=db",
        "ns/retail-ingress: podSelector {app=retail} selects pod ns/web-1 of app=retail,tier=web",
    )
    assert selection_problems([wide_peer], members, pods) == (
        "ns/db-ingress: peer podSelector {app=retail} selects pod ns/db-0 of app=retail,tier=db",
        "ns/db-ingress: peer podSelector {app=retail} selects pod ns/web-1 of app=retail,tier=web",
    )


# --- end to end: what synthesis and the report make of it ---------------------------------------------------


def _store(tmp_path: Path, flows: list[dict[str, Any]]) -> Store:
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(write(tmp_path / "flows.json", flows))])
    return store


def test_inseparable_workloads_share_rules_and_are_reported(tmp_path: Path) -> None:
    one = Pod("ns", "a-5d8f7c9b6d-x2x4z", {"app": "x", "pod-template-hash": "5d8f7c9b6d"}, "10.0.0.1", "Deployment/a")
    two = Pod("ns", "b-7c9d5b8f6c-k2l9m", {"app": "x", "pod-template-hash": "7c9d5b8f6c"}, "10.0.0.2", "Deployment/b")
    db = Pod("ns", "db-0", {"app": "db"}, "10.0.0.3", "StatefulSet/db")
    generated, report = report_of(_store(tmp_path, [flow(one, db, 5432), flow(two, db, 6379)]), ["ns"])
    (finding,) = [f for f in generated.synthesis.findings if f.kind == "inseparable"]
    assert finding.subject == "ns/Deployment/a, Deployment/b"
    assert finding.detail.startswith("cannot be separated by labels: label the pods")
    egress = next(p for p in generated.synthesis.policies.policies if p.name == "x-egress")
    assert egress.pod_selector.canonical() == "app=x"
    assert any(line.startswith("No stable label tells these workloads apart") for line in egress.comment)
    (risk,) = [r for r in report.risks if r.kind == "inseparable"]
    assert risk.title == "Workloads no label can separate"
    assert [i.subject for i in risk.items] == ["ns/Deployment/a, Deployment/b"]


def test_tiered_workloads_get_one_policy_each_and_pass_the_self_check(tmp_path: Path) -> None:
    def pod(name: str, tier: str, ip: str, **extra: str) -> Pod:
        labels = {"app": "retail", "tier": tier, **extra}
        return Pod("retail", f"{name}-5d8f7c9b6d-x2x4z", labels, ip, f"Deployment/{name}")

    web, api = pod("web", "web", "10.0.0.1"), pod("api", "api", "10.0.0.2")
    canary = pod("api-canary", "api", "10.0.0.3", track="canary")
    flows = [flow(web, api, 8080), flow(web, canary, 8080), flow(canary, FlowPeer("world", "203.0.113.9"), 443)]
    generated = generate(_store(tmp_path, flows), S, namespaces=["retail"])
    selectors = {p.name: p.pod_selector.canonical() for p in generated.synthesis.policies.policies}
    assert selectors == {
        "allow-dns": "",
        "default-deny": "",
        "retail-api-ingress": "app=retail,tier=api,track DoesNotExist",
        "retail-canary-egress": "app=retail,track=canary",
        "retail-canary-ingress": "app=retail,track=canary",
        "retail-web-egress": "app=retail,tier=web",
    }
    assert not [f for f in generated.synthesis.findings if f.kind == "inseparable"]
    text = generated.files["retail/retail-api-ingress.yaml"]
    assert yaml.safe_load(text)["spec"]["podSelector"] == {
        "matchLabels": {"app": "retail", "tier": "api"},
        "matchExpressions": [{"key": "track", "operator": "DoesNotExist"}],
    }
