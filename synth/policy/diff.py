"""Deployed policies vs proposed ones: per object as normalised YAML, and as connectivity.

The text diff compares `normalised_yaml` forms (fixed key order, defaults explicit, evidence
left out), so only real change shows. The connectivity diff replays every observed endpoint pair
(as `synth verify` does) through both sets: newly allowed, newly blocked, unchanged. The attack
surface is what the deployed set allows that was never observed: every observed workload (a
representative pod's labels) to every observed destination workload and port it never used,
allowed by the deployed set and denied by the proposed one.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from synth.base.errors import EXIT_DIFFERENCES, EXIT_OK
from synth.core.model import LabelSelector, NetworkPolicy, PolicySet, PolicyType
from synth.policy.evaluate import Endpoint, Engine, Traffic, Verdict
from synth.policy.manifest import normalised_yaml
from synth.policy.matchers import DEFINED_PROTOCOLS
from synth.policy.observed import EndpointRef, Observed, ObservedPair
from synth.policy.verify import decisive_reason, judge

__all__ = [
    "Change",
    "DiffResult",
    "ObjectDiff",
    "adopt_deployed_names",
    "diff",
    "diff_json",
    "diff_markdown",
    "diff_summary",
    "diff_text",
]

Status = Literal["added", "removed", "changed", "unchanged"]
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_SEVERITY = {Verdict.ALLOWED: 0, Verdict.UNKNOWN: 1, Verdict.DENIED: 2}
CHANGES = ("newly-blocked", "newly-allowed", "changed-unjudged", "unchanged")


@dataclass(frozen=True, slots=True)
class ObjectDiff:
    """One policy name in one namespace: how it differs, and the unified diff ("" when unchanged)."""

    namespace: str
    name: str
    status: Status
    text: str


@dataclass(frozen=True, slots=True)
class Change:
    """One label-level connection under both sets. `flows` is 0 for never observed connections.

    `change`: newly-blocked, newly-allowed, changed-unjudged (one side cannot judge it), unchanged; and
    `surface` for a never observed connection the deployed set allows and the proposed one denies.
    """

    src: EndpointRef
    dst: EndpointRef
    protocol: str
    port: int | None
    flows: int
    first_seen: datetime | None
    last_seen: datetime | None
    deployed: Verdict
    proposed: Verdict
    deployed_reason: str
    proposed_reason: str
    change: str

    def line(self) -> str:
        """`src -> dst TCP/80` in printable ASCII."""
        port = self.protocol if self.port is None else f"{self.protocol}/{self.port}"
        return _ascii(f"{self.src.text()} -> {self.dst.text()} {port}")


@dataclass(frozen=True, slots=True)
class DiffResult:
    """Text and connectivity differences between a deployed and a proposed set."""

    namespaces: tuple[str, ...]
    objects: tuple[ObjectDiff, ...]
    connectivity: tuple[Change, ...]
    surface: tuple[Change, ...]
    renamed: tuple[tuple[str, str, str], ...] = ()

    @property
    def differs(self) -> bool:
        """True unless both sets are the same after normalisation (`synth diff` exit 1)."""
        return any(o.status != "unchanged" for o in self.objects)

    @property
    def exit_code(self) -> int:
        """`synth diff`'s status, as `kubectl diff`: 1 when anything differs, else 0."""
        return EXIT_DIFFERENCES if self.differs else EXIT_OK

    def render(self, output: str) -> str:
        """The diff as `text`, `markdown` or `json`."""
        return {"json": diff_json, "markdown": diff_markdown}.get(output, diff_text)(self)

    def summary(self) -> str:
        """One line for the terminal (see `diff_summary`)."""
        return diff_summary(self)

    def object_counts(self) -> dict[str, int]:
        """Objects per status."""
        return {s: sum(o.status == s for o in self.objects) for s in ("changed", "added", "removed", "unchanged")}

    def change_counts(self) -> dict[str, int]:
        """Observed connections per change."""
        return {c: sum(e.change == c for e in self.connectivity) for c in CHANGES}


# --- building ------------------------------------------------------------------------------------------


