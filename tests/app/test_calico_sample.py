"""The Calico sample and the Hubble sample describe the same traffic: same edges, same policies where the data allows.

`sample_flows/calico-*.json.gz` are rendered by `scripts/calico_render.py` from the very conversations the Hubble
files were rendered from (same model, same seed, same schedule calls). Both imports must therefore agree on
everything Calico's default aggregation keeps. What it does not keep, and so what is expected to differ:

- Addresses outside the cluster. Allowed flows are aggregated at level 2, so world clients, the card processor,
  the kube-apiserver and the kubelet's node addresses are `pub`/`pvt` buckets without an IP. Those edges have an
  empty world selector and generation reports them as `not-enforceable` instead of writing an `ipBlock`
  (Hubble: one `/32` per card-processor address, `0.0.0.0/0` for the public frontend, `host` probes).
- Counts. Hubble counts events (SYN, SYN-ACK, data, FIN, policy verdicts at both nodes, DNS L7 records);
  Calico counts connections (`num_flows`, src and dst copies once). Evidence comments (flows, first/last seen
  rounded to the 300 s interval, `pods:` as `api-<hash>-*` prefixes instead of pod names, Hubble's `audit: N`)
  differ accordingly; the parsed YAML has no comments, so they do not enter the comparison.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
import yaml
from conftest import ROOT, Run

from synth.cli import main
from synth.sources.calico.files import CalicoFileSource
from synth.sources.reader import InputFile
from synth.store.schema import FLOW_SCHEMA

SAMPLE = ROOT / "sample_flows"
HUBBLE = sorted(SAMPLE.glob("hubble-*.json.gz"))
CALICO = SAMPLE / "calico-flows.log.gz"
CALICO_ES = SAMPLE / "calico-es-export.json.gz"
EdgeKey = tuple[str, str, str, str, str, int, bool]

# Rules only Hubble's addresses can back (see the module docstring), per policy file.
HUBBLE_ONLY_RULES = {
    "shop/frontend-ingress.yaml": [
        ("ingress", {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 8080}]}),
    ],
    "payments/api-server-egress.yaml": [
        ("egress", {"to": [{"ipBlock": {"cidr": f"203.0.113.{n}/32"}}], "ports": [{"protocol": "TCP", "port": 443}]})
        for n in (10, 11, 12)
    ],
}


def shop_model() -> ModuleType:
    """The generator's model and schedule (scripts/shop_model.py)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("shop_model")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One store per source, each filled through `synth import`."""
    base = tmp_path_factory.mktemp("equivalence")
    found = {"hubble": base / "hubble", "calico": base / "calico"}
    assert main(["import", "hubble", *map(str, HUBBLE), "--store", str(found["hubble"])]) == 0
    assert main(["import", "calico", str(CALICO), "--store", str(found["calico"])]) == 0
    return found


def edges(synth: Callable[..., Run], store: Path) -> list[dict[str, Any]]:
    result = synth("edges", "-o", "json", "--store", store)
    assert result.code == 0, result.err
    parsed: list[dict[str, Any]] = json.loads(result.out)
    return parsed


def pod_edges(synth: Callable[..., Run], store: Path) -> dict[EdgeKey, dict[str, Any]]:
    """Pod-to-pod edges by (src namespace, src selector, dst namespace, dst selector, protocol, port, allowed)."""
    keyed: dict[EdgeKey, dict[str, Any]] = {}
    for edge in edges(synth, store):
        if edge["src_kind"] == edge["dst_kind"] == "pod":
            key = tuple(edge[k] for k in ("src_namespace", "src_selector", "dst_namespace", "dst_selector",
                                         "protocol", "port", "allowed"))
            assert key not in keyed
            keyed[key] = edge  # type: ignore[index]
    return keyed


