"""Jinja rendering: the only module that imports jinja2.

Templates are dumb: every decision is made in Python before rendering. Values from flows are
untrusted, so every scalar goes through `q` (plain when YAML reads it back as the same string,
double-quoted and escaped otherwise) and every comment line through `comment` (no line breaks,
no control characters), whatever the labels or names contain. The PR description (`render_report`)
has its own two: `md` for markdown text and table cells, `mermaid` for graph labels.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from synth.core.model import NetworkPolicy, Rule
from synth.render.native import calico_rules, calico_selector, cilium_rules, number_text

if TYPE_CHECKING:
    from synth.render.report import Report

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


@lru_cache(maxsize=65536)
def yaml_scalar(value: object) -> str:
    """A YAML scalar that reads back as exactly `value` (strings stay strings)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.match(text):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return _double_quoted(text)


def _double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def comment_text(value: object) -> str:
    """One comment line: printable ASCII only, anything else escaped as `\\uXXXX`."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))


def _list_text(items: tuple[str, ...], limit: int) -> str:
    shown = ", ".join(yaml_scalar(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def evidence_lines(rule: Rule, limit: int = 5) -> list[str]:
    """The evidence comment of a rule: flows, window, pods, names."""
    evidence = rule.evidence
    if evidence is None:
        return []
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    lines = [
        f"{evidence.flows:,} flows, first seen {evidence.first_seen:{stamp}}, last seen {evidence.last_seen:{stamp}}"
    ]
    if evidence.pods:
        lines.append(f"pods: {_list_text(evidence.pods, limit)}")
    if evidence.peer_pods:
        lines.append(f"peer pods: {_list_text(evidence.peer_pods, limit)}")
    if evidence.names and _by_pattern(rule):  # every name behind a pattern: what it stands for here
        lines.append(f"DNS names seen under the pattern: {_list_text(evidence.names, len(evidence.names))}")
    elif evidence.names:
        lines.append(f"DNS names: {_list_text(evidence.names, limit)}")
    if evidence.addresses:
        lines.append(f"addresses: {_list_text(evidence.addresses, limit)}")
    lines.extend(f"HTTP {line}" for line in evidence.requests)
    lines.extend(evidence.notes)
    return lines


def _by_pattern(rule: Rule) -> bool:
    """Whether the rule allows by DNS-name patterns only."""
    return bool(rule.peers) and all(peer.fqdn is not None and peer.fqdn.pattern for peer in rule.peers)


_MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]|~<>&#!]")
_MARKDOWN_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 ./:=,+()-]")


def markdown_text(value: object) -> str:
    """Inline markdown that shows `value` literally, as one line, safe in a table cell.

    Markdown punctuation is backslash-escaped, `<`, `>` and `&` become entities (no HTML, no
    autolinks), control characters and line breaks become visible `\\uXXXX`. Never put the result
    inside backticks: code spans do not honour escapes.
    """
    text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(value))
    return _MARKDOWN_SPECIAL.sub(lambda m: _MARKDOWN_ENTITIES.get(m.group(), "\\" + m.group()), text)


def mermaid_label(value: object, limit: int = 60) -> str:
    """A mermaid label body for `["..."]`: anything but plain characters as `#code;` entities, so
    no quote, bracket, backtick or line break can end the label, the statement or the code fence."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return "".join(c if _MERMAID_PLAIN.fullmatch(c) else f"#{ord(c)};" for c in text)


def utc_stamp(value: datetime | None) -> str:
    """`2026-11-19 00:14` (UTC, to the minute), or `-`."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def thousands(value: int | None) -> str:
    """`12,345`, or `-` for no number."""
    return "-" if value is None else f"{value:,}"


def _templates() -> Traversable:
    """The templates: `synth.templates` when installed, the checkout's `templates/` when run from source."""
    try:
        return resources.files("synth.templates")
    except ModuleNotFoundError:
        return resources.files("synth").joinpath("..", "templates")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: _templates().joinpath(name).read_text("utf-8"))
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML
        keep_trailing_newline=True,
    )
    env.filters["q"] = yaml_scalar
    env.filters["comment"] = comment_text
    env.filters["evidence"] = evidence_lines
    env.filters["md"] = markdown_text
    env.filters["mermaid"] = mermaid_label
    env.filters["stamp"] = utc_stamp
    env.filters["n"] = thousands
    return env


def render(template: str, **context: Any) -> str:
    """Render one template of `synth.templates` with the given context."""
    text = _environment().get_template(template).render(**context)
    return text if text.endswith("\n") else text + "\n"


def render_policy(policy: NetworkPolicy) -> str:
    """One policy as a YAML document of its API (`policy.api`) with its evidence comments."""
    if policy.api == "cilium":
        sections = [
            (direction, cilium_rules(rules, direction))
            for direction, kind, rules in (("ingress", "Ingress", policy.ingress), ("egress", "Egress", policy.egress))
            if kind in policy.policy_types
        ]
        return render("cilium.yaml.j2", policy=policy, sections=sections)
    if policy.api == "calico":
        return render(
            "calico.yaml.j2",
            policy=policy,
            kind="StagedNetworkPolicy" if policy.staged else "NetworkPolicy",
            order=number_text(policy.order if policy.order is not None else 1000.0),
            selector=calico_selector(policy.pod_selector),
            ingress=calico_rules(policy.ingress) if "Ingress" in policy.policy_types else (),
            egress=calico_rules(policy.egress) if "Egress" in policy.policy_types else (),
        )
    return render("policy.yaml.j2", policy=policy)


def render_kustomization(resources_in_order: list[str]) -> str:
    """A kustomization.yaml listing the files in apply order."""
    return render("kustomization.yaml.j2", resources=resources_in_order)


def render_report(report: Report) -> str:
    """The pull-request description (GitHub markdown) of a generation."""
    return render("pr.md.j2", report=report)
