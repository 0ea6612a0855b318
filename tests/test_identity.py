"""Labels to selectors: the rule that decides whether a policy survives the next rollout."""

from __future__ import annotations

import pytest

from synth.base.config import Settings
from synth.core.identity import (
    Labels,
    choose_identity,
    owner_of_pod,
    policy_base_names,
    resolve_identities,
    valid_label_key,
    valid_label_value,
)

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


def test_workloads_sharing_a_selector_merge_and_names_are_stable() -> None:
    groups = {
        ("bookinfo", "Deployment/reviews-v1"): [L(("app", "reviews"), ("version", "v1"))],
        ("bookinfo", "Deployment/reviews-v2"): [L(("app", "reviews"), ("version", "v2"))],
        ("bookinfo", "Deployment/details"): [L(("app", "details"))],
    }
    identities = resolve_identities(groups, S)
    reviews = identities[("bookinfo", "Deployment/reviews-v1")]
    assert (
        reviews is identities[("bookinfo", "Deployment/reviews-v2")]
        or reviews == identities[("bookinfo", "Deployment/reviews-v2")]
    )
    assert reviews.workloads == ("Deployment/reviews-v1", "Deployment/reviews-v2")
    names = policy_base_names(identities.values())
    assert names[("bookinfo", "app=reviews")] == "reviews"
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
