"""The pull-request description: golden markdown for the sample shop (no deployed set, risky, a broken
deployed set), markdown and mermaid well-formed, hostile strings that cannot change the structure,
JSON that parses back, the CLI surface, and regeneration that changes exactly one rule."""

from __future__ import annotations

import difflib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GOLDEN, ROOT, Run
from flowbuilder import Peer, Pod, flow, write
from markdown_it import MarkdownIt
from markdown_it.token import Token
from reports import recording, report_of

from synth.app.deployed import load_policies
from synth.app.generation import generate
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.render.jinja import markdown_text, mermaid_label, render_report
from synth.render.report import ReportSettings, build_report, report_json
from synth.render.risks import RiskThresholds
from synth.store.dataset import Store

REPORT_GOLDEN = GOLDEN / "report"
SECTIONS = [
    "Summary",
    "What changes for traffic",
    "Rules and their evidence",
    "Risks for the reviewer",
    "Dependency graph",
    "How to roll out",
]
API_LABELS = {
    "app.kubernetes.io/component": "server",
    "app.kubernetes.io/name": "api",
    "app.kubernetes.io/part-of": "payments",
    "app.kubernetes.io/version": "1.42.0",
}
LEDGER = Pod(
    "payments",
    "ledger-0",
    {
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/name": "ledger",
        "app.kubernetes.io/version": "16.4",
    },
    "10.244.2.25",
    "StatefulSet/ledger",
)
API = Pod("payments", "api-9p79hvw87v-csbcz", API_LABELS, "10.244.2.30", "Deployment/api")
# A deployed set that denies observed traffic (api ingress, reconcile egress, api to the card processor)
# and allows some never observed (any pod to the ledger, which also lets the denied cart attempt in).
BROKEN_DEPLOYED = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: payments}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: payments}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ledger, namespace: payments}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: ledger}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{protocol: TCP, port: 5432}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: payments}
spec:
  podSelector: {matchLabels: {app.kubernetes.io/name: api}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app.kubernetes.io/name: ledger}}}]
    ports: [{protocol: TCP, port: 5432}]
