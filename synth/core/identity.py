"""Labels to selectors: which labels identify a workload, so that its policy survives a rollout and
selects no other workload's pods (DESIGN.md, "Identity").

A workload is the pods of one owner (or of one pod name's guessed owner when the source does not
say). Per namespace, over every label set seen for every workload in the window:

1. Clean: volatile keys (hashes, job names, chart and app versions) and labels that are not valid
   Kubernetes labels (reported) never enter a selector.
2. Merge what cannot be told apart: when even the strongest selector a workload can have (every
   label all its pods carried, plus `DoesNotExist`/`NotIn`/`Exists` on the keys where the others
   differ) also selects a pod of another workload, the two become one identity; synthesis reports it.
3. Choose: the base is the first stable identity key shared by every pod (`app.kubernetes.io/name`
   [+ `component`], `app`, `k8s-app`, `name`), else every label they share (an intersection). Where
   the base also selects another workload's pods, add the fewest terms that leave them out:
   labels every pod carried (well-known keys such as `tier`, `component`, `version`, `track` first),
   then expressions (`track DoesNotExist` beside a canary, `track NotIn [canary]`).
4. Check both duties against every label set seen: each selector selects all of its workload's
   pods and none of the others'. A failure is a bug and raises.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from synth.base.config import NAMESPACE_NAME_LABEL, Settings
from synth.base.errors import GenerationError
from synth.core.model import LabelSelector, NetworkPolicy, Requirement

Labels = tuple[tuple[str, str], ...]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HASH_CHARS = "[bcdfghjklmnpqrstvwxz2456789]"
_OWNER_PATTERNS = (
    (re.compile(rf"^(.+)-{_HASH_CHARS}{{6,10}}-{_HASH_CHARS}{{5}}$"), "Deployment"),
    (re.compile(rf"^(.+)-{_HASH_CHARS}{{6,10}}-\*$"), "Deployment"),
    (re.compile(r"^(.+)-\d{8,}-[a-z0-9]{5}$"), "CronJob"),
    (re.compile(r"^(.+)-\d{8,}-\*$"), "CronJob"),
    (re.compile(r"^(.+)-\d+$"), "StatefulSet"),
    (re.compile(rf"^(.+)-{_HASH_CHARS}{{5}}$"), ""),
    (re.compile(r"^(.+)-\*$"), ""),
)


def valid_label_key(key: str) -> bool:
    """A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a 63-character name."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return False
    return bool(_NAME_RE.match(name))


def valid_label_value(value: str) -> bool:
    """A Kubernetes label value: empty, or up to 63 alphanumerics with `-_.` inside."""
    return value == "" or bool(_NAME_RE.match(value))


@functools.lru_cache(maxsize=65536)
def owner_of_pod(pod: str) -> str:
    """The owner of a pod guessed from its name (`api-7d9f8b6c5d-x2x4z` → `Deployment/api`).

    Used only when the source does not report the owner; it groups pods, it never becomes a label.
    """
    for pattern, kind in _OWNER_PATTERNS:
        match = pattern.match(pod)
        if match:
            return f"{kind}/{match.group(1)}" if kind else match.group(1)
    return pod


