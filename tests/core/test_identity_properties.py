"""Properties of identity over random namespaces: shared keys, supersets, volatile keys, labels that change within a
workload. Every selector selects exactly its workload's pods among every pod seen, or, when no stable label tells
some workloads apart, exactly the pods of those workloads, which are then reported; and it merges only then.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.base.config import Settings
from synth.core.aggregate import AggregateStats, EdgeSet
from synth.core.identity import Identity, Labels, dns_label, policy_base_names, resolve_identities
from synth.core.synthesize import synthesize

S = Settings()
KEYS = (
    "app",
    "tier",
    "track",
    "version",
    "role",
    "team",
    "app.kubernetes.io/name",
    "app.kubernetes.io/component",
    "pod-template-hash",  # volatile
    "helm.sh/chart",  # volatile
)
VOLATILE = {"pod-template-hash", "helm.sh/chart"}
VALUES = ("a", "b", "c")

labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
# A workload: labels all its pods share, and per pod what it adds or changes (a rollout, a canary-like superset)
workload = st.tuples(labels, st.lists(labels, min_size=1, max_size=3))
namespace = st.lists(workload, min_size=1, max_size=6)

Pods = dict[str, list[dict[str, str]]]


def pods_of(drawn: Sequence[tuple[dict[str, str], list[dict[str, str]]]]) -> Pods:
    return {f"Deployment/w{i}": [{**common, **own} for own in per_pod] for i, (common, per_pod) in enumerate(drawn)}


def as_labels(pod: Mapping[str, str]) -> Labels:
    return tuple(sorted(pod.items()))


def admits(group: Sequence[Mapping[str, str]], pod: Mapping[str, str]) -> bool:
    """Whether the strongest selector true of every pod in `group` (its shared labels, DoesNotExist, NotIn and
    Exists) can also select `pod`, volatile keys left out: then no selector separates them."""
    group = [{k: v for k, v in p.items() if k not in VOLATILE} for p in group]
    pod = {k: v for k, v in pod.items() if k not in VOLATILE}
    every = set.intersection(*(set(p.items()) for p in group))
    keys_everywhere = set.intersection(*(set(p) for p in group))
    return (
        every <= set(pod.items())
        and keys_everywhere <= set(pod)
        and all(any(p.get(k) == v for p in group) for k, v in pod.items())
    )


def resolved(pods: Pods) -> dict[tuple[str, str], Identity]:
    return resolve_identities({("ns", w): [as_labels(p) for p in members] for w, members in pods.items()}, S)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(namespace)
def test_every_selector_selects_exactly_its_pods(drawn: list[tuple[dict[str, str], list[dict[str, str]]]]) -> None:
    pods = pods_of(drawn)
    identities = resolved(pods)
    for name, identity in ((w, identities[("ns", w)]) for w in pods):
        assert name in identity.workloads
        assert all(identities[("ns", w)] == identity for w in identity.workloads)
        if identity.method == "none":
            members = [p for w in identity.workloads for p in pods[w]]
            shared = set.intersection(*({(k, v) for k, v in p.items() if k not in VOLATILE} for p in members))
            assert not shared  # unselectable only when no label is shared
            continue
        for other, members in pods.items():
            for pod in members:  # every pod seen: its own selected, every other workload's not
                assert identity.selector.matches(pod) is (other in identity.workloads), (name, other, pod)
        used = {k for k, _ in identity.selector.match_labels} | {r.key for r in identity.selector.match_expressions}
        assert not used & VOLATILE


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(namespace)
def test_workloads_merge_only_when_no_label_separates_them(
    drawn: list[tuple[dict[str, str], list[dict[str, str]]]],
) -> None:
    pods = pods_of(drawn)
    identities = resolved(pods)
    for identity in {i.key: i for i in identities.values() if i.merged}.values():
        members = identity.workloads
        # no split of the merged workloads into two sides that leave each other's pods out
        for size in range(1, len(members)):
            for side in itertools.combinations(members, size):
                rest = [w for w in members if w not in side]
                one = [p for w in side for p in pods[w]]
                two = [p for w in rest for p in pods[w]]
                separable = not any(admits(one, p) for p in two) and not any(admits(two, p) for p in one)
                assert not separable, (side, rest)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(namespace)
def test_merged_workloads_are_reported_and_names_are_unique(
    drawn: list[tuple[dict[str, str], list[dict[str, str]]]],
) -> None:
    pods = pods_of(drawn)
    identities = resolved(pods)
    by_key = {("ns", i.key): i for i in identities.values()}
    synthesis = synthesize(EdgeSet((), by_key, {}, {}, AggregateStats()), ["ns"], S)
    reported = {f.subject for f in synthesis.findings if f.kind == "inseparable"}
    merged = {f"ns/{', '.join(i.workloads)}" for i in by_key.values() if i.merged and i.method != "none"}
    assert reported == merged
    names = policy_base_names(by_key.values())
    assert len(set(names.values())) == len(names)
    assert all(dns_label(n, 63) == n for n in names.values())
    assert resolved(dict(reversed(list(pods.items())))) == identities  # whatever order the groups come in