def test_pod_to_pod_edges_are_the_same(stores: dict[str, Path], synth: Callable[..., Run]) -> None:
    hubble = pod_edges(synth, stores["hubble"])
    calico = pod_edges(synth, stores["calico"])
    assert sorted(calico) == sorted(hubble)
    assert len(calico) == 21
    assert ("shop", "app=cart", "payments", "app.kubernetes.io/component=database,app.kubernetes.io/name=ledger",
            "TCP", 5432, False) in calico  # allowed at cart's egress (audit), denied at ledger's ingress
    for key, edge in calico.items():  # the same workloads behind each selector
        assert (edge["src_workloads"], edge["dst_workloads"]) == (
            hubble[key]["src_workloads"], hubble[key]["dst_workloads"]), key


def conversations_per_pod_pair() -> Counter[tuple[str, str, str, int]]:
    """Connections between two pods in the schedule: (client workload, server workload, protocol, port)."""
    model = shop_model()
    shop = model.build_shop(1, model.SEED)
    half = shop.start_ns + 24 * model.NS_PER_H
    counts: Counter[tuple[str, str, str, int]] = Counter()
    for begin, end in ((shop.start_ns, half), (half, shop.end_ns)):
        for batch in model.conversations(shop, begin, end, 1.0, model.SEED):
            for conv in batch:
                if conv.client is None or conv.server is None:
                    continue
                conn = shop.connections[conv.conn]
                dns = conv.from_lookup or conn.kind == "dns"
                proto = conn.lookup_protocol if conv.from_lookup else conn.protocol
                key = (f"{conv.client.workload_kind}/{conv.client.workload}",
                       f"{conv.server.workload_kind}/{conv.server.workload}", proto, 53 if dns else conn.port)
                counts[key] += 1
    return counts


def test_calico_edge_counts_are_connections_not_reports(stores: dict[str, Path], synth: Callable[..., Run]) -> None:
    expected = conversations_per_pod_pair()
    calico = pod_edges(synth, stores["calico"])
    found = Counter({(e["src_workloads"][0], e["dst_workloads"][0], e["protocol"], e["port"]): e["count"]
                     for e in calico.values()})
    assert found == expected
    # Each of those connections was reported twice (src and dst records), yet counts once.
    reported = 0
    with InputFile(str(CALICO)) as input_file:
        for batch in CalicoFileSource(input_file).batches():
            rows = pa.Table.from_batches([batch], schema=FLOW_SCHEMA)
            for src, dst, flows in zip(*(rows.column(c).to_pylist() for c in ("src_kind", "dst_kind", "count")),
                                       strict=True):
                reported += flows if src == dst == "pod" else 0
    assert reported == 2 * sum(expected.values())


