"""`--l7`: HTTP requests Hubble saw become Cilium `rules.http` entries on the ports where every peer made them,
identifiers in paths generalised and explained; the YAML reads back through the strict converter; verify
proves both halves at L7 too (a request no entry matches is a denied flow, an entry no request used is an
allowance); ports that cannot take HTTP rules keep an L4 rule and say why; the usage errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Run, assert_format_usage_error
from flowbuilder import Pod, flow, write

from synth.app.generation import Generated, describe, generate, verify_policies
from synth.app.ingest import import_files
from synth.base.config import Settings
from synth.core.model import HTTPRule, PolicyFormat, PolicySet
from synth.policy.cilium import policies_from_cnp
from synth.store.dataset import Store

FRONT = Pod("shop", "front-1", {"app": "front"}, "10.0.0.1", "Deployment/front")
ADMIN = Pod("shop", "admin-1", {"app": "admin"}, "10.0.0.2", "Deployment/admin")
CART = Pod("shop", "cart-1", {"app": "cart"}, "10.0.0.3", "Deployment/cart")
DB = Pod("shop", "db-1", {"app": "db"}, "10.0.0.4", "StatefulSet/db")
SEARCH = Pod("shop", "search-1", {"app": "search"}, "10.0.0.5", "Deployment/search")
WORKER = Pod("shop", "worker-1", {"app": "worker"}, "10.0.0.6", "Deployment/worker")
BUSY = Pod("shop", "busy-1", {"app": "busy"}, "10.0.0.7", "Deployment/busy")
API = Pod("shop", "api-1", {"app": "api"}, "10.0.0.8", "Deployment/api")
ROUTES = [f"/{word}" for word in ("about", "blog", "careers", "contact", "docs", "faq", "help", "home", "jobs", "legal",
                                  "login", "logout", "news", "press", "pricing", "privacy", "search", "signup",
                                  "status", "support", "terms", "tour", "upload", "vision", "welcome")]
CILIUM_L7 = PolicyFormat("cilium", l7=True)


def requests(src: Pod, dst: Pod, port: int, *calls: tuple[str, str]) -> list[dict[str, Any]]:
    """A connection's L4 flow and one L7 request record per call, as Hubble reports them at the client."""
    host = dst.labels["app"]
    return [flow(src, dst, port)] + [
        flow(src, dst, port, http=(method, f"http://{host}:{port}{path}"), time=f"2026-11-20T10:00:{i:02d}Z")
        for i, (method, path) in enumerate(calls)
    ]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("l7")
    flows = [
        *requests(FRONT, CART, 8080, ("GET", "/carts/42"), ("GET", "/carts/7"), ("GET", "/carts/7?expand=items"),
                  ("POST", "/carts/42/items"), ("GET", "/healthz")),
        *requests(ADMIN, CART, 8080, ("DELETE", "/carts/42")),
        flow(FRONT, DB, 5432),  # no HTTP: stays L4
        *requests(FRONT, SEARCH, 9200, ("GET", "/products/_search?q=shoes")),
        flow(WORKER, SEARCH, 9200),  # a peer without requests: the port stays L4 at the server
        *requests(BUSY, API, 80, *(("GET", route) for route in ROUTES)),  # more entries than the default limit
    ]
    path = folder / "store"
    import_files(Store(str(path)), "hubble", [str(write(folder / "flows.json", flows))])
    return path


def generated(store_path: Path, policy_format: PolicyFormat = CILIUM_L7) -> Generated:
    return generate(Store(str(store_path)), Settings(), namespaces=["shop"], policy_format=policy_format)


def document(result: Generated, name: str) -> dict[str, Any]:
    return yaml.safe_load(result.files[f"shop/{name}.yaml"])  # type: ignore[no-any-return]


def port(number: int, http: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"ports": [{"port": str(number), "protocol": "TCP"}]}
    if http is not None:
        entry["rules"] = {"http": http}
    return [entry]


def test_each_peer_gets_its_own_requests_identifiers_generalised(store_path: Path) -> None:
    """cart: one rule per client, each with the requests that client made; `42` and `7` are identifiers,
    query values become `[^&]*`; literal parts are escaped."""
    rules = document(generated(store_path), "cart-ingress")["spec"]["ingress"]
    assert rules == [
        {"fromEndpoints": [{"matchLabels": {"app": "admin"}}],
         "toPorts": port(8080, [{"method": "DELETE", "path": "/carts/[^/?]+"}])},
        {"fromEndpoints": [{"matchLabels": {"app": "front"}}],
         "toPorts": port(8080, [
             {"method": "GET", "path": "/carts/[^/?]+"},
             {"method": "POST", "path": "/carts/[^/?]+/items"},
             {"method": "GET", "path": "/carts/[^/?]+\\?expand=[^&]*"},
             {"method": "GET", "path": "/healthz"},
         ])},
    ]
    egress = document(generated(store_path), "front-egress")["spec"]["egress"]
    assert {"toEndpoints": [{"matchLabels": {"app": "db"}}], "toPorts": port(5432)} in egress
    assert {"toEndpoints": [{"matchLabels": {"app": "search"}}],
            "toPorts": port(9200, [{"method": "GET", "path": "/products/_search\\?q=[^&]*"}])} in egress


