"""What a reviewer must look at before approving generated policies, each kind with the reason it matters.

From synthesis findings (public exposure, denied attempts, host traffic, inseparable workloads, intersection selectors,
everything not turned into a rule), from the rules (external addresses grouped by DNS name, rules
with little evidence or seen in one short burst), from the edges (workloads seen for part of the
window) and from the recording (hours without flows, events the source lost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from synth.base.config import SHORT_WINDOW_HOURS
from synth.core.aggregate import Edge
from synth.core.identity import Identity
from synth.core.model import KUBERNETES, PolicyFormat
from synth.core.synthesize import Finding, FindingKind
from synth.render.naming import Naming, RuleEvidence, WorkloadRules, utc
from synth.store.coverage import Source, Window

__all__ = ["RISK_KINDS", "Risk", "RiskItem", "RiskThresholds", "risks"]


@dataclass(frozen=True, slots=True)
class RiskThresholds:
    """What counts as little evidence or a partial observation."""

    rare_flows: int = 5  # rules with fewer flows than this
    burst_seconds: int = 3600  # rules seen only within this span of a longer window
    partial_seconds: int = 3600  # workloads first seen this much late, or last seen this much early
    short_window_hours: int = SHORT_WINDOW_HOURS  # a recording shorter than this may miss daily jobs


@dataclass(frozen=True, slots=True)
class RiskItem:
    """One thing a reviewer should look at (strings from flows: untrusted)."""

    subject: str
    detail: str
    flows: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Risk:
    """A kind of risk, why it matters, and its instances. `title` and `why` are synth's own markdown."""

    kind: str
    title: str
    why: str
    items: tuple[RiskItem, ...]


