"""HTTP rule entries from requests seen: which path segments are identifiers, what an entry matches, the limit."""

from __future__ import annotations

import pytest

from synth.core.l7 import generalise, http_rules, is_identifier, is_literal, literal, matches
from synth.core.model import HTTPRule


@pytest.mark.parametrize("segment", [
    "42", "0", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "5f3a9c0d", "deadbeef01", "2026-11-20", "1.4.2",
    "a1B2c3D4e5F6g7H8", "12:30",
])
def test_identifiers(segment: str) -> None:
    assert is_identifier(segment)


@pytest.mark.parametrize("segment", [
    "carts", "v1", "api", "deadbeef", "healthz", "_search", "items.json", "user-profile", "abcdefghijklmnop",
])
def test_routes_are_not_identifiers(segment: str) -> None:
    assert not is_identifier(segment)


@pytest.mark.parametrize(("path", "rule"), [
    ("/carts/42", "/carts/[^/?]+"),
    ("/carts/42/items", "/carts/[^/?]+/items"),
    ("/v1/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/v1/users/[^/?]+"),
    ("/search?q=shoes&page=2", "/search\\?q=[^&]*&page=[^&]*"),
    ("/flag?debug", "/flag\\?debug"),
    ("/static/app.min.js", "/static/app\\.min\\.js"),
    ("/", "/"),
    ("/a+b/(x)", "/a\\+b/\\(x\\)"),
])
def test_generalise(path: str, rule: str) -> None:
    assert generalise(path) == rule
    assert matches(HTTPRule("GET", rule), "GET", path)


def test_an_entry_matches_in_full_and_only_its_method() -> None:
    rule = HTTPRule("GET", "/carts/[^/?]+")
    assert matches(rule, "GET", "/carts/7")
    assert not matches(rule, "GET", "/carts/7/items")
    assert not matches(rule, "GET", "/carts/7?x=1")  # the query is part of what the proxy matches
    assert not matches(rule, "POST", "/carts/7")
    assert not matches(rule, "GETX", "/carts/7")
    assert matches(HTTPRule(), "PUT", "/anything")
    assert not matches(HTTPRule("GET", "/carts/("), "GET", "/carts/(")  # unreadable: matches nothing


def test_literal_round_trips_and_is_literal_tells_patterns_apart() -> None:
    for text in ("/a.b?c=d", "/x(y)*", "GET", "/"):
        assert matches(HTTPRule(literal("GET"), literal(text)), "GET", text)
        assert is_literal(literal(text))
    assert not is_literal("/carts/[^/?]+")
    assert not is_literal("/a\\d")
    assert not is_literal("")


def test_http_rules_group_requests_by_entry_and_keep_the_limit() -> None:
    requests = [("GET", "/carts/1", 3), ("GET", "/carts/2", 1), ("POST", "/carts/1", 2), ("GET", "/healthz", 5)]
    entries = http_rules(requests, max_paths=3)
    assert entries is not None
    assert [(e.rule, e.requests, e.paths, e.generalised) for e in entries] == [
        (HTTPRule("GET", "/carts/[^/?]+"), 4, ("/carts/1", "/carts/2"), True),
        (HTTPRule("POST", "/carts/[^/?]+"), 2, ("/carts/1",), True),
        (HTTPRule("GET", "/healthz"), 5, ("/healthz",), False),
    ]
    assert [e.line() for e in entries][2] == "GET /healthz: 5 requests"
    assert http_rules(requests, max_paths=2) is None
    assert http_rules([], max_paths=2) is None