def test_the_evidence_names_the_requests_behind_each_entry(store_path: Path) -> None:
    text = generated(store_path).files["shop/cart-ingress.yaml"]
    assert "  # HTTP GET /carts/[^/?]+: 2 requests (paths seen: /carts/42, /carts/7)\n" in text
    assert "  # HTTP GET /healthz: 1 request\n" in text


def test_the_yaml_reads_back_with_its_http_entries(store_path: Path) -> None:
    policy = policies_from_cnp(document(generated(store_path), "cart-ingress"), "cart-ingress.yaml")[0]
    assert [rule.http for rule in policy.ingress] == [
        (HTTPRule("DELETE", "/carts/[^/?]+"),),
        (HTTPRule("GET", "/carts/[^/?]+"), HTTPRule("POST", "/carts/[^/?]+/items"),
         HTTPRule("GET", "/carts/[^/?]+\\?expand=[^&]*"), HTTPRule("GET", "/healthz")),
    ]


def test_ports_that_cannot_take_http_rules_stay_l4_and_say_why(store_path: Path) -> None:
    result = generated(store_path)
    assert document(result, "search-ingress")["spec"]["ingress"] == [
        {"fromEndpoints": [{"matchLabels": {"app": "front"}}], "toPorts": port(9200)},
        {"fromEndpoints": [{"matchLabels": {"app": "worker"}}], "toPorts": port(9200)},
    ]
    assert document(result, "api-ingress")["spec"]["ingress"] == [
        {"fromEndpoints": [{"matchLabels": {"app": "busy"}}], "toPorts": port(80)},
    ]
    details = {(f.subject, f.detail) for f in result.synthesis.findings if f.kind == "http-l4"}
    assert details == {
        ("shop/Deployment/search", "ingress TCP 9200 stays an L4 rule: 1 of its 2 peers made no HTTP request on it "
                                   "(an HTTP rule must cover every peer of a port)"),
        ("shop/Deployment/api", "ingress TCP 80 stays an L4 rule: a peer made more distinct requests than "
                                "--l7-max-paths 20 allows, even with identifiers generalised (25 distinct requests)"),
        ("shop/Deployment/busy", "egress TCP 80 stays an L4 rule: a peer made more distinct requests than "
                                 "--l7-max-paths 20 allows, even with identifiers generalised (25 distinct requests)"),
    }


def test_the_path_limit_is_the_users(store_path: Path) -> None:
    result = generated(store_path, PolicyFormat("cilium", l7=True, l7_max_paths=25))
    http = document(result, "api-ingress")["spec"]["ingress"][0]["toPorts"][0]["rules"]["http"]
    assert http == [{"method": "GET", "path": route} for route in ROUTES]
    assert not [f for f in result.synthesis.findings if f.subject == "shop/Deployment/api"]


def test_both_halves_hold_and_generalised_paths_are_flagged(store_path: Path) -> None:
    """Every request allowed; nothing allowed that no request used besides the generalised entries, flagged."""
    verification = generated(store_path).verification
    assert (verification.denied_flows, verification.unjudged_flows, verification.over_permissive) == (0, 0, ())
    flagged = sorted(a.line() for a in verification.unobserved if a.flag == "path")
    assert flagged == [
        "shop/admin -> shop/cart TCP/8080 DELETE /carts/[^/?]+",
        "shop/front -> shop/cart TCP/8080 GET /carts/[^/?]+",
        "shop/front -> shop/cart TCP/8080 GET /carts/[^/?]+\\?expand=[^&]*",
        "shop/front -> shop/cart TCP/8080 POST /carts/[^/?]+/items",
        "shop/front -> shop/search TCP/9200 GET /products/_search\\?q=[^&]*",
    ]
    assert "(besides 5 path, flagged)" in verification.summary()


def edited(result: Generated, name: str, change: Callable[[list[dict[str, Any]]], None]) -> PolicySet:
    """The generated policies with one rule list of one policy changed, read back from YAML."""
    policies = []
    for key, text in result.files.items():
        if key.endswith("kustomization.yaml"):
            continue
        body = yaml.safe_load(text)
        if key == f"shop/{name}.yaml":
            change(body["spec"]["ingress"])
        policies += policies_from_cnp(body, key)
    return PolicySet.of(policies)


def test_a_request_no_entry_matches_is_a_denied_flow(store_path: Path) -> None:
    """Without the POST entry, the proxy answers front's POST with 403: one denied flow, named."""
    def drop_post(rules: list[dict[str, Any]]) -> None:
        http = rules[1]["toPorts"][0]["rules"]["http"]
        http[:] = [entry for entry in http if entry["method"] != "POST"]

    policies = edited(generated(store_path), "cart-ingress", drop_post)
    result = verify_policies(Store(str(store_path)), Settings(), policies, namespaces=["shop"])
    assert result.denied_flows == 1
    [edge] = result.denied
    assert edge.line() == "shop/app=front -> shop/app=cart TCP/8080"
    assert edge.reasons == ("denied at L7: the proxy answers HTTP 403 to POST /carts/42/items: no HTTP entry of "
                            "shop/cart-ingress ingress[1] matches",)