# In the order the PR lists them: (kind, title, why).
RISK_KINDS: tuple[tuple[str, str, str], ...] = (
    (
        "public-exposure",
        "Public exposure",
        "These ports accept connections from any address (`0.0.0.0/0`): so many distinct external sources were "
        "seen that the rule is not narrowed to them. Check that the endpoint is meant to be public.",
    ),
    (
        "external-egress",
        "External egress by IP address",
        "Egress to the internet is allowed per address (`/32`), not per name. The addresses behind a DNS name "
        "rotate (SaaS, CDNs); when they do, the new ones are blocked. Consider FQDN rules (Cilium `toFQDNs`) "
        "or an egress gateway for these names.",
    ),
    (
        "external-names",
        "External egress by DNS name",
        "Egress to the internet is allowed by the names the flows carried (Cilium `toFQDNs` `matchName`, Calico "
        "`domains`), so addresses that rotate behind a name stay allowed. The agent learns the addresses only "
        "from DNS answers it sees: `allow-dns` carries the DNS proxy rule (Cilium `rules.dns`), and the DNS "
        "must go through the cluster DNS. Check that each name is one the workload should reach.",
    ),
    (
        "http-rules",
        "HTTP rules (Cilium L7)",
        "These ports go through the Cilium proxy, which answers a request that matches no entry with HTTP 403 "
        "(the connection itself is allowed). Each entry is a request seen; a path segment that is an identifier "
        "(a number, a UUID, a long hexadecimal or mixed token, a date or version) became `[^/?]+`, and query values "
        "`[^&]*`, so the same route with other identifiers is allowed. A port keeps a plain L4 rule when a peer "
        "was seen on it without HTTP requests or made more distinct requests than `--l7-max-paths`.",
    ),
    (
        "little-evidence",
        "Rules backed by little evidence",
        "These rules rest on few flows, or on one short burst in a long window: a one-off (a manual test, a "
        "migration) may have made them, and the same dependency at other times may need more than was seen.",
    ),
    (
        "partial-workload",
        "Workloads seen for part of the window",
        "First seen late (new, or started during the window) or last seen early (removed, scaled to zero, or "
        "idle): traffic outside the span they were seen in, such as start-up calls, is not covered.",
    ),
    (
        "recording",
        "Gaps in the recording",
        "Hours with no flows at all, or events the flow source lost (ring buffer overruns): traffic in them "
        "was not seen, so rules it needs may be missing. Record longer, or again, before applying.",
    ),
    (
        "denied-attempt",
        "Dropped flows the new policies keep blocking",
        "These connections were dropped by policy while recording, and the proposal does not allow them. If "
        "they are wanted, regenerate with `--allow-dropped` or add a rule by hand.",
    ),
    (
        "host-traffic",
        "Host, probe and API-server traffic",
        "Traffic with nodes (kubelet probes, host-network pods) and the API server is not turned into pod "
        "rules: whether NetworkPolicy applies to it depends on the CNI. Check the CNI's node policy; with "
        "Cilium, egress to the API server needs `toEntities: kube-apiserver`.",
    ),
    (
        "inseparable",
        "Workloads no label can separate",
        "These workloads carry the same stable labels, so one selector selects the pods of all of them and each "
        "may use the rules made from the others' traffic: broader than observed. Give each workload a label of "
        "its own (`app.kubernetes.io/component`, `tier`) and regenerate.",
    ),
    (
        "intersection-selector",
        "Selectors from a label intersection",
        "No stable identity label (`app.kubernetes.io/name`, `app`, `k8s-app`, `name`) was found, so the "
        "selector is the labels all the pods shared. A rollout that changes one of them unselects the pods.",
    ),
    (
        "rejected-labels",
        "Labels that cannot be selected",
        "These labels are not valid Kubernetes labels, so no selector uses them; check how the pods are labelled.",
    ),
    (
        "other",
        "Other traffic not turned into rules",
        "Protocols NetworkPolicy does not define (ICMP), peers of unknown identity or without shared labels, "
        "private addresses reported as outside the cluster, DNS servers the DNS selector does not select.",
    ),
)
_FINDING_KIND: dict[FindingKind, str] = {
    FindingKind.PUBLIC_EXPOSURE: "public-exposure",
    FindingKind.DENIED_ATTEMPT: "denied-attempt",
    FindingKind.HOST_TRAFFIC: "host-traffic",
    FindingKind.KUBE_APISERVER: "host-traffic",
    FindingKind.INTERSECTION_SELECTOR: "intersection-selector",
    FindingKind.INSEPARABLE: "inseparable",
    FindingKind.REJECTED_LABELS: "rejected-labels",
    FindingKind.EXTERNAL_EGRESS: "",  # listed from the rules, grouped by DNS name
    FindingKind.HTTP_L4: "http-rules",
}
"""The risk each finding kind is listed under; every other kind goes under `other`."""


def risks(
    findings: Sequence[Finding],
    workloads: Sequence[WorkloadRules],
    rows: Sequence[Edge],
    identities: dict[tuple[str, str], Identity],
    naming: Naming,
    window: Window,
    sources: Sequence[Source],
    thresholds: RiskThresholds,
    policy_format: PolicyFormat = KUBERNETES,
) -> tuple[Risk, ...]:
    """Every risk kind that has items, in `RISK_KINDS` order. `rows` are the edges touching the namespaces."""
    namespaces = {w.namespace for w in workloads}
    groups: dict[str, list[RiskItem]] = {kind: [] for kind, _, _ in RISK_KINDS}
    for finding in findings:
        kind = _FINDING_KIND.get(finding.kind, "other")
        if kind:
            detail = finding.detail if kind != "other" else f"{finding.kind}: {finding.detail}"
            item = RiskItem(finding.subject, detail, finding.flows, utc(finding.first_seen), utc(finding.last_seen))
            groups[kind].append(item)
    groups["external-egress"] = _external(workloads)
    groups["external-names"] = _by_name(workloads)
    groups["http-rules"] = _http(workloads) + groups["http-rules"]
    groups["little-evidence"] = _little_evidence(workloads, window, thresholds)
    groups["partial-workload"] = _partial(rows, naming, window, thresholds, namespaces)
    groups["recording"] = _recording(window, sources, thresholds)
    groups["rejected-labels"] += _rejected(identities, namespaces, groups["rejected-labels"])
    return tuple(
        Risk(kind, title, why + _format_note(kind, policy_format), tuple(groups[kind]))
        for kind, title, why in RISK_KINDS
        if groups[kind]
    )