@dataclass(frozen=True, slots=True)
class Identity:
    """The selector chosen for one workload (or several that no label separates), and how it was chosen.

    `method` is `stable-key`, `intersection`, or `none` (no label is shared by every pod; the
    group cannot be selected and its edges are reported instead of turned into rules). More than
    one workload means they could not be told apart: the selector selects the pods of all of them.
    """

    namespace: str
    selector: LabelSelector
    method: str
    workloads: tuple[str, ...]
    name: str
    rejected_labels: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The canonical selector string used in edge tables."""
        return self.selector.canonical() if self.method != "none" else f"?{','.join(self.workloads)}"

    @property
    def merged(self) -> bool:
        """True when several workloads share this identity because no stable label separates them."""
        return len(self.workloads) > 1


@dataclass(frozen=True, slots=True)
class _Group:
    """One workload, or several merged ones: every cleaned label set seen for its pods, and what they share."""

    workloads: tuple[str, ...]
    sets: tuple[dict[str, str], ...]
    rejected: frozenset[str]
    shared: dict[str, str]  # labels every pod carried, with the same value, through the whole window
    everywhere: frozenset[str]  # keys every pod carried
    values: dict[str, frozenset[str]]  # every value seen per key

    @classmethod
    def of(cls, workloads: tuple[str, ...], sets: Iterable[dict[str, str]], rejected: frozenset[str]) -> _Group:
        """A group of these label sets (at least one; `{}` for a pod seen without labels)."""
        distinct = _distinct(sets) or ({},)
        everywhere = frozenset.intersection(*(frozenset(labels) for labels in distinct))
        values: dict[str, set[str]] = {}
        for labels in distinct:
            for key, value in labels.items():
                values.setdefault(key, set()).add(value)
        shared = {k: next(iter(values[k])) for k in sorted(everywhere) if len(values[k]) == 1}
        return cls(workloads, distinct, rejected, shared, everywhere, {k: frozenset(v) for k, v in values.items()})

    def admits_at_most(self, labels: Mapping[str, str]) -> bool:
        """Whether the strongest selector true of all its pods also selects `labels`: its shared labels,
        `DoesNotExist` on keys none of its pods had, `NotIn` the values none had, `Exists` on keys all had."""
        return self.everywhere <= labels.keys() and all(v in self.values.get(k, ()) for k, v in labels.items())

    def join(self, other: _Group) -> _Group:
        """The group of both: their workloads and label sets."""
        workloads = tuple(sorted({*self.workloads, *other.workloads}))
        return _Group.of(workloads, [*self.sets, *other.sets], self.rejected | other.rejected)


@dataclass(frozen=True, slots=True)
class _Term:
    """One part of a selector: a `matchLabels` pair (`requirement` None) or one `matchExpressions` entry."""

    rank: tuple[int, int, str, int]
    key: str
    value: str = ""
    requirement: Requirement | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.requirement is not None:
            return self.requirement.matches(labels)
        return labels.get(self.key) == self.value


_OPERATOR_RANK = {"DoesNotExist": 0, "NotIn": 1, "Exists": 2}
_SEARCH_BUDGET = 20_000  # combinations tried before the cover search falls back to greedy


def _is_volatile(key: str, settings: Settings) -> bool:
    return key in settings.volatile_labels or key.startswith(settings.volatile_prefixes)


def _clean(workload: str, label_sets: Iterable[Labels], settings: Settings) -> _Group:
    """Volatile keys out; labels no real pod can carry out and remembered for the report."""
    rejected: set[str] = set()
    cleaned: list[dict[str, str]] = []
    for labels in label_sets:
        kept = {}
        for key, value in labels:
            if _is_volatile(key, settings):
                continue
            if not valid_label_key(key) or not valid_label_value(value):
                rejected.add(f"{key}={value}")
                continue
            kept[key] = value
        cleaned.append(kept)
    return _Group.of((workload,), cleaned, frozenset(rejected))


def _distinct(sets: Iterable[dict[str, str]]) -> tuple[dict[str, str], ...]:
    unique = {tuple(sorted(labels.items())): labels for labels in sets}
    return tuple(unique[k] for k in sorted(unique))


def choose_identity(namespace: str, workload: str, label_sets: Iterable[Labels], settings: Settings) -> Identity:
    """The selector for one workload alone in its namespace, from every label set its pods were seen with."""
    return _choose(namespace, _clean(workload, label_sets, settings), (), settings)


def resolve_identities(
    groups: Mapping[tuple[str, str], Iterable[Labels]], settings: Settings
) -> dict[tuple[str, str], Identity]:
    """Identities for every (namespace, workload) group, each selecting its pods and no other group's.

    Groups that no stable label tells apart share one identity (its `workloads` lists them all).
    """
    by_namespace: dict[str, list[_Group]] = {}
    for (namespace, workload), label_sets in sorted(groups.items()):
        by_namespace.setdefault(namespace, []).append(_clean(workload, label_sets, settings))
    result: dict[tuple[str, str], Identity] = {}
    for namespace, members in by_namespace.items():
        final = _merge_inseparable(members)
        for group in final:
            others = [labels for other in final if other is not group for labels in other.sets]
            identity = _choose(namespace, group, others, settings)
            _prove(identity, group, others)
            for workload in group.workloads:
                result[(namespace, workload)] = identity
    return result


def _merge_inseparable(groups: list[_Group]) -> list[_Group]:
    """Join groups until every selectable one can leave out every other's pods.

    Groups are taken in sorted order, and a joined group is taken again at once (it admits more than its
    parts), so the result is deterministic. A group is compared only with the groups that carry the rarest
    of its shared labels: every pod it admits carries them all.
    """
    alive = {group.workloads: group for group in groups}
    carriers: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for member in alive.values():
        _carry(carriers, member, add=True)
    queue = collections.deque(sorted(alive))
    while queue:
        group = alive.get(queue.popleft())
        if group is None or not group.shared:
            continue  # joined already, or cannot be selected (needs no selector to leave the others out)
        rarest = min(group.shared.items(), key=lambda pair: len(carriers[pair]))
        theirs = next(
            (
                alive[key]
                for key in sorted(carriers[rarest] - {group.workloads})
                if any(group.admits_at_most(labels) for labels in alive[key].sets)
            ),
            None,
        )
        if theirs is None:
            continue
        joined = group.join(theirs)
        for old in (group, theirs):
            del alive[old.workloads]
            _carry(carriers, old, add=False)
        alive[joined.workloads] = joined
        _carry(carriers, joined, add=True)
        queue.appendleft(joined.workloads)
    return sorted(alive.values(), key=lambda g: g.workloads)


def _carry(carriers: dict[tuple[str, str], set[tuple[str, ...]]], group: _Group, *, add: bool) -> None:
    """Index (or unindex) the group under every label its pods carry."""
    for labels in group.sets:
        for pair in labels.items():
            holders = carriers.setdefault(pair, set())
            if add:
                holders.add(group.workloads)
            else:
                holders.discard(group.workloads)


def _choose(namespace: str, group: _Group, others: Sequence[Mapping[str, str]], settings: Settings) -> Identity:
    """Base selector, then the fewest terms that leave out every other group's pods."""
    rejected = tuple(sorted(group.rejected))
    short = group.workloads[0].rsplit("/", 1)[-1]
    shared = group.shared
    if not shared:
        return Identity(namespace, LabelSelector(), "none", group.workloads, short, rejected)
    base, method = _base(shared, settings)
    targets = [labels for labels in others if all(labels.get(k) == shared[k] for k in base)]
    extra = _fewest(_candidates(group, shared, set(base), targets, settings), targets)
    if extra is None:  # resolve_identities merges such groups first; choose_identity has no others
        raise GenerationError(f"{namespace}/{', '.join(group.workloads)}: no selector leaves out the other pods")
    pairs = [(k, shared[k]) for k in base] + [(t.key, t.value) for t in extra if t.requirement is None]
    requirements = tuple(sorted((t.requirement for t in extra if t.requirement is not None), key=_requirement_order))
    selector = LabelSelector(tuple(sorted(pairs)), requirements)
    name = "-".join(v for _, v in pairs) if method == "stable-key" else short
    return Identity(namespace, selector, method, group.workloads, name, rejected)


