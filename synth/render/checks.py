"""Text forms of `synth verify` and `synth diff` results: terminal text, JSON, and markdown for the PR.

Selectors, pods and reasons come from flows and policies, which are untrusted: text is made ASCII
(other characters escaped) and markdown cells escaped, so nothing they hold can break the layout.
"""

from __future__ import annotations

import json
from typing import Any

from synth.base.text import ascii_text, plural
from synth.policy.diff import CHANGES, Change, DiffResult
from synth.policy.exposure import Allowance
from synth.policy.observed import EndpointRef
from synth.policy.ports import NamedPortReport
from synth.policy.verify import EdgeOutcome, VerifyResult
from synth.render.tables import yaml_text

__all__ = ["diff_json", "diff_markdown", "diff_summary", "diff_text", "named_ports_text", "render_diff",
           "render_verify", "verify_json", "verify_text"]

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def render_verify(result: VerifyResult, output: str) -> str:
    """The verify report as `table` (text), `json` or `yaml`."""
    if output == "yaml":
        return yaml_text(verify_json(result))
    return verify_json(result) if output == "json" else verify_text(result)


def render_diff(result: DiffResult, output: str) -> str:
    """The diff as `table` (text), `markdown`, `json` or `yaml`."""
    if output == "yaml":
        return yaml_text(diff_json(result))
    return {"json": diff_json, "markdown": diff_markdown}.get(output, diff_text)(result)


# --- verify --------------------------------------------------------------------------------------------

_SOURCE_WORDS = {"manifests": "workload manifests", "cluster": "the cluster's pods"}


def named_ports_text(report: NamedPortReport) -> str:
    """What resolving named ports did, in one line; "" when no workload described a destination.

    `named ports (per destination pod and port name the rules use): 3 resolved from workload manifests;
    1 left unresolved (the workloads that match the pod disagree)`.
    """
    if not (report.resolved_total or report.undeclared or report.conflicting):
        return ""
    resolved = [f"{n:,} from {_SOURCE_WORDS.get(source, source)}" for source, n in report.resolved]
    parts = [f"{resolved[0].replace(' from ', ' resolved from ', 1)}{''.join(', ' + r for r in resolved[1:])}"
             if resolved else "0 resolved"]  # fmt: skip
    if report.undeclared:
        parts.append(f"{report.undeclared:,} not declared by the pod")
    if report.conflicting:
        parts.append(f"{report.conflicting:,} left unresolved (the workloads that match the pod disagree)")
    if report.unknown:
        parts.append(f"{report.unknown:,} on pods no workload describes")
    return f"named ports (per destination pod and port name the rules use): {'; '.join(parts)}"


def _named_ports_json(report: NamedPortReport) -> dict[str, Any]:
    return {
        "resolved": dict(report.resolved),
        "undeclared": report.undeclared,
        "conflicting": report.conflicting,
        "unknown": report.unknown,
    }



def _window(edge: EdgeOutcome) -> str:
    return f"{edge.first_seen:{_STAMP}} .. {edge.last_seen:{_STAMP}}"


def _edge_lines(edge: EdgeOutcome, reason_limit: int = 3) -> list[str]:
    tag = f"[{edge.category}] " if edge.category else ""
    lines = [f"  {tag}{edge.line()}  {edge.flows:,} flows, {_window(edge)}"]
    lines += [f"    {ascii_text(reason)}" for reason in edge.reasons[:reason_limit]]
    if len(edge.reasons) > reason_limit:
        lines.append(f"    ... and {len(edge.reasons) - reason_limit} more reasons")
    return lines


def verify_text(result: VerifyResult) -> str:
    """The report `synth verify` prints."""
    scope = ", ".join(result.namespaces) if result.namespaces else "all namespaces"
    lines = [
        f"replayed {result.flows:,} observed request flows ({scope}) through {result.policies} policies: "
        f"{result.allowed_flows:,} allowed, {result.denied_flows:,} denied, {result.unjudged_flows:,} unjudged"
    ]
    named = named_ports_text(result.named_ports)
    if named:
        lines.append(named)
    if result.denied:
        lines.append(f"DENIED: {len(result.denied)} edges, {result.denied_flows:,} flows")
        for edge in result.denied:
            lines += _edge_lines(edge)
    if result.unjudged:
        categories = ", ".join(f"{c} {n:,}" for c, n in result.unjudged_by_category())
        lines.append(f"unjudged: {len(result.unjudged)} edges, {result.unjudged_flows:,} flows ({categories})")
        for edge in result.unjudged:
            lines += _edge_lines(edge, reason_limit=1)
    if result.attempts:
        now = sum(e.flows for e in result.attempts_allowed)
        lines.append(
            f"attempts dropped by policy when recorded: {result.attempts:,} flows, {now:,} would now be allowed"
        )
        for edge in result.attempts_allowed:
            lines += _edge_lines(edge, reason_limit=1)
    excluded = ", ".join(f"{n:,} {what}" for what, n in result.excluded if n)
    if excluded:
        lines.append(f"not replayed: {excluded}")
    lines += _allowance_lines(result)
    lines.append(result.summary())
    return "\n".join(lines) + "\n"