def generated(synth: Callable[..., Run], store: Path, out: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """The policy files `synth generate -n payments` and `-n shop` write (parsed), and what they said
    (accepting what the Calico data hides: see the test below)."""
    said, files = [], {}
    for namespace in ("payments", "shop"):
        result = synth("generate", "-n", namespace, "--out", out / namespace, "--store", store, "--accept-denied")
        assert result.code == 0, result.err
        said.append(result.err)
        files.update({str(p.relative_to(out / namespace)): yaml.safe_load(p.read_text())
                      for p in sorted((out / namespace / namespace).glob("*.yaml"))})
    return files, "".join(said)


def test_generate_refuses_policies_that_would_deny_what_the_data_hides(
    stores: dict[str, Path], synth: Callable[..., Run], tmp_path: Path
) -> None:
    """Level-2 Calico data hides world addresses: the policies would deny observed flows, so nothing is written."""
    out = tmp_path / "out"
    result = synth("generate", "-n", "payments", "--out", out, "--store", stores["calico"])
    assert result.code == 1
    assert "synth: error: the generated policies would deny 85 observed flows (1 edge):" in result.err
    assert "flowLogsFileAggregationKindForAllowed to 1 (or 0)" in result.err
    assert result.err.rstrip().endswith("nothing was written")
    assert not out.exists()
    hubble = synth("generate", "-n", "payments", "--out", out, "--store", stores["hubble"])
    assert hubble.code == 0, hubble.err


def without_rules(document: dict[str, Any], dropped: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The document with these rules removed (each must be there)."""
    if not dropped:
        return document
    spec = {**document["spec"]}
    for direction, rule in dropped:
        rules = list(spec[direction])
        rules.remove(rule)
        spec[direction] = rules
    return {**document, "spec": spec}


def peers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = document.get("spec") or {}
    for rule in [*spec.get("ingress", []), *spec.get("egress", [])]:
        yield from rule.get("from", rule.get("to", []))


def test_generated_policies_agree_where_the_data_allows(
    stores: dict[str, Path], synth: Callable[..., Run], tmp_path: Path
) -> None:
    hubble, hubble_said = generated(synth, stores["hubble"], tmp_path / "hubble")
    calico, calico_said = generated(synth, stores["calico"], tmp_path / "calico")
    assert sorted(calico) == sorted(hubble)
    assert sum(document["kind"] == "NetworkPolicy" for document in calico.values()) == 14
    for name, document in calico.items():
        expected = without_rules(hubble[name], HUBBLE_ONLY_RULES.get(name, []))
        assert document == expected, name
        assert not any("ipBlock" in peer for peer in peers(document)), name  # Calico: pod peers only
    # Hubble's addresses make rules or their own findings; Calico reports the same traffic as not enforceable.
    assert "payments: 6 policies" in hubble_said and "payments: 6 policies" in calico_said
    assert "shop: 8 policies" in hubble_said and "shop: 8 policies" in calico_said
    assert "not-enforceable" not in hubble_said
    assert "payments: 6 policies; findings: 4 denied-attempt, 3 not-enforceable" in calico_said
    assert "shop: 8 policies; findings: 1 denied-attempt, 5 not-enforceable" in calico_said


def test_not_enforceable_edges_are_the_addresses_calico_hides(
    stores: dict[str, Path], synth: Callable[..., Run]
) -> None:
    calico = edges(synth, stores["calico"])
    hidden = {(e["src_kind"], e["src_namespace"] or "", e["dst_kind"], e["dst_namespace"] or "", e["port"])
              for e in calico if "world" in (e["src_kind"], e["dst_kind"]) and "" in (e["src_selector"],
                                                                                        e["dst_selector"])}
    probes = {("world", "", "pod", ns, port) for ns, port in (
        ("shop", 8081), ("shop", 8080), ("shop", 7070), ("shop", 3550), ("payments", 8444), ("payments", 5432),
        ("monitoring", 9090), ("kube-system", 8080))}
    assert hidden == probes | {
        ("world", "", "pod", "shop", 8080),  # world clients of the frontend (pub)
        ("pod", "payments", "world", "", 443),  # payments/api → card processor (pub)
        ("pod", "monitoring", "world", "", 6443),  # prometheus → kube-apiserver (pvt)
    }
    # Denied flows are kept at level 1, so the reconcile job's attempts keep their addresses, as in Hubble.
    denied = sorted(e["dst_selector"] for e in calico if e["dst_kind"] == "world" and not e["allowed"])
    hubble_denied = sorted(e["dst_selector"] for e in edges(synth, stores["hubble"])
                           if e["dst_kind"] == "world" and not e["allowed"])
    assert denied == hubble_denied == ["203.0.113.10/32", "203.0.113.11/32", "203.0.113.12/32"]


def _rows(path: Path) -> list[dict[str, Any]]:
    with InputFile(str(path)) as input_file:
        source = CalicoFileSource(input_file)
        rows = pa.Table.from_batches(list(source.batches()), schema=FLOW_SCHEMA).to_pylist()
    assert source.stats.skipped == 0
    return rows


def test_elasticsearch_export_gives_the_flow_log_rows_plus_the_node() -> None:
    exported = _rows(CALICO_ES)
    assert exported and {r["node"] for r in exported} == {"prod-worker-1a", "prod-worker-1b", "prod-worker-1c"}
    first, last = exported[0]["time"], exported[-1]["time"]
    flowlog = [r for r in _rows(CALICO) if first <= r["time"] <= last]
    assert [{**r, "node": None} for r in exported] == flowlog