def _format_note(kind: str, policy_format: PolicyFormat) -> str:
    """What the chosen policy API adds to a risk's reason."""
    if kind == "external-names" and policy_format.fqdn_patterns:
        wildcard = "`matchPattern`" if policy_format.api == "cilium" else "a wildcard domain"
        return (f" The names under a pattern asked for (--fqdn-pattern) are allowed by the pattern ({wildcard}): "
                "every name it matches is allowed, not only the names seen.")
    if kind != "external-egress" or policy_format.api == "kubernetes":
        return ""
    if policy_format.api == "cilium":
        return " With Cilium, addresses that had a DNS name are allowed by name (below); these had none."
    if policy_format.calico_enterprise:
        return " With `--calico-enterprise`, addresses that had a DNS name are allowed by name (below); these had none."
    return (" Calico open source has no DNS-name rules (`destination.domains` is Calico Enterprise and Cloud only: "
            "`--calico-enterprise` writes them), so these stay `nets`.")


def _external(workloads: Sequence[WorkloadRules]) -> list[RiskItem]:
    """World egress rules grouped by workload, ports and DNS names: one item per name set."""
    grouped: dict[tuple[str, str, tuple[str, ...]], list[RuleEvidence]] = {}
    for group in workloads:
        for rule in group.rules:
            if rule.direction == "egress" and rule.peer_kind == "world":
                key = (f"{group.namespace}/{group.workload}", rule.ports, rule.names)
                grouped.setdefault(key, []).append(rule)
    items = []
    for (subject, ports, names), rules in sorted(grouped.items()):
        addresses = ", ".join(r.peer.split(" ")[1] for r in rules)
        seen = f"DNS names seen: {', '.join(names)}" if names else "no DNS name seen"
        items.append(
            RiskItem(
                subject,
                f"{len(rules)} address(es) on {ports}: {addresses}; {seen}",
                sum(r.flows for r in rules),
                min((r.first_seen for r in rules if r.first_seen), default=None),
                max((r.last_seen for r in rules if r.last_seen), default=None),
            )
        )
    return items


def _by_name(workloads: Sequence[WorkloadRules]) -> list[RiskItem]:
    """DNS-name egress rules: one item per workload and name, with the addresses seen behind it."""
    items = []
    for group in workloads:
        for rule in group.rules:
            if rule.direction == "egress" and rule.peer_kind == "dns-name":
                shown = ", ".join(a.split("/", 1)[0] for a in rule.addresses[:5])
                more = f" (+{len(rule.addresses) - 5} more)" if len(rule.addresses) > 5 else ""
                allowed = f"pattern {rule.pattern} (names seen: {', '.join(rule.names)})" if rule.pattern else (
                    ", ".join(rule.names)
                )
                items.append(
                    RiskItem(
                        f"{group.namespace}/{group.workload}",
                        f"{allowed} on {rule.ports}: addresses seen {shown}{more}",
                        rule.flows,
                        rule.first_seen,
                        rule.last_seen,
                    )
                )
    return items


def _http(workloads: Sequence[WorkloadRules]) -> list[RiskItem]:
    """HTTP rules: one item per rule, its entries with the requests behind each."""
    return [
        RiskItem(
            f"{group.namespace}/{group.workload}",
            f"{rule.direction} {rule.peer} on {rule.ports}: {'; '.join(rule.requests)}",
            rule.flows,
            rule.first_seen,
            rule.last_seen,
        )
        for group in workloads
        for rule in group.rules
        if rule.requests
    ]