def adopt_deployed_names(
    proposed: PolicySet, deployed: PolicySet
) -> tuple[PolicySet, tuple[tuple[str, str, str], ...]]:
    """Give a proposed policy the name of the deployed one that selects the same pods in the same
    directions (same namespace, podSelector and policyTypes), so regeneration causes no rename churn.

    Returns the renamed set and (namespace, proposed name, deployed name) for every rename.
    `default-deny` keeps its name: the output's apply order and roll-back steps name it.
    """
    shapes: dict[tuple[str, LabelSelector, tuple[PolicyType, ...]], list[str]] = {}
    for policy in deployed.policies:
        shapes.setdefault(_shape(policy), []).append(policy.name)
    taken = {p.key for p in proposed.policies}
    renamed: list[tuple[str, str, str]] = []
    result: list[NetworkPolicy] = []
    for policy in proposed.policies:
        candidates = sorted(shapes.get(_shape(policy), ()))
        if candidates and policy.name not in candidates and policy.name != DEFAULT_DENY:
            free = [name for name in candidates if (policy.namespace, name) not in taken]
            if free:
                taken.discard(policy.key)
                taken.add((policy.namespace, free[0]))
                renamed.append((policy.namespace, policy.name, free[0]))
                policy = replace(policy, name=free[0])
        result.append(policy)
    return PolicySet.of(result), tuple(renamed)


DEFAULT_DENY = "default-deny"


def _shape(policy: NetworkPolicy) -> tuple[str, LabelSelector, tuple[PolicyType, ...]]:
    return (policy.namespace, policy.pod_selector, policy.policy_types)


def diff(
    observed: Observed,
    deployed: PolicySet,
    proposed: PolicySet,
    namespaces: Sequence[str],
    renamed: tuple[tuple[str, str, str], ...] = (),
) -> DiffResult:
    """Compare the policies of `namespaces` as text and by what they do to the observed traffic."""
    chosen = tuple(sorted(set(namespaces)))
    deployed_here = PolicySet.of([p for p in deployed.policies if p.namespace in chosen])
    deployed_engine, proposed_engine = Engine(deployed_here), Engine(proposed)
    pairs = [p for p in observed.pairs if p.touches(chosen)]
    return DiffResult(
        namespaces=chosen,
        objects=text_diff(deployed_here, proposed, chosen),
        connectivity=_connectivity(pairs, deployed_engine, proposed_engine),
        surface=_surface(observed.pairs, chosen, deployed_engine, proposed_engine),
        renamed=renamed,
    )


def text_diff(deployed: PolicySet, proposed: PolicySet, namespaces: Iterable[str]) -> tuple[ObjectDiff, ...]:
    """Per object of the namespaces, sorted by namespace and name."""
    result = []
    for namespace in sorted(set(namespaces)):
        before = {p.name: normalised_yaml(p) for p in deployed.in_namespace(namespace)}
        after = {p.name: normalised_yaml(p) for p in proposed.in_namespace(namespace)}
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name), after.get(name)
            status: Status = (
                "added" if old is None else "removed" if new is None else "unchanged" if old == new else "changed"
            )
            text = "" if status == "unchanged" else _unified(namespace, name, old, new)
            result.append(ObjectDiff(namespace, name, status, text))
    return tuple(result)