def _requirement_order(requirement: Requirement) -> tuple[str, str, tuple[str, ...]]:
    return (requirement.key, requirement.operator, requirement.values)


def _base(shared: Mapping[str, str], settings: Settings) -> tuple[list[str], str]:
    """The first stable identity key all pods share (with its companions), else every shared label."""
    for key, companions in settings.stable_keys:
        if key in shared:
            return [key, *(c for c in companions if c in shared)], "stable-key"
    return sorted(shared), "intersection"


def _candidates(
    group: _Group, shared: Mapping[str, str], used: set[str], targets: Sequence[Mapping[str, str]], settings: Settings
) -> list[_Term]:
    """Terms true of every pod of the group, best first: its other shared labels (well-known keys first),
    then expressions on the keys where the targets (other pods the base selects) differ: `DoesNotExist`
    where none of its pods had the key, `NotIn` the targets' values none had, `Exists` where all had it."""
    preferred = [k for key, companions in settings.stable_keys for k in (key, *companions)]
    preferred += list(settings.separating_keys)

    def rank(category: int, key: str, operator: str = "") -> tuple[int, int, str, int]:
        position = preferred.index(key) if key in preferred else len(preferred)
        if category == 0 and position == len(preferred):
            category = 1  # any other label after the well-known ones
        return (category, position, key, _OPERATOR_RANK.get(operator, 0))

    terms = [_Term(rank(0, k), k, v) for k, v in sorted(shared.items()) if k not in used]
    keys = sorted({k for labels in (*targets, *group.sets) for k in labels} - set(shared))
    for key in keys:
        mine = group.values.get(key, frozenset())
        if not mine:
            terms.append(_Term(rank(2, key, "DoesNotExist"), key, requirement=Requirement(key, "DoesNotExist")))
            continue
        foreign = tuple(sorted({labels[key] for labels in targets if key in labels} - mine))
        if foreign:
            terms.append(_Term(rank(2, key, "NotIn"), key, requirement=Requirement(key, "NotIn", foreign)))
        if key in group.everywhere:
            terms.append(_Term(rank(2, key, "Exists"), key, requirement=Requirement(key, "Exists")))
    return sorted(terms, key=lambda t: t.rank)


def _fewest(terms: Sequence[_Term], targets: Sequence[Mapping[str, str]]) -> list[_Term] | None:
    """The fewest terms that together leave out every target, the best-ranked first among equals; None
    when even all of them cannot. Terms excluding a subset of a better-ranked one's targets are skipped."""
    if not targets:
        return []
    options: list[tuple[_Term, frozenset[int]]] = []
    for term in terms:  # sorted by rank
        excluded = frozenset(i for i, labels in enumerate(targets) if not term.matches(labels))
        if excluded and not any(excluded <= better for _, better in options):
            options.append((term, excluded))
    everything = frozenset(range(len(targets)))
    if frozenset().union(*(excluded for _, excluded in options)) != everything:
        return None
    tried = 0
    for size in range(1, len(options) + 1):
        for combination in itertools.combinations(options, size):
            tried += 1
            if tried > _SEARCH_BUDGET:
                return _greedy(options, everything)
            if frozenset().union(*(excluded for _, excluded in combination)) == everything:
                return [term for term, _ in combination]
    return None  # pragma: no cover - the union check above guarantees a cover


