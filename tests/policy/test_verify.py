"""Replaying stored flows through policy sets: denied edges with reasons, unjudged flows, exit codes,
and generate's self-check (policies must allow the flows they were made from)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import Run, shared_captures

from synth.app import generation as pipeline
from synth.app.flows import observe_store
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.base.errors import GenerationError
from synth.core.model import LabelSelector, PolicySet
from synth.core.synthesize import synthesize
from synth.policy.manifest import policy_from_object
from synth.policy.observed import Observed, observe_batches
from synth.policy.verify import VerifyResult, verify
from synth.sources.columns import DIRECTION_INDEX, KIND_INDEX, PROTOCOL_INDEX, SOURCE_INDEX, VERDICT_INDEX, FlowColumns
from synth.store.dataset import Store

T0 = 1_763_600_000 * 10**9  # 2025-11-20T00:53:20Z


# --- synthetic flows -------------------------------------------------------------------------------


def pod(namespace: str, name: str, ip: str, **labels: str) -> dict[str, Any]:
    return {"kind": "pod", "namespace": namespace, "pod": name, "ip": ip, "labels": labels}


def other(kind: str, ip: str | None) -> dict[str, Any]:
    return {"kind": kind, "namespace": None, "pod": None, "ip": ip, "labels": {}}


def flow(src: dict[str, Any], dst: dict[str, Any], port: int | None, **extra: Any) -> dict[str, Any]:
    return {"src": src, "dst": dst, "port": port, **extra}


def batch(flows: Iterable[dict[str, Any]]) -> pa.RecordBatch:
    """FLOW_SCHEMA rows for the given flows (egress-observed forwards unless said otherwise)."""
    c = FlowColumns()
    for i, f in enumerate(flows):
        c.time.append(T0 + f.get("t", i) * 10**9)
        c.count.append(f.get("count", 1))
        c.source.append(SOURCE_INDEX["hubble"])
        c.verdict.append(VERDICT_INDEX[f.get("verdict", "forwarded")])
        c.drop_reason.append(f.get("drop_reason"))
        c.direction.append(DIRECTION_INDEX[f.get("direction", "egress")])
        c.is_reply.append(f.get("reply", False))
        c.protocol.append(PROTOCOL_INDEX[f.get("protocol", "TCP")])
        c.src_port.append(40000)
        c.dst_port.append(f["port"])
        for side in ("src", "dst"):
            end = f[side]
            getattr(c, f"{side}_ip").append(end["ip"])
            getattr(c, f"{side}_kind").append(KIND_INDEX[end["kind"]])
            getattr(c, f"{side}_namespace").append(end["namespace"])
            getattr(c, f"{side}_pod").append(end["pod"])
            getattr(c, f"{side}_workload").append(None)
            getattr(c, f"{side}_labels").append(tuple(sorted(end["labels"].items())))
            getattr(c, f"{side}_ns_labels").append(tuple(sorted(f.get(f"{side}_ns_labels", {}).items())))
        c.dst_names.append(())
        c.dst_service.append(None)
        c.dst_service_port.append(None)
        c.node.append(None)
        c.policies.append(())
        c.flows_started.append(None)
        c.flows_completed.append(None)
        c.dns_query.append(None)
        c.dns_answers.append(())
        c.http_method.append(None)
        c.http_path.append(None)
    return c.to_batch()


WEB = pod("x", "web-7d4b9c-x7k2p", "10.0.1.1", app="web", **{"pod-template-hash": "7d4b9c"})
WEB2 = pod("x", "web-7d4b9c-q9z4m", "10.0.1.2", app="web", **{"pod-template-hash": "7d4b9c"})
API = pod("x", "api-5f6c7d-ccccc", "10.0.1.3", app="api", tier="backend")
DB = pod("x", "db-0", "10.0.1.4", app="db")
PROM = pod("mon", "prom-0", "10.0.2.1", app="prom")
WORLD = other("world", "203.0.113.5")
HOST = other("host", "10.0.0.1")


def small_flows() -> list[dict[str, Any]]:
    """A small namespace `x`: web → api → db, web → the internet, probes, a scrape, ICMP, an attempt."""
    return [
        *(flow(WEB, API, 8080) for _ in range(3)),
        *(flow(WEB2, API, 8080) for _ in range(2)),
        flow(API, DB, 5432, count=3),
        flow(WEB, WORLD, 443, count=2),
        flow(HOST, API, 8081, count=4, direction="ingress"),
        flow(PROM, API, 9090),
        flow(WEB, API, None, protocol="ICMPv4"),
        flow(API, WEB, 40000, reply=True, count=5),
        flow(WEB, DB, 5432, verdict="dropped", drop_reason="POLICY_DENIED", direction="ingress", count=2),
    ]


def observed_small(flows: list[dict[str, Any]] | None = None) -> Observed:
    return observe_batches([batch(small_flows() if flows is None else flows)], Settings())


def policies(*manifests: dict[str, Any]) -> PolicySet:
    return PolicySet.of([policy_from_object(m, f"test#{i}") for i, m in enumerate(manifests, 1)])


def netpol(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


DENY_INGRESS = netpol("deny-ingress", "x", {"podSelector": {}, "policyTypes": ["Ingress"]})
API_FROM_WEB = netpol(
    "api-from-web",
    "x",
    {
        "podSelector": {"matchLabels": {"app": "api"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 8080}]}],
    },
)
ALLOW_ALL_INGRESS = netpol("allow-all", "x", {"podSelector": {}, "ingress": [{}]})


def edges_of(result: VerifyResult, attribute: str = "denied") -> list[tuple[str, str, int]]:
    return [(e.line(), e.category, e.flows) for e in getattr(result, attribute)]


# --- the library -------------------------------------------------------------------------------------


def test_pairs_are_distinct_endpoint_tuples_with_replies_left_out() -> None:
    observed = observed_small()
    web_api = [p for p in observed.pairs if p.edge_key[2:] == ("TCP", 8080)]
    # Two pods of one workload with the same labels are one pair (the engine is asked once); the
    # pair carries both pod names and the flows of both.
    assert len(web_api) == 1 and web_api[0].flows == 5
    assert {pod for p in web_api for pod in p.src_pods} == {"web-7d4b9c-x7k2p", "web-7d4b9c-q9z4m"}
    assert all(p.src.text() == "x/app=web" and p.dst.text() == "x/app=api" for p in web_api)
    assert not [p for p in observed.pairs if p.traffic.port == 40000]
    assert observed.stats.replies == 1


def test_a_set_that_breaks_real_edges_denies_exactly_them_with_reasons() -> None:
    result = verify(observed_small(), policies(DENY_INGRESS, API_FROM_WEB), ["x"])
    assert edges_of(result) == [
        ("mon/app=prom -> x/app=api TCP/9090", "", 1),
        ("x/app=api -> x/app=db TCP/5432", "", 3),
    ]
    (scrape, db) = result.denied
    assert scrape.reasons == (
        "ingress denied: pod x/{app=api,tier=backend} is isolated for ingress by x/api-from-web, x/deny-ingress "
        "and no rule allows TCP/9090 from pod mon/{app=prom}",
    )
    assert db.reasons[0].startswith("ingress denied: pod x/{app=db} is isolated for ingress by x/deny-ingress")
    assert (db.src_pods, db.dst_pods) == (("api-5f6c7d-ccccc",), ("db-0",))
    assert result.denied_flows == 4 and not result.ok
    # ingress from the pod's own node is always allowed; ICMP into an isolated pod cannot be judged
    assert edges_of(result, "unjudged") == [("x/app=web -> x/app=api ICMPv4", "protocol", 1)]
    assert result.attempts == 2 and not result.attempts_allowed
    assert edges_of(result, "attempts_denied") == [("x/app=web -> x/app=db TCP/5432", "", 2)]
    assert result.summary() == (
        "verify: 4 observed flows denied, 1 unjudged (protocol); 3 connections allowed that no flow used"
    )
    # the set isolates ingress only: each workload of x may send anything anywhere
    assert sorted(a.line() for a in result.over_permissive) == [
        "x/api -> anything on any port", "x/db -> anything on any port", "x/web -> anything on any port"
    ]


def test_a_set_that_allows_everything_denies_nothing_and_lets_attempts_through() -> None:
    result = verify(observed_small(), policies(ALLOW_ALL_INGRESS), ["x"])
    assert result.ok
    assert (result.flows, result.allowed_flows, result.unjudged_flows) == (16, 15, 1)  # ICMP stays undefined
    assert edges_of(result, "attempts_allowed") == [("x/app=web -> x/app=db TCP/5432", "", 2)]


def test_unjudged_flows_are_counted_by_category_not_passed() -> None:
    flows = [
        flow(other("remote-node", "10.0.9.9"), API, 8080),
        flow(other("unknown", "10.0.9.8"), API, 8080),
        flow(pod("x", "ghost-1", "10.0.1.9"), API, 8080, count=2),  # a pod without labels
    ]
    result = verify(observed_small(flows), policies(DENY_INGRESS, API_FROM_WEB), ["x"])
    assert result.ok
    assert result.unjudged_by_category() == (("labels", 2), ("node", 1), ("unknown-peer", 1))
    node = next(e for e in result.unjudged if e.category == "node")
    assert node.reasons[0].endswith("(not judged: whether policy applies to this end depends on the CNI)")


def test_namespace_labels_recorded_with_flows_are_used_for_namespace_selectors() -> None:
    from_team = netpol(
        "api-from-team",
        "x",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}],
        },
    )
    with_labels = flow(PROM, API, 9090, src_ns_labels={"team": "obs", "kubernetes.io/metadata.name": "mon"})
    assert verify(observed_small([with_labels]), policies(from_team), ["x"]).ok
    without = verify(observed_small([flow(PROM, API, 9090)]), policies(from_team), ["x"])
    assert edges_of(without) == [("mon/app=prom -> x/app=api TCP/9090", "", 1)]


def test_generated_policies_allow_what_they_were_made_from() -> None:
    observed = observed_small()
    synthesis = synthesize(observed.edges, ["x"], Settings())
    result = verify(observed, synthesis.policies, ["x"])
    assert result.ok and result.denied_flows == 0
    assert edges_of(result, "unjudged") == [("x/app=web -> x/app=api ICMPv4", "protocol", 1)]
    assert result.attempts_denied and not result.attempts_allowed


# --- the CLI, exit codes, json -------------------------------------------------------------------------


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    writer = Store(str(path)).writer({"source": "test"})
    writer.write(batch(small_flows()))
    writer.close()
    return path


def write_policies(path: Path, *manifests: dict[str, Any]) -> Path:
    path.write_text("---\n".join(json.dumps(m) + "\n" for m in manifests))
    return path


def test_verify_command_exit_codes_and_json(synth: Callable[..., Run], small_store: Path, tmp_path: Path) -> None:
    broken = write_policies(tmp_path / "broken.yaml", DENY_INGRESS, API_FROM_WEB)
    run = synth("verify", "--policies", broken, "--store", small_store)
    assert run.code == 1
    assert "DENIED: 2 edges, 4 flows" in run.out
    # all namespaces: mon has no policy at all, so its prom is open both ways besides x's open egress
    assert run.out.endswith(
        "verify: 4 observed flows denied, 1 unjudged (protocol); 5 connections allowed that no flow used\n"
    )
    run = synth("verify", "--policies", broken, "-n", "x", "-o", "json", "--store", small_store)
    assert run.code == 1
    document = json.loads(run.out)
    assert document["ok"] is False and document["denied_flows"] == 4
    assert [(d["src"]["selector"], d["dst"]["selector"], d["port"]) for d in document["denied"]] == [
        ("app=prom", "app=api", 9090),
        ("app=api", "app=db", 5432),
    ]
    assert document["unjudged"][0]["category"] == "protocol"
    workloads = sorted(a["src"]["workload"] for a in document["allowed_unobserved"])
    assert workloads == ["Deployment/api", "Deployment/web", "StatefulSet/db"]
    open_set = write_policies(tmp_path / "open.yaml", ALLOW_ALL_INGRESS)
    assert synth("verify", "--policies", open_set, "--store", small_store).code == 0


def test_verify_command_errors(synth: Callable[..., Run], small_store: Path, tmp_path: Path) -> None:
    run = synth("verify", "--policies", tmp_path / "missing.yaml", "--store", small_store)
    assert run.code == 3 and "missing.yaml: no such file or folder" in run.err
    assert synth("verify", "--store", small_store).code == 2  # --policies is required
    empty = synth("verify", "--policies", write_policies(tmp_path / "p.yaml", DENY_INGRESS), "--store", tmp_path / "e")
    assert empty.code == 3 and "e: no such store (nothing is there)" in empty.err


def test_generate_reports_its_self_check(synth: Callable[..., Run], small_store: Path) -> None:
    run = synth("generate", "-n", "x", "--store", small_store)
    assert run.code == 0
    summary = "verify: 0 observed flows denied, 1 unjudged (protocol); 0 connections allowed that no flow used"
    assert summary in run.err.splitlines()


# --- generate's self-check fails loudly ------------------------------------------------------------------


def _drop_first_rule(name: str) -> Callable[..., Any]:
    from dataclasses import replace

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = synthesize(*args, **kwargs)
        changed = [replace(p, ingress=p.ingress[1:]) if p.name == name else p for p in result.policies.policies]
        return replace(result, policies=PolicySet.of(changed))

    return patched


def test_self_check_fails_loudly_when_a_rule_is_missing(
    synth: Callable[..., Run], small_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "synthesize", _drop_first_rule("api-ingress"))
    with pytest.raises(GenerationError, match=r"denies x/app=web -> x/app=api TCP/8080 \(5 flows\)"):
        pipeline.generate(Store(str(small_store)), Settings(), namespaces=["x"])
    run = synth("generate", "-n", "x", "--store", small_store)
    assert run.code == 3
    assert "the generated policies fail their self-check (a bug in synth" in run.err
    assert "x/app=web -> x/app=api TCP/8080" in run.err and not run.out


def test_self_check_fails_when_a_selector_misses_its_pods(small_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    def patched(*args: Any, **kwargs: Any) -> Any:
        result = synthesize(*args, **kwargs)
        changed = [
            replace(p, pod_selector=LabelSelector.of({"app": "wbe"})) if p.name == "web-egress" else p
            for p in result.policies.policies
        ]
        return replace(result, policies=PolicySet.of(changed))

    monkeypatch.setattr(pipeline, "synthesize", patched)
    with pytest.raises(GenerationError, match=r"x/web-egress: podSelector \{app=wbe\} does not select pod x/web-"):
        pipeline.generate(Store(str(small_store)), Settings(), namespaces=["x"])


# --- real captures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def captures_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = shared_captures()
    path = tmp_path_factory.mktemp("captures")
    import_files(Store(str(path)), "hubble", [str(f) for f in files])
    return path


BOOKINFO_BROKEN = (
    netpol("deny-ingress", "bookinfo", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    netpol(
        "reviews-from-productpage",
        "bookinfo",
        {
            "podSelector": {"matchLabels": {"app": "reviews"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "productpage"}}}], "ports": [{"port": 9080}]}
            ],
        },
    ),
)


def test_real_captures_generate_passes_its_self_check(captures_store: Path) -> None:
    generated = pipeline.generate(Store(str(captures_store)), Settings(), all_namespaces=True)
    assert generated.verification.ok
    assert generated.left_out == ("kube-system",)  # -A leaves system namespaces out unless named
    assert generated.verification.unjudged_by_category() == (("unknown-peer", 84),)
    with_system = pipeline.generate(Store(str(captures_store)), Settings(), namespaces=["kube-system"],
                                    all_namespaces=True)  # fmt: skip
    assert with_system.left_out == () and "kube-system" in with_system.synthesis.namespaces
    assert with_system.verification.unjudged_by_category() == (("node", 1), ("unknown-peer", 84))
    assert generated.verification.over_permissive == ()


def test_the_samples_policies_allow_nothing_unobserved_but_what_they_flag(sample_store: Path) -> None:
    """Both halves on synth's own output: no observed flow denied, and the only connections allowed
    that no flow used are the public endpoint the report flags."""
    generated = pipeline.generate(Store(str(sample_store)), Settings(), all_namespaces=True)
    result = generated.verification
    assert result.ok and result.over_permissive == ()
    meant = [(a.flag, a.line()) for a in result.unobserved if a.flag != "dns"]
    assert meant == [("public", "world 0.0.0.0/0 -> shop/frontend TCP/8080")]
    assert all(a.dst.namespace == "kube-system" and a.port == 53 for a in result.unobserved if a.flag == "dns")


def test_real_captures_broken_cluster(synth: Callable[..., Run], captures_store: Path, tmp_path: Path) -> None:
    broken = write_policies(tmp_path / "broken.yaml", *BOOKINFO_BROKEN)
    run = synth("verify", "--policies", broken, "-n", "bookinfo", "-o", "json", "--store", captures_store)
    assert run.code == 1
    denied = json.loads(run.out)["denied"]
    assert [
        (d["src"]["namespace"], d["src"]["selector"], d["dst"]["selector"], d["port"], d["flows"]) for d in denied
    ] == [
        ("bookinfo", "app=productpage", "app=details", 9080, 46),
        ("bookinfo", "app=ratings", "app=productpage", 9080, 55),
        # reviews-v1, -v2 and -v3 share `app: reviews` and differ by `version`: each is its own endpoint
        ("bookinfo", "app=reviews,version=v2", "app=ratings", 9080, 5),
        ("istio-system", "app=prometheus", "app=reviews,version=v1", 15090, 1),
    ]
    assert all("is isolated for ingress by bookinfo/deny-ingress" in d["reasons"][0] for d in denied)


def test_one_count_per_connection_in_edges_replay_and_findings(sample_store: Path) -> None:
    """Edges, the pairs verify replays and the findings count each connection once, the same way."""
    store = Store(str(sample_store))
    observed = observe_store(store, Settings())

    def ref(end: Any) -> tuple[str, str | None, str]:
        return (end.kind, end.namespace, end.selector)

    from_edges: Counter[tuple[Any, ...]] = Counter()
    for edge in observed.edges.edges:
        from_edges[(ref(edge.src), ref(edge.dst), edge.protocol, edge.port, edge.allowed)] += edge.count
    from_pairs: Counter[tuple[Any, ...]] = Counter()
    for pair in observed.pairs:
        from_pairs[(ref(pair.src), ref(pair.dst), pair.traffic.protocol, pair.traffic.port, pair.allowed)] += pair.flows
    assert from_pairs == from_edges
    generated = pipeline.generate(store, Settings(), namespaces=["payments"])
    host = [f for f in generated.synthesis.findings if f.kind == "host-traffic"]
    assert host
    for finding in host:
        expected = sum(
            e.count for e in observed.edges.edges
            if e.src.kind == "host" and e.dst.namespace == "payments" and f"on {e.protocol} {e.port} " in finding.detail
            and f"payments/{','.join(e.dst.workloads)}" == finding.subject
        )  # fmt: skip
        assert finding.flows == expected > 0, finding