def _unified(namespace: str, name: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"deployed/{namespace}/{name}",
        tofile="/dev/null" if new is None else f"proposed/{namespace}/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _worst(verdicts: Iterable[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    return max(verdicts, key=lambda item: (_SEVERITY[item[0]], item[1]))


def _classify(deployed: Verdict, proposed: Verdict) -> str:
    if deployed == proposed:
        return "unchanged"
    if Verdict.UNKNOWN in (deployed, proposed):
        return "changed-unjudged"
    return "newly-allowed" if proposed == Verdict.ALLOWED else "newly-blocked"


def _connectivity(pairs: Sequence[ObservedPair], deployed: Engine, proposed: Engine) -> tuple[Change, ...]:
    groups: dict[Any, list[tuple[ObservedPair, tuple[Verdict, str], tuple[Verdict, str]]]] = {}
    for pair in pairs:
        before = judge(pair, deployed.evaluate(pair.traffic))
        after = judge(pair, proposed.evaluate(pair.traffic))
        groups.setdefault(pair.edge_key, []).append((pair, before, after))
    result = []
    for (src, dst, protocol, port), members in groups.items():
        before = _worst(b for _, b, _ in members)
        after = _worst(a for _, _, a in members)
        result.append(
            Change(
                src,
                dst,
                protocol,
                port,
                sum(p.flows for p, _, _ in members),
                min(p.first_seen for p, _, _ in members),
                max(p.last_seen for p, _, _ in members),
                before[0],
                after[0],
                before[1],
                after[1],
                _classify(before[0], after[0]),
            )
        )
    return tuple(sorted(result, key=_change_order))


def _surface(
    pairs: Sequence[ObservedPair], namespaces: tuple[str, ...], deployed: Engine, proposed: Engine
) -> tuple[Change, ...]:
    workloads: dict[EndpointRef, Endpoint] = {}
    ports: dict[EndpointRef, set[tuple[str, int]]] = {}
    seen: set[tuple[EndpointRef, EndpointRef, str, int | None]] = set()
    for pair in pairs:
        seen.add(pair.edge_key)
        for ref, end in ((pair.src, pair.traffic.src), (pair.dst, pair.traffic.dst)):
            if ref.kind == "pod" and end.labels is not None and ref not in workloads:
                workloads[ref] = replace(end, name=None)
        if pair.dst.kind == "pod" and pair.traffic.protocol in DEFINED_PROTOCOLS and pair.traffic.port is not None:
            ports.setdefault(pair.dst, set()).add((pair.traffic.protocol, pair.traffic.port))
    result = []
    destinations = sorted((ref for ref in ports if ref in workloads), key=lambda ref: ref.order)
    for src_ref in sorted(workloads, key=lambda ref: ref.order):
        for dst_ref in destinations:
            if namespaces and not {src_ref.namespace, dst_ref.namespace} & set(namespaces):
                continue
            for protocol, port in sorted(ports[dst_ref]):
                if (src_ref, dst_ref, protocol, port) in seen:
                    continue
                traffic = Traffic(workloads[src_ref], workloads[dst_ref], protocol, port)
                before, after = deployed.evaluate(traffic), proposed.evaluate(traffic)
                if before.verdict == Verdict.ALLOWED and after.verdict == Verdict.DENIED:
                    reasons = (decisive_reason(before), decisive_reason(after))
                    verdicts = (before.verdict, after.verdict)
                    result.append(
                        Change(src_ref, dst_ref, protocol, port, 0, None, None, *verdicts, *reasons, "surface")
                    )
    return tuple(result)


def _change_order(change: Change) -> tuple[Any, ...]:
    rank = CHANGES.index(change.change) if change.change in CHANGES else len(CHANGES)
    return (rank, change.src.order, change.dst.order, change.protocol, -1 if change.port is None else change.port)


# --- output --------------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F or c == "\n" else f"\\u{ord(c):04x}" for c in text)


def diff_summary(result: DiffResult) -> str:
    """One line: objects changed/added/removed, observed traffic changes, attack surface closed."""
    objects = result.object_counts()
    changes = result.change_counts()
    return (
        f"diff {', '.join(result.namespaces)}: {objects['changed']} changed, {objects['added']} added, "
        f"{objects['removed']} removed, {objects['unchanged']} unchanged policies; observed traffic: "
        f"{changes['newly-allowed']} newly allowed, {changes['newly-blocked']} newly blocked, "
        f"{changes['unchanged']} unchanged"
        + (f", {changes['changed-unjudged']} changed (unjudged)" if changes["changed-unjudged"] else "")
        + f"; {len(result.surface)} never-observed paths allowed by deployed are closed"
    )


def _change_lines(change: Change) -> list[str]:
    flows = f"  {change.flows:,} flows" if change.flows else ""
    return [
        f"  {change.line()}{flows}",
        f"    deployed: {_ascii(change.deployed_reason)}",
        f"    proposed: {_ascii(change.proposed_reason)}",
    ]


def diff_text(result: DiffResult) -> str:
    """Unified diffs per object, then the connectivity changes and the attack surface."""
    lines = [diff_summary(result)]
    for namespace, old, new in result.renamed:
        lines.append(f"kept the deployed name {namespace}/{new} for the proposed {old}")
    body = "".join(o.text for o in result.objects if o.text)
    text = "\n".join(lines) + "\n" + _ascii(body)
    out = ["", "connectivity of observed traffic:"]
    for change_kind in CHANGES[:-1]:
        members = [c for c in result.connectivity if c.change == change_kind]
        if members:
            out.append(f"{change_kind.replace('-', ' ')} ({len(members)}):")
            for change in members:
                out += _change_lines(change)
    out.append(f"unchanged: {result.change_counts()['unchanged']} observed connections")
    out.append(f"never observed, allowed by deployed, denied by proposed ({len(result.surface)}):")
    out += [f"  {c.line()}" for c in result.surface]
    return text + "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return _ascii(text).replace("|", "\\|").replace("`", "'")


def diff_markdown(result: DiffResult, surface_limit: int = 50) -> str:
    """PR text: a summary table, one collapsible diff per object, the connectivity tables."""
    objects = result.object_counts()
    out = [f"### NetworkPolicy changes in {', '.join(result.namespaces)}", ""]
    out += ["| changed | added | removed | unchanged |", "|---:|---:|---:|---:|"]
    out += [f"| {objects['changed']} | {objects['added']} | {objects['removed']} | {objects['unchanged']} |", ""]
    for obj in (o for o in result.objects if o.text):
        out += [f"<details><summary>{obj.status}: {_cell(f'{obj.namespace}/{obj.name}')}</summary>", ""]
        out += ["```diff", _ascii(obj.text).rstrip("\n").replace("```", "'''"), "```", "", "</details>", ""]
    out += ["#### Observed traffic", ""]
    out += ["| change | source | destination | port | flows | proposed |", "|---|---|---|---|---:|---|"]
    for c in (c for c in result.connectivity if c.change != "unchanged"):
        port = c.protocol if c.port is None else f"{c.protocol}/{c.port}"
        out.append(
            f"| {c.change} | {_cell(c.src.text())} | {_cell(c.dst.text())} | {port} | {c.flows:,} | "
            f"{_cell(c.proposed_reason)} |"
        )
    out += ["", f"{result.change_counts()['unchanged']} observed connections are unchanged.", ""]
    out += [f"#### Never observed, allowed today, closed by the proposal ({len(result.surface)})", ""]
    if result.surface:
        out += ["| source | destination | port |", "|---|---|---|"]
        for c in result.surface[:surface_limit]:
            out.append(f"| {_cell(c.src.text())} | {_cell(c.dst.text())} | {c.protocol}/{c.port} |")
        if len(result.surface) > surface_limit:
            out.append(f"| … {len(result.surface) - surface_limit} more | | |")
    return "\n".join(out).rstrip("\n") + "\n"


def _ref_json(ref: EndpointRef) -> dict[str, Any]:
    return {"kind": ref.kind, "namespace": ref.namespace, "selector": ref.selector}


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "src": _ref_json(c.src),
        "dst": _ref_json(c.dst),
        "protocol": c.protocol,
        "port": c.port,
        "flows": c.flows,
        "first_seen": None if c.first_seen is None else f"{c.first_seen:{_STAMP}}",
        "last_seen": None if c.last_seen is None else f"{c.last_seen:{_STAMP}}",
        "deployed": str(c.deployed),
        "proposed": str(c.proposed),
        "deployed_reason": c.deployed_reason,
        "proposed_reason": c.proposed_reason,
        "change": c.change,
    }


def diff_json(result: DiffResult) -> str:
    """The whole result as JSON (sorted keys)."""
    document = {
        "namespaces": list(result.namespaces),
        "differs": result.differs,
        "objects": [
            {"namespace": o.namespace, "name": o.name, "status": o.status, "diff": o.text} for o in result.objects
        ],
        "renamed": [{"namespace": ns, "proposed": old, "deployed": new} for ns, old, new in result.renamed],
        "connectivity": [_change_json(c) for c in result.connectivity],
        "surface": [_change_json(c) for c in result.surface],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
