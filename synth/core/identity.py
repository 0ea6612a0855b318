"""Labels to selectors: which labels identify a workload so that its policy survives a rollout.

For each workload (pods grouped by their owner, or by their name when the source does not say),
the selector is a stable identity key shared by every pod seen (`app.kubernetes.io/name`
[+ `component`], `app`, `k8s-app`, `name`), else the intersection of the pods' non-volatile
labels. Labels that are not valid Kubernetes labels never enter a selector (no real pod can carry
them); they are reported. By construction the selector matches every pod that produced flows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from synth.base.config import Settings
from synth.core.model import LabelSelector

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


@lru_cache(maxsize=65536)
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
    """The selector chosen for one endpoint group, and how it was chosen.

    `method` is `stable-key`, `intersection`, or `none` (no label is shared by every pod; the
    group cannot be selected and its edges are reported instead of turned into rules).
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


def _is_volatile(key: str, settings: Settings) -> bool:
    return key in settings.volatile_labels or key.startswith(settings.volatile_prefixes)


def choose_identity(namespace: str, workload: str, label_sets: Iterable[Labels], settings: Settings) -> Identity:
    """The selector for one workload from every label set its pods were seen with."""
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
    short = workload.rsplit("/", 1)[-1]
    if not cleaned:
        cleaned = [{}]
    for key, companions in settings.stable_keys:
        shared = _shared_value(cleaned, key)
        if shared is None:
            continue
        chosen: dict[str, str] = {key: shared}
        for companion in companions:
            companion_value = _shared_value(cleaned, companion)
            if companion_value is not None:
                chosen[companion] = companion_value
        name = "-".join(chosen[k] for k in (key, *companions) if k in chosen)
        return Identity(namespace, LabelSelector.of(chosen), "stable-key", (workload,), name, tuple(sorted(rejected)))
    common: dict[str, str] = dict(cleaned[0])
    for kept_labels in cleaned[1:]:
        common = {k: v for k, v in common.items() if kept_labels.get(k) == v}
    if not common:
        return Identity(namespace, LabelSelector(), "none", (workload,), short, tuple(sorted(rejected)))
    return Identity(namespace, LabelSelector.of(common), "intersection", (workload,), short, tuple(sorted(rejected)))


def _shared_value(label_sets: list[dict[str, str]], key: str) -> str | None:
    values = {labels.get(key) for labels in label_sets}
    if len(values) == 1:
        (value,) = values
        return value
    return None


def resolve_identities(
    groups: Mapping[tuple[str, str], Iterable[Labels]], settings: Settings
) -> dict[tuple[str, str], Identity]:
    """Identities for every (namespace, workload) group; groups sharing a selector are merged."""
    chosen = {group: choose_identity(group[0], group[1], sets, settings) for group, sets in sorted(groups.items())}
    merged: dict[tuple[str, str], Identity] = {}
    for identity in chosen.values():
        key = (identity.namespace, identity.key)
        previous = merged.get(key)
        if previous is not None:
            identity = Identity(
                identity.namespace,
                identity.selector,
                identity.method,
                tuple(sorted({*previous.workloads, *identity.workloads})),
                min(previous.name, identity.name),
                tuple(sorted({*previous.rejected_labels, *identity.rejected_labels})),
            )
        merged[key] = identity
    return {group: merged[(identity.namespace, identity.key)] for group, identity in chosen.items()}


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