def test_an_entry_no_request_used_is_allowed_that_no_flow_used(store_path: Path) -> None:
    def add_admin(rules: list[dict[str, Any]]) -> None:
        rules[1]["toPorts"][0]["rules"]["http"].append({"method": "GET", "path": "/admin"})

    policies = edited(generated(store_path), "cart-ingress", add_admin)
    result = verify_policies(Store(str(store_path)), Settings(), policies, namespaces=["shop"])
    assert result.denied_flows == 0
    assert [a.line() for a in result.over_permissive] == ["shop/front -> shop/cart TCP/8080 GET /admin"]


def test_an_l4_rule_for_the_same_peer_lets_every_request_through(store_path: Path) -> None:
    """The agent merges a plain rule on the port as allow-all: no L7 denial for front even without entries that
    match, and its entries are then judged as the L4 rule."""
    def plain_too(rules: list[dict[str, Any]]) -> None:
        rules[1]["toPorts"][0]["rules"]["http"] = [{"method": "GET", "path": "/nothing"}]
        rules.append({"fromEndpoints": [{"matchLabels": {"app": "front"}}], "toPorts": port(8080)})

    policies = edited(generated(store_path), "cart-ingress", plain_too)
    result = verify_policies(Store(str(store_path)), Settings(), policies, namespaces=["shop"])
    assert result.denied_flows == 0


def test_without_l7_the_same_store_gives_l4_rules(store_path: Path) -> None:
    result = generated(store_path, PolicyFormat("cilium"))
    assert "rules:" not in result.files["shop/cart-ingress.yaml"]
    assert result.verification.unobserved == ()


def test_the_pr_text_lists_the_http_rules_and_why_ports_stay_l4(store_path: Path) -> None:
    text = describe(Store(str(store_path)), generated(store_path))
    assert "### HTTP rules (Cilium L7)" in text
    assert ("| shop/Deployment/cart | ingress shop/front on TCP 8080: GET /carts/\\[^/?\\]+: 2 requests (paths seen: "
            "/carts/42, /carts/7); POST /carts/\\[^/?\\]+/items: 1 request (paths seen: /carts/42/items);") in text
    assert "| shop/Deployment/search | ingress TCP 9200 stays an L4 rule: 1 of its 2 peers" in text


def test_its_own_output_passes_generate_diff_and_verify(store_path: Path, tmp_path: Path,
                                                        synth: Callable[..., Run]) -> None:
    options = ("--format", "cilium", "--l7")
    out = tmp_path / "out"
    run = synth("generate", "-n", "shop", *options, "--store", store_path, "--out", out)
    assert run.code == 0, run.err
    assert "0 observed flows denied, 0 unjudged; 0 connections allowed that no flow used (besides 5 path" in run.err
    run = synth("diff", "-n", "shop", *options, "--store", store_path, "--deployed", out)
    assert run.code == 0, run.out + run.err
    assert "0 changed, 0 added, 0 removed" in run.out
    run = synth("verify", "-n", "shop", "--policies", out, "--store", store_path)
    assert run.code == 0, run.out
    assert "  [path] shop/front -> shop/cart TCP/8080 GET /carts/[^/?]+\n" in run.out


@pytest.mark.parametrize(("options", "message"), [
    (("--l7",), "--l7 writes Cilium HTTP rules: add --format cilium"),
    (("--format", "calico", "--l7"), "--l7 writes Cilium HTTP rules: add --format cilium"),
    (("--l7-max-paths", "5"), "--l7-max-paths writes Cilium HTTP rules: add --format cilium"),
    (("--format", "cilium", "--l7-max-paths", "5"), "--l7-max-paths limits the HTTP rules of --l7: add --l7"),
])
def test_l7_options_without_cilium_are_usage_errors(
    store_path: Path, synth: Callable[..., Run], options: tuple[str, ...], message: str
) -> None:
    assert_format_usage_error(synth, store_path, options, message)


def test_without_recorded_requests_http_rules_are_judged_at_l4_only(store_path: Path, tmp_path: Path) -> None:
    """A recording without L7 visibility (the same connections, no HTTP records) neither denies nor counts the
    entries: nothing says which requests were made."""
    flows = [flow(FRONT, CART, 8080), flow(ADMIN, CART, 8080), flow(FRONT, DB, 5432), flow(FRONT, SEARCH, 9200),
             flow(WORKER, SEARCH, 9200), flow(BUSY, API, 80)]
    plain = tmp_path / "store"
    import_files(Store(str(plain)), "hubble", [str(write(tmp_path / "flows.json", flows))])
    policies = generated(store_path).synthesis.policies
    result = verify_policies(Store(str(plain)), Settings(), policies, namespaces=["shop"])
    assert (result.denied_flows, result.over_permissive) == (0, ())
    assert not [a for a in result.unobserved if a.request]
