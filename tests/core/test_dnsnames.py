"""DNS-name patterns: what each API takes (every refusal with its reason) and what a pattern matches in each
API's dialect (Cilium: `*` within one label, a leading `**.` several labels; Calico: a `*` label is one or more)."""

from __future__ import annotations

import pytest

from synth.core.dnsnames import covering_pattern, fqdn_pattern, normal_pattern, pattern_problem
from synth.core.model import FQDN, PolicyAPI

GOOD: list[tuple[PolicyAPI, str]] = [
    ("cilium", "*.example.com"),
    ("cilium", "*.Example.COM."),
    ("cilium", "api-*.example.com"),
    ("cilium", "**.example.com"),
    ("cilium", "*"),
    ("cilium", "a.*.example.com"),
    ("cilium", "*-eu.*.example.com"),
    ("cilium", "*." + "a" * 253),
    ("calico", "*.example.com"),
    ("calico", "api.*.example.com"),
    ("calico", "*.x_y.io."),
]

BAD: list[tuple[PolicyAPI, str, str]] = [
    ("cilium", "api.example.com", "no `*`: an exact name needs no pattern (names seen are allowed by name already)"),
    ("cilium", "*.exa mple.com", "Cilium takes only letters, digits, -, _, . and *"),
    ("cilium", "*.example.com/x", "Cilium takes only letters, digits, -, _, . and *"),
    ("cilium", "a**.example.com", "`**` only as a leading `**.` (several labels); `*` matches within one label"),
    ("cilium", "x.**.example.com", "`**` only as a leading `**.` (several labels); `*` matches within one label"),
    ("cilium", "*..example.com", "an empty label (two dots in a row, or a leading dot)"),
    ("cilium", ".*.example.com", "an empty label (two dots in a row, or a leading dot)"),
    ("cilium", "*." + "a" * 254, "longer than 255 characters"),
    ("calico", "api.example.com", "no `*`: an exact name needs no pattern (names seen are allowed by name already)"),
    ("calico", "api-*.example.com", "Calico takes `*` only as a whole label, not 'api-*'"),
    ("calico", "**.example.com", "Calico takes `*` only as a whole label, not '**'"),
    ("calico", "*.*.example.com", "Calico takes one `*` per name"),
    ("calico", "example.*", "Calico takes no `*` as the last label"),
    ("calico", "*", "Calico takes no `*` as the last label"),
    ("calico", "*.exa mple.com", "Calico takes only letters, digits, -, _, . and a `*` label"),
    ("calico", "*..example.com", "an empty label (two dots in a row, or a leading dot)"),
    ("calico", "*." + "a" * 252, "longer than 253 characters"),
]


@pytest.mark.parametrize(("api", "text"), GOOD)
def test_patterns_each_api_takes(api: PolicyAPI, text: str) -> None:
    assert pattern_problem(text, api) is None


@pytest.mark.parametrize(("api", "text", "problem"), BAD)
def test_patterns_each_api_refuses_say_why(api: PolicyAPI, text: str, problem: str) -> None:
    assert pattern_problem(text, api) == problem


def test_patterns_are_kept_as_names_are() -> None:
    assert normal_pattern("*.Example.COM.") == "*.example.com"


MATCHES: list[tuple[PolicyAPI, str, str, bool]] = [
    # Cilium: `*` is any run of characters within one label
    ("cilium", "*.x.io", "a.x.io", True),
    ("cilium", "*.x.io", "x.io", False),
    ("cilium", "*.x.io", "a.b.x.io", False),
    ("cilium", "api-*.x.io", "api-eu.x.io", True),
    ("cilium", "api-*.x.io", "api.x.io", False),
    ("cilium", "a.*.x.io", "a.b.x.io", True),
    ("cilium", "a.*.x.io", "a.b.c.x.io", False),
    # a leading `**.` is one or more labels, never none
    ("cilium", "**.x.io", "a.x.io", True),
    ("cilium", "**.x.io", "a.b.x.io", True),
    ("cilium", "**.x.io", "x.io", False),
    ("cilium", "**.x.io", "a.y.io", False),
    ("cilium", "*", "anything.example.com", True),
    # Calico Enterprise: a `*` label is one or more labels
    ("calico", "*.x.io", "a.x.io", True),
    ("calico", "*.x.io", "a.b.x.io", True),
    ("calico", "*.x.io", "x.io", False),
    ("calico", "*.x.io", "a.xx.io", False),
    ("calico", "a.*.io", "a.b.c.io", True),
    ("calico", "a.*.io", "a.io", False),
]


@pytest.mark.parametrize(("api", "pattern", "name", "expected"), MATCHES)
def test_what_a_pattern_matches_in_each_api(api: PolicyAPI, pattern: str, name: str, expected: bool) -> None:
    assert bool(fqdn_pattern(FQDN(pattern, pattern=True), api).fullmatch(name)) is expected


def test_an_exact_name_matches_only_itself() -> None:
    assert fqdn_pattern(FQDN("a.x.io"), "cilium").fullmatch("a.x.io")
    assert not fqdn_pattern(FQDN("a.x.io"), "cilium").fullmatch("b.x.io")


def test_the_first_pattern_given_covers_a_name() -> None:
    patterns = ("*.cdn.x.io", "**.x.io")
    assert covering_pattern("a.cdn.x.io", patterns, "cilium") == "*.cdn.x.io"
    assert covering_pattern("a.b.cdn.x.io", patterns, "cilium") == "**.x.io"
    assert covering_pattern("x.io", patterns, "cilium") is None
    assert covering_pattern("a.b.cdn.x.io", ("*.cdn.x.io",), "calico") == "*.cdn.x.io"