def _allowance_lines(result: VerifyResult, limit: int = 50) -> list[str]:
    """The second half: connections allowed that no flow used, the unexplained ones listed with their rules."""
    over = result.over_permissive
    lines = []
    if over:
        lines.append(f"ALLOWED, NEVER OBSERVED: {plural(len(over), 'connection')}")
        for allowance in over[:limit]:
            how = "allowed:" if allowance.unisolated else "allowed by"
            lines.append(f"  {allowance.line()}  {how} {ascii_text(', '.join(allowance.rules))}")
        if len(over) > limit:
            lines.append(f"  ... and {len(over) - limit:,} more (-o json lists them all)")
    flagged = [a for a in result.unobserved if a.flag]
    if flagged:
        lines.append(f"allowed, never observed, meant: {plural(len(flagged), 'connection')} ({_flag_counts(result)})")
        lines += [f"  [{a.flag}] {a.line()}" for a in flagged[:limit]]
        if len(flagged) > limit:
            lines.append(f"  ... and {len(flagged) - limit:,} more (-o json lists them all)")
    return lines


def _flag_counts(result: VerifyResult) -> str:
    return ", ".join(f"{_FLAG_WORDS[flag]} {n:,}" for flag, n in result.flagged())


_FLAG_WORDS = {
    "dns": "cluster DNS", "public": "public ingress", "inseparable": "workloads no label separates",
    "pattern": "names under a DNS-name pattern asked for",
    "path": "HTTP paths with identifiers generalised",
}


def _allowance_json(allowance: Allowance) -> dict[str, Any]:
    return {
        "src": {"kind": allowance.src.kind, "namespace": allowance.src.namespace, "selector": allowance.src.selector,
                "workload": allowance.src_workload or None},
        "dst": {"kind": allowance.dst.kind, "namespace": allowance.dst.namespace, "selector": allowance.dst.selector,
                "workload": allowance.dst_workload or None},
        "protocol": allowance.protocol,
        "port": allowance.port,
        "rules": list(allowance.rules),
        "request": allowance.request or None,
        "flag": allowance.flag or None,
    }


def _edge_json(edge: EdgeOutcome) -> dict[str, Any]:
    return {
        "src": {"kind": edge.src.kind, "namespace": edge.src.namespace, "selector": edge.src.selector},
        "dst": {"kind": edge.dst.kind, "namespace": edge.dst.namespace, "selector": edge.dst.selector},
        "protocol": edge.protocol,
        "port": edge.port,
        "flows": edge.flows,
        "first_seen": f"{edge.first_seen:{_STAMP}}",
        "last_seen": f"{edge.last_seen:{_STAMP}}",
        "src_pods": list(edge.src_pods),
        "dst_pods": list(edge.dst_pods),
        "reasons": list(edge.reasons),
        **({"category": edge.category} if edge.category else {}),
    }


def verify_json(result: VerifyResult) -> str:
    """The result as a JSON document (sorted keys)."""
    document = {
        "ok": result.ok,
        "policies": result.policies,
        "namespaces": list(result.namespaces),
        "flows": result.flows,
        "allowed_flows": result.allowed_flows,
        "denied_flows": result.denied_flows,
        "unjudged_flows": result.unjudged_flows,
        "denied": [_edge_json(e) for e in result.denied],
        "unjudged": [_edge_json(e) for e in result.unjudged],
        "attempts": result.attempts,
        "attempts_allowed": [_edge_json(e) for e in result.attempts_allowed],
        "attempts_denied": [_edge_json(e) for e in result.attempts_denied],
        "excluded": dict(result.excluded),
        "allowed_unobserved": [_allowance_json(a) for a in result.over_permissive],
        "allowed_unobserved_flagged": [_allowance_json(a) for a in result.unobserved if a.flag],
        "named_ports": _named_ports_json(result.named_ports),
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# --- diff ----------------------------------------------------------------------------------------------



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
        + (f"; deployed {result.deployed_check.summary()}" if result.deployed_check else "")
    )


def _change_lines(change: Change) -> list[str]:
    flows = f"  {change.flows:,} flows" if change.flows else ""
    return [
        f"  {change.line()}{flows}",
        f"    deployed: {ascii_text(change.deployed_reason, keep_newlines=True)}",
        f"    proposed: {ascii_text(change.proposed_reason, keep_newlines=True)}",
    ]


def diff_text(result: DiffResult) -> str:
    """Unified diffs per object, then the connectivity changes and the attack surface."""
    lines = [diff_summary(result)]
    for namespace, old, new in result.renamed:
        lines.append(f"kept the deployed name {namespace}/{new} for the proposed {old}")
    named = named_ports_text(result.named_ports)
    if named:
        lines.append(f"deployed {named}")
    body = "".join(o.text for o in result.objects if o.text)
    text = "\n".join(lines) + "\n" + ascii_text(body, keep_newlines=True)
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
    return ascii_text(text, keep_newlines=True).replace("|", "\\|").replace("`", "'")


def diff_markdown(result: DiffResult, surface_limit: int = 50) -> str:
    """PR text: a summary table, one collapsible diff per object, the connectivity tables."""
    objects = result.object_counts()
    out = [f"### NetworkPolicy changes in {', '.join(result.namespaces)}", ""]
    out += ["| changed | added | removed | unchanged |", "|---:|---:|---:|---:|"]
    out += [f"| {objects['changed']} | {objects['added']} | {objects['removed']} | {objects['unchanged']} |", ""]
    named = named_ports_text(result.named_ports)
    if named:
        out += [f"Deployed {_cell(named)}.", ""]
    for obj in (o for o in result.objects if o.text):
        out += [f"<details><summary>{obj.status}: {_cell(f'{obj.namespace}/{obj.name}')}</summary>", ""]
        body = ascii_text(obj.text, keep_newlines=True).rstrip("\n").replace("```", "'''")
        out += ["```diff", body, "```", "", "</details>", ""]
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
        "named_ports": _named_ports_json(result.named_ports),
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