def _greedy(options: Sequence[tuple[_Term, frozenset[int]]], everything: frozenset[int]) -> list[_Term]:
    """A small cover when the exact search is too large: most targets first, then drop what is redundant."""
    chosen: list[tuple[_Term, frozenset[int]]] = []
    left = set(everything)
    while left:
        best = max(options, key=lambda option: (len(option[1] & left), [-r for r in option[0].rank[:2]]))
        chosen.append(best)
        left -= best[1]
    for option in sorted(chosen, key=lambda o: o[0].rank, reverse=True):
        rest = [o for o in chosen if o is not option]
        if frozenset().union(*(excluded for _, excluded in rest)) == everything:
            chosen = rest
    return sorted((term for term, _ in chosen), key=lambda t: t.rank)


def _prove(identity: Identity, group: _Group, others: Sequence[Mapping[str, str]]) -> None:
    """Both duties, against every label set seen: all of the group's pods, none of the others'."""
    if identity.method == "none":
        return
    selector = identity.selector
    where = f"{identity.namespace}/{', '.join(identity.workloads)}"
    if not all(selector.matches(labels) for labels in group.sets):
        raise GenerationError(f"{where}: selector {{{identity.key}}} leaves out pods of its own workload")
    if any(selector.matches(labels) for labels in others):
        raise GenerationError(f"{where}: selector {{{identity.key}}} selects pods of another workload")


def selection_problems(
    policies: Iterable[NetworkPolicy],
    members: Mapping[tuple[str, str], Iterable[str]],
    pod_labels: Mapping[tuple[str, str], Labels],
    skip: Iterable[LabelSelector] = (),
) -> tuple[str, ...]:
    """Selectors of generated policies (podSelector, and pod peers in one namespace) that do not select
    exactly the pods of their identity among every pod seen in that namespace.

    `members` maps (namespace, selector key) to the pods that identity's flows came from; `skip` lists
    peer selectors that are not workload identities (the configured DNS pods).
    """
    owner = {(ns, pod): key for (ns, key), pods in members.items() for pod in pods}
    ignored = {s.canonical() for s in skip}
    problems: list[str] = []
    for policy in policies:
        used = [(policy.namespace, policy.pod_selector, "podSelector")]
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                namespace = _single_namespace(peer.namespace_selector, policy.namespace)
                selector = peer.pod_selector
                if selector is not None and namespace is not None and selector.canonical() not in ignored:
                    used.append((namespace, selector, "peer podSelector"))
        for namespace, selector, what in used:
            if selector.is_empty:
                continue
            key = selector.canonical()
            for (pod_ns, pod), labels in sorted(pod_labels.items()):
                if pod_ns != namespace or (pod_ns, pod) not in owner:
                    continue
                selected, own = selector.matches(dict(labels)), owner[(pod_ns, pod)] == key
                if selected != own:
                    problems.append(
                        f"{policy.namespace}/{policy.name}: {what} {{{key}}} "
                        + ("selects" if selected else "does not select")
                        + f" pod {pod_ns}/{pod} of {owner[(pod_ns, pod)] or '{}'}"
                    )
    return tuple(sorted(set(problems)))


def _single_namespace(selector: LabelSelector | None, own: str) -> str | None:
    if selector is None:
        return own
    labels = dict(selector.match_labels)
    if len(labels) == 1 and not selector.match_expressions:
        return labels.get(NAMESPACE_NAME_LABEL)
    return None


def policy_base_names(identities: Iterable[Identity]) -> dict[tuple[str, str], str]:
    """A stable DNS-label name per (namespace, selector key); colliding names get a hash suffix."""
    by_name: dict[tuple[str, str], list[Identity]] = {}
    for identity in {(i.namespace, i.key): i for i in identities}.values():
        by_name.setdefault((identity.namespace, dns_label(identity.name)), []).append(identity)
    names: dict[tuple[str, str], str] = {}
    for (namespace, base), members in by_name.items():
        members.sort(key=lambda i: i.key)
        for position, identity in enumerate(members):
            suffix = "" if position == 0 else "-" + hashlib.sha256(identity.key.encode()).hexdigest()[:6]
            names[(namespace, identity.key)] = base + suffix
    return names


def dns_label(text: str, limit: int = 40) -> str:
    """Lower-case `[a-z0-9-]`, starting and ending alphanumeric, at most `limit` characters."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return cleaned or "workload"