def _little_evidence(workloads: Sequence[WorkloadRules], window: Window, thresholds: RiskThresholds) -> list[RiskItem]:
    items = []
    window_seconds = (window.end - window.start).total_seconds()
    for group in workloads:
        for rule in group.rules:
            if rule.first_seen is None:
                continue  # a rule without evidence: allow-dns when no DNS traffic was seen
            reasons = []
            if rule.flows < thresholds.rare_flows:
                reasons.append(f"only {rule.flows} flow(s) (threshold {thresholds.rare_flows})")
            if rule.first_seen and rule.last_seen and window_seconds > thresholds.burst_seconds:
                span = (rule.last_seen - rule.first_seen).total_seconds()
                if span < thresholds.burst_seconds:
                    reasons.append(f"seen only within {duration(span)} of a {duration(window_seconds)} window")
            if reasons:
                detail = f"{rule.direction} {rule.peer} on {rule.ports}: " + "; ".join(reasons)
                subject = f"{group.namespace}/{group.workload}"
                items.append(RiskItem(subject, detail, rule.flows, rule.first_seen, rule.last_seen))
    return items


def _partial(
    rows: Sequence[Edge], naming: Naming, window: Window, thresholds: RiskThresholds, namespaces: set[str]
) -> list[RiskItem]:
    """Workloads of the namespaces whose first or last flow is far from the window's."""
    spans: dict[tuple[str, str], tuple[datetime, datetime, int]] = {}
    for row in rows:
        first, last = utc(row.first_seen), utc(row.last_seen)
        assert first is not None and last is not None
        for end in (row.src, row.dst):
            if end.kind != "pod" or end.namespace not in namespaces:
                continue
            key = (end.namespace, end.selector)
            low, high, count = spans.get(key, (first, last, 0))
            spans[key] = (min(low, first), max(high, last), count + row.count)
    tolerance = timedelta(seconds=thresholds.partial_seconds)
    items = []
    for (namespace, selector), (first, last, count) in sorted(spans.items()):
        reasons = []
        if first - window.first_flow > tolerance:
            reasons.append(f"first seen {duration((first - window.first_flow).total_seconds())} after the first flow")
        if window.last_flow - last > tolerance:
            reasons.append(f"last seen {duration((window.last_flow - last).total_seconds())} before the last flow")
        if reasons:
            subject = f"{namespace}/{naming.workloads(namespace, selector)}"
            items.append(RiskItem(subject, "; ".join(reasons), count, first, last))
    return items


def _recording(window: Window, sources: Sequence[Source], thresholds: RiskThresholds) -> list[RiskItem]:
    items = []
    if window.hours < thresholds.short_window_hours:
        items.append(RiskItem(
            "all namespaces",
            f"the recording covers {window.hours} hour(s), less than {thresholds.short_window_hours}: daily and "
            "weekly jobs (backups, reports, CronJobs) may be missing from it, and default-deny would block them; "
            "record at least a day (48 h recommended) before enforcing",
            None, window.start, window.end,
        ))  # fmt: skip
    items += [
        RiskItem("all namespaces", f"no flows recorded for {gap.hours} hour(s)", None, gap.start, gap.end)
        for gap in window.gaps
    ]
    for source in sources:
        if source.lost_events:
            nodes = ", ".join(f"{node}: {count:,}" for node, count in source.lost_by_node)
            detail = f"{source.lost_events:,} events lost by {source.source}" + (f" ({nodes})" if nodes else "")
            items.append(RiskItem(source.name, detail, None, source.first_seen, source.last_seen))
    return items


def _rejected(
    identities: dict[tuple[str, str], Identity], namespaces: set[str], reported: Sequence[RiskItem]
) -> list[RiskItem]:
    """Invalid labels the identities dropped (synthesis does not report them as findings)."""
    seen = {(i.subject, i.detail) for i in reported}
    items = []
    chosen = {i for i in identities.values() if i.namespace in namespaces}
    for identity in sorted(chosen, key=lambda i: (i.namespace, i.key)):
        if identity.rejected_labels:
            item = RiskItem(
                f"{identity.namespace}/{', '.join(identity.workloads)}", ", ".join(identity.rejected_labels)
            )
            if (item.subject, item.detail) not in seen:
                seen.add((item.subject, item.detail))
                items.append(item)
    return items


def duration(seconds: float) -> str:
    """`45 min`, `5 h`, `3 days`."""
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 72 else f"{hours // 24} days"