"""


# --- fixtures and helpers ------------------------------------------------------------------------------


def store_with(base: Path, target: Path, *captures: Path) -> Store:
    """A copy of the store at `base` with more captures imported."""
    shutil.copytree(base, target)
    store = Store(str(target))
    if captures:
        import_files(store, "hubble", [str(c) for c in captures])
    return store


def refund_burst(path: Path) -> Path:
    """A new workload with no stable identity label: three flows to the ledger in ten minutes."""
    worker = Pod(
        "payments",
        "refund-worker-5d8c9b7f6d-x2x4z",
        {"team": "payments", "tier": "refunds"},
        "10.244.1.77",
        "Deployment/refund-worker",
    )
    times = ("2026-11-20T20:00:00Z", "2026-11-20T20:05:00Z", "2026-11-20T20:10:00Z")
    return write(path, [flow(worker, LEDGER, 5432, time=t, sport=41000 + i) for i, t in enumerate(times)])


def check_golden(name: str, text: str, update: bool) -> None:
    path = REPORT_GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with --update-golden and review the diff"


@pytest.fixture(scope="module")
def risky_store(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    tmp = tmp_path_factory.mktemp("risky")
    return store_with(sample_store, tmp / "store", refund_burst(tmp / "refunds.json"))


def markdown(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(text)


def headings(tokens: list[Token], level: str) -> list[str]:
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == level]


def table_shapes(text: str, tokens: list[Token]) -> list[list[int]]:
    """Per table: the header's cell count, then each source line's count of unescaped-pipe cells."""
    lines = text.split("\n")
    shapes = []
    for i, token in enumerate(tokens):
        if token.type != "table_open":
            continue
        header = 0
        for inner in tokens[i:]:
            if inner.type == "th_open":
                header += 1
            if inner.type == "thead_close":
                break
        assert token.map is not None
        raw = [len(re.findall(r"(?<!\\)\|", line)) - 1 for line in lines[token.map[0] : token.map[1]]]
        shapes.append([header, *raw])
    return shapes


NODE = re.compile(r'^  (?:  )?(n\d+)(?:\["([^"]*)"\]|\(\["([^"]*)"\]\))$')
EDGE = re.compile(r'^  (n\d+) -->\|"([^"]*)"\| (n\d+)$')
SUBGRAPH = re.compile(r'^  subgraph g\d+\["([^"]*)"\]$')


def mermaid_blocks(tokens: list[Token]) -> list[str]:
    return [t.content for t in tokens if t.type == "fence" and t.info == "mermaid"]


def check_mermaid(block: str) -> tuple[set[str], list[tuple[str, str]]]:
    """Every line is a declaration we emit; every edge joins declared nodes. Returns nodes and edges."""
    lines = block.rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR"
    nodes: set[str] = set()
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines[1:]:
        if SUBGRAPH.match(line):
            depth += 1
        elif line == "  end":
            depth -= 1
        elif match := NODE.match(line):
            assert match.group(1) not in nodes, f"node declared twice: {line}"
            nodes.add(match.group(1))
        elif match := EDGE.match(line):
            edges.append((match.group(1), match.group(3)))
        else:
            raise AssertionError(f"not a mermaid line synth emits: {line!r}")
        assert depth in (0, 1)
    assert depth == 0
    for source, target in edges:
        assert source in nodes and target in nodes, f"edge {source} -> {target} names an undeclared node"
    return nodes, edges


def check_markdown(text: str) -> list[Token]:
    """Sections in order, every table rectangular, every mermaid block well-formed."""
    tokens = markdown(text)
    assert headings(tokens, "h1")[0].startswith("NetworkPolicies for ")
    assert headings(tokens, "h2") == SECTIONS
    shapes = table_shapes(text, tokens)
    assert shapes
    for shape in shapes:
        assert set(shape) == {shape[0]}, f"a table row has the wrong number of cells: {shape}"
    blocks = mermaid_blocks(tokens)
    assert blocks
    for block in blocks:
        check_mermaid(block)
    return tokens


# --- goldens -------------------------------------------------------------------------------------------


def test_golden_without_a_deployed_set(sample_store: Path, update_golden: bool) -> None:
    _, report = report_of(Store(str(sample_store)), ["payments"])
    text = render_report(report)
    check_markdown(text)
    assert "No deployed policies were given" in text
    assert "verify: 0 observed flows denied" in text
    check_golden("payments.md", text, update_golden)


def test_golden_risky(risky_store: Store, update_golden: bool) -> None:
    _, report = report_of(risky_store, ["payments", "shop"])
    kinds = [risk.kind for risk in report.risks]
    assert kinds == [
        "public-exposure",
        "external-egress",
        "little-evidence",
        "partial-workload",
        "recording",
        "denied-attempt",
        "host-traffic",
        "intersection-selector",
    ]
    risks = {risk.kind: risk for risk in report.risks}
    assert [i.subject for i in risks["public-exposure"].items] == ["shop/Deployment/frontend"]
    assert "api.cardprocessor.example.com" in risks["external-egress"].items[0].detail
    evidence = {(i.subject, i.detail) for i in risks["little-evidence"].items}
    assert (
        "payments/Deployment/refund-worker",
        "egress payments/ledger on TCP 5432: only 3 flow(s) (threshold 5); seen only within 10 min of a 48 h window",
    ) in evidence
    assert [i.subject for i in risks["partial-workload"].items] == ["payments/Deployment/refund-worker"]
    assert {i.subject for i in risks["recording"].items} == {"hubble-flows.json.gz", "hubble-legacy.json.gz"}
    text = render_report(report)
    check_markdown(text)
    check_golden("risky.md", text, update_golden)


def test_golden_broken_deployed_set(sample_store: Path, tmp_path: Path, update_golden: bool) -> None:
    path = tmp_path / "deployed.yaml"
    path.write_text(BROKEN_DEPLOYED)
    deployed = load_policies([str(path)], default_namespace="payments").policies
    _, report = report_of(Store(str(sample_store)), ["payments"], deployed=deployed)
    traffic = report.traffic
    assert traffic.deployed
    assert [(c.source, c.destination, c.port) for c in traffic.newly_blocked] == [
        ("shop/cart", "payments/ledger", "TCP 5432")
    ]
    assert traffic.newly_blocked[0].explained and "denied attempt" in traffic.newly_blocked[0].explanation
    assert ("payments/api", "world 203.0.113.10/32 (api.cardprocessor.example.com)", "TCP 443") in {
        (c.source, c.destination, c.port) for c in traffic.newly_allowed
    }
    assert traffic.surface_total == len(traffic.surface) > 0
    assert report.summary.ok and report.summary.newly_blocked_unexplained == 0
    text = render_report(report)
    check_markdown(text)
    assert "### Newly blocked" in text and "### Attack surface removed" in text
    assert report.rollouts[0].remove == (
        "kubectl delete networkpolicies.networking.k8s.io --namespace payments api ledger",
    )
    check_golden("broken-deployed.md", text, update_golden)


def test_removed_policies_of_other_kinds_are_deleted_by_their_own_resource(sample_store: Path, tmp_path: Path) -> None:
    """A deployed CiliumNetworkPolicy and a Calico policy that the proposal does not keep are removed with the
    resource kubectl knows them by (`networkpolicy` alone would name the Kubernetes kind)."""
    path = tmp_path / "deployed.yaml"
    path.write_text(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api-ingress, namespace: payments}\n"
        "spec: {endpointSelector: {}, ingress: [{fromEntities: [cluster]}]}\n---\n"
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: old, namespace: payments}\n"
        "spec: {selector: all(), types: [Ingress], ingress: [{action: Allow}]}\n"
    )
    deployed = load_policies([str(path)], default_namespace="payments").policies
    _, report = report_of(Store(str(sample_store)), ["payments"], deployed=deployed)
    assert report.rollouts[0].remove == (
        "kubectl delete ciliumnetworkpolicies.cilium.io --namespace payments api-ingress",
        "kubectl delete networkpolicies.projectcalico.org --namespace payments old",
    )


# --- untrusted strings ---------------------------------------------------------------------------------


def hostile_capture(path: Path, hostile: bool) -> Path:
    """The same traffic twice: with plain names, or with markdown, HTML and line breaks in every string."""
    bad = "x|y`z`<script>alert(1)</script>\n## injected *em* [link](http://e.test) ```\u202e" if hostile else "plain"
    web = Pod(
        "hostile",
        f"web-{bad}-1",
        {"app": "web", "note": f"bad value {bad}"},
        "10.244.3.10",
        f"Deployment/web-{bad}",
    )
    db = Pod("hostile", "db-0", {"app": "db"}, "10.244.3.11", "StatefulSet/db")
    name = f"{bad}.example.com"
    flows = [flow(web, db, 5432, time=f"2026-11-20T{h:02d}:00:00Z") for h in range(0, 24, 2)]
    flows += [
        flow(web, Peer("world", "198.51.100.9"), 443, time=f"2026-11-20T{h:02d}:30:00Z", names=[name])
        for h in range(0, 24, 3)
    ]
    return write(path, flows)


def hostile_report(tmp_path: Path, hostile: bool) -> str:
    store = Store(str(tmp_path / f"store-{hostile}"))
    import_files(store, "hubble", [str(hostile_capture(tmp_path / f"capture-{hostile}.json", hostile))])
    _, report = report_of(store, ["hostile"])
    return render_report(report)


def structure(tokens: list[Token]) -> tuple[list[tuple[str, str, int]], list[str]]:
    blocks = [(t.type, t.tag, t.nesting) for t in tokens]
    markup = {"code_inline", "html_inline", "html_block", "link_open", "em_open", "strong_open", "s_open", "image"}
    inline = [child.type for t in tokens for child in (t.children or []) if child.type in markup]
    return blocks, inline


def test_hostile_labels_names_and_pods_leave_the_markdown_structure_unchanged(tmp_path: Path) -> None:
    plain, hostile = hostile_report(tmp_path, False), hostile_report(tmp_path, True)
    assert "<script>" not in hostile and "\n## injected" not in hostile and "\u202e" not in hostile
    assert "\\\\u202e" in hostile  # shown, not obeyed
    plain_tokens, hostile_tokens = check_markdown(plain), check_markdown(hostile)
    assert structure(hostile_tokens) == structure(plain_tokens)
    assert [len(s) for s in table_shapes(hostile, hostile_tokens)] == [
        len(s) for s in table_shapes(plain, plain_tokens)
    ]
    plain_graph = check_mermaid(mermaid_blocks(plain_tokens)[0])
    hostile_graph = check_mermaid(mermaid_blocks(hostile_tokens)[0])
    assert (len(hostile_graph[0]), hostile_graph[1]) == (len(plain_graph[0]), plain_graph[1])
    assert "web-x\\|y\\`z\\`&lt;script&gt;" in hostile  # shown, escaped, in the heading and tables


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a|b", "a\\|b"),
        ("`x`", "\\`x\\`"),
        ("<b>&", "&lt;b&gt;&amp;"),
        ("line\nbreak", "line\\\\u000abreak"),
        ("rtl\u202eoverride", "rtl\\\\u202eoverride"),
        ("*em* _u_ [l](x) ~s~ # !", "\\*em\\* \\_u\\_ \\[l\\](x) \\~s\\~ \\# \\!"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_markdown_filter(value: str, expected: str) -> None:
    assert markdown_text(value) == expected


def test_mermaid_filter_leaves_only_plain_characters() -> None:
    label = mermaid_label('a"b]`c\n```<x>;#')
    assert label == "a#34;b#93;#96;c#10;#96;#96;#96;#60;x#62;#59;#35;"
    assert len(mermaid_label("x" * 100)) < 70


# --- the graph at scale, risks of a small recording --------------------------------------------------


def test_graph_of_a_big_namespace_is_capped_and_says_what_it_left_out(tmp_path: Path) -> None:
    hub = Pod("big", "hub-0", {"app": "hub"}, "10.244.9.1", "StatefulSet/hub")
    clients = [
        Pod("big", f"client{i:02d}-0", {"app": f"client{i:02d}"}, f"10.244.8.{i}", f"StatefulSet/client{i:02d}")
        for i in range(45)
    ]
    flows = [flow(c, hub, 8080, time=f"2026-11-20T{i % 24:02d}:00:00Z") for i, c in enumerate(clients)]
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(write(tmp_path / "big.json", flows))])
    _, report = report_of(store, ["big"])
    graph = report.graphs[0]
    assert len(graph.nodes) == 40 and len(graph.omitted_nodes) == 6 and graph.omitted_edges == 6
    text = render_report(report)
    nodes, edges = check_mermaid(mermaid_blocks(check_markdown(text))[0])
    assert len(nodes) == 40 and len(edges) == 39
    assert "Left out to keep the graph readable: 6 nodes" in text


def test_hours_without_flows_and_a_late_workload_are_risks(tmp_path: Path) -> None:
    web = Pod("gaps", "web-0", {"app": "web"}, "10.244.7.1", "StatefulSet/web")
    db = Pod("gaps", "db-0", {"app": "db"}, "10.244.7.2", "StatefulSet/db")
    late = Pod("gaps", "late-0", {"app": "late"}, "10.244.7.3", "StatefulSet/late")
    flows = [flow(web, db, 5432, time=f"2026-11-20T{h:02d}:10:00Z") for h in (0, 1, 5, 6)]
    flows += [flow(late, db, 5432, time="2026-11-20T06:20:00Z")]
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(write(tmp_path / "gaps.json", flows))])
    generated = generate(store, Settings(), namespaces=["gaps"])
    report = build_report(generated, recording(store), ReportSettings(thresholds=RiskThresholds(rare_flows=2)))
    window = report.summary.window
    assert (window.hours, window.hours_with_flows) == (7, 4)
    assert [(g.start.hour, g.hours) for g in window.gaps] == [(2, 3)]
    risks = {risk.kind: risk for risk in report.risks}
    assert [(i.subject, i.detail) for i in risks["recording"].items][1:] == [
        ("all namespaces", "no flows recorded for 3 hour(s)")
    ]
    assert risks["recording"].items[0].detail.startswith("the recording covers 7 hour(s), less than 24")
    assert [(i.subject, i.detail) for i in risks["partial-workload"].items] == [
        ("gaps/StatefulSet/late", "first seen 6 h after the first flow")
    ]
    assert {i.subject for i in risks["little-evidence"].items} == {"gaps/StatefulSet/db", "gaps/StatefulSet/late"}


# --- JSON and the CLI ----------------------------------------------------------------------------------


def test_json_is_the_same_content_and_parses_back(sample_store: Path) -> None:
    _, report = report_of(Store(str(sample_store)), ["payments"])
    document = json.loads(report_json(report))
    assert document["version"] == 1
    assert set(document) == {"version", "summary", "traffic", "workloads", "risks", "graphs", "rollouts"}
    summary = document["summary"]
    assert summary["ok"] is True and summary["namespaces"] == ["payments"] and summary["denied_flows"] == 0
    assert summary["window"]["start"] == "2026-11-19T00:00:00Z" and summary["window"]["hours"] == 48
    text = render_report(report)
    rules = [rule for group in document["workloads"] for rule in group["rules"]]
    rows = [line for line in text.split("\n") if line.startswith(("| ingress |", "| egress |"))]
    assert len(rules) == len(rows) == 11
    assert [r["kind"] for r in document["risks"]] == [r.kind for r in report.risks]


def test_generate_pr_writes_what_report_prints(
    synth: Callable[..., Run], sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = synth("generate", "-n", "payments", "--store", sample_store, "--out", "out", "--pr")
    assert run.code == 0, run.err
    assert run.out.splitlines()[-1] == "wrote the pull-request description to out/PR.md"
    written = (tmp_path / "out" / "PR.md").read_text()
    assert "kubectl apply -f out/payments/default-deny.yaml" in written
    printed = synth("report", "-n", "payments", "--store", sample_store, "--policies-dir", "out")
    assert printed.code == 0 and printed.out == written
    run = synth("generate", "-n", "payments", "--store", sample_store, "--out", "out", "--pr", "--pr-format", "json")
    assert run.code == 0 and run.out.splitlines()[-1] == "wrote the pull-request description to out/PR.json"
    printed = synth("report", "-n", "payments", "--store", sample_store, "--policies-dir", "out", "-o", "json")
    assert json.loads((tmp_path / "out" / "PR.json").read_text()) == json.loads(printed.out)


def test_report_cli_usage(synth: Callable[..., Run], sample_store: Path, tmp_path: Path) -> None:
    run = synth("generate", "-n", "payments", "--store", sample_store, "--pr")
    assert run.code == 2 and "--pr needs --out DIR" in run.err
    run = synth("report", "-n", "nowhere", "--store", sample_store)
    assert run.code == 2 and "no traffic of namespace nowhere" in run.err
    deployed = tmp_path / "deployed.yaml"
    deployed.write_text(BROKEN_DEPLOYED)
    run = synth("report", "-n", "payments", "--store", sample_store, "--deployed", deployed, "--rare-flows", "100")
    assert run.code == 0 and "### Newly blocked" in run.out and "Rules backed by little evidence" in run.out
    assert synth("report", "--help").code == 0


# --- stable files: a week later, one new edge is one new rule -----------------------------------------


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def test_regenerating_with_one_new_edge_changes_exactly_one_rule(
    synth: Callable[..., Run], sample_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(sample_store, store)
    before, after = tmp_path / "before", tmp_path / "after"
    assert synth("generate", "-n", "payments", "-n", "shop", "--store", store, "--out", before).code == 0
    partner = Peer("world", "198.51.100.7")
    times = ("2026-11-20T12:00:00Z", "2026-11-20T12:30:00Z", "2026-11-20T13:00:00Z")
    capture = write(
        tmp_path / "partner.json",
        [flow(API, partner, 443, time=t, names=["api.newpartner.example.com"]) for t in times],
    )
    assert synth("import", "hubble", capture, "--store", store).code == 0
    assert synth("generate", "-n", "payments", "-n", "shop", "--store", store, "--out", after).code == 0
    old, new = tree(before), tree(after)
    assert old.keys() == new.keys()
    changed = [name for name in old if old[name] != new[name]]
    assert changed == ["payments/api-server-egress.yaml"]
    diff = list(difflib.unified_diff(old[changed[0]].splitlines(), new[changed[0]].splitlines(), lineterm="", n=0))
    added = [line[1:] for line in diff[2:] if line.startswith("+")]
    removed = [line for line in diff[2:] if line.startswith("-")]
    assert removed == [], "evidence of existing rules must not change"
    assert [line for line in diff[2:] if line.startswith("@@")] == [diff[2]], "one contiguous hunk"
    assert added == [
        "  # 3 flows, first seen 2026-11-20T12:00:00Z, last seen 2026-11-20T13:00:00Z",
        "  # pods: api-9p79hvw87v-csbcz",
        "  # DNS names: api.newpartner.example.com",
        "  - to:",
        "    - ipBlock:",
        "        cidr: 198.51.100.7/32",
        "    ports:",
        "    - protocol: TCP",
        "      port: 443",
    ]


def test_the_readme_excerpt_is_the_top_of_the_golden_description() -> None:
    docs = (ROOT / "README.md").read_text()
    excerpt = docs.split("$ head -17 policies/PR.md\n", 1)[1].split("\n$ ", 1)[0]
    assert excerpt.startswith("# NetworkPolicies for payments")
    assert (REPORT_GOLDEN / "payments.md").read_text().startswith(excerpt + "\n")


def test_a_short_recording_is_a_risk_and_generate_says_so(
    tmp_path: Path, synth: Callable[..., Run], sample_store: Path
) -> None:
    """Two hours of flows give a green verdict, but daily jobs may be missing: the reviewer and the SRE are told."""
    web = Pod("short", "web-7d4b9c-x7k2p", {"app": "web"}, "10.244.3.10", "Deployment/web")
    db = Pod("short", "db-0", {"app": "db"}, "10.244.3.11", "StatefulSet/db")
    capture = write(tmp_path / "short.json", [flow(web, db, 5432, time=f"2026-11-20T10:{m:02d}:00Z") for m in (0, 50)])
    store = Store(str(tmp_path / "store"))
    import_files(store, "hubble", [str(capture)])
    _, report = report_of(store, ["short"])
    recording = [r for r in report.risks if r.kind == "recording"]
    assert recording
    assert "the recording covers 1 hour(s), less than 24: daily and weekly jobs" in recording[0].items[0].detail
    run = synth("generate", "-n", "short", "--store", tmp_path / "store")
    assert run.code == 0
    assert "warning: the recording covers 0.8 hours, less than a day: daily jobs may be missing" in run.err
    two_days = synth("generate", "-n", "payments", "--store", sample_store)
    assert two_days.code == 0 and "warning: the recording covers" not in two_days.err
