"""HTTP requests seen to Cilium HTTP rules: paths generalised only where they carry identifiers.

A rule's `path` is a regular expression the request's path (with its query) must match in full.
Each path seen becomes its literal text, except:

- a path segment that is an identifier (a number, a UUID, a hexadecimal or mixed token of 8 or more
  characters with a digit, a dotted or dashed run of digits such as a date or a version) becomes
  `[^/?]+`: one segment, any value;
- the value of each query parameter becomes `[^&]*` (the parameters, their names and order stay).

So `/carts/42?expand=items` and `/carts/7?expand=all` are both `/carts/[^/?]+\\?expand=[^&]*`. Nothing
else is widened: a peer and port with more distinct (method, path) pairs than the limit keeps a
plain L4 rule, and the report says so. The same expressions judge requests in verify (`matches`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from synth.core.model import HTTPRule

ANY_SEGMENT = "[^/?]+"
ANY_VALUE = "[^&]*"
MAX_L7_PORTS = 40
"""Ports with L7 rules per endpoint the Cilium agent accepts."""

_META = re.compile(r"([.\[\]{}()\\*+?^$|])")
_ESCAPED = re.compile(r"\\[^A-Za-z0-9]")
_IDENTIFIERS = (
    re.compile(r"\d+"),
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    re.compile(r"(?=[^/]*\d)[0-9a-fA-F]{8,}"),
    re.compile(r"(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_-]{16,}"),
    re.compile(r"\d+(?:[.:_-]\d+)+"),
)


@dataclass(frozen=True, slots=True)
class HTTPEvidence:
    """One HTTP rule entry and what it stands for: requests, and the distinct paths seen."""

    rule: HTTPRule
    requests: int
    paths: tuple[str, ...]

    @property
    def generalised(self) -> bool:
        """Whether the entry matches more than the literal paths seen."""
        return self.rule.path != literal(self.paths[0]) if len(self.paths) == 1 else True

    def line(self, limit: int = 3) -> str:
        """`GET /carts/[^/?]+: 120 requests (paths seen: /carts/42, /carts/7, ... 15 in all)`."""
        text = f"{self.rule.method} {self.rule.path}: {self.requests:,} request{'s' if self.requests != 1 else ''}"
        if not self.generalised:
            return text
        shown = ", ".join(self.paths[:limit])
        more = f", ... {len(self.paths)} in all" if len(self.paths) > limit else ""
        return f"{text} (paths seen: {shown}{more})"


def literal(text: str) -> str:
    """A regular expression that matches exactly `text`."""
    return _META.sub(r"\\\1", text)


def is_identifier(segment: str) -> bool:
    """Whether a path segment names one object (an id, a key, a date), not a route."""
    return any(pattern.fullmatch(segment) for pattern in _IDENTIFIERS)


@lru_cache(maxsize=65536)
def generalise(path: str) -> str:
    """The rule path for a request path seen: identifiers as `[^/?]+`, query values as `[^&]*`."""
    route, mark, query = path.partition("?")
    parts = [ANY_SEGMENT if segment and is_identifier(segment) else literal(segment) for segment in route.split("/")]
    result = "/".join(parts)
    if mark:
        params = []
        for param in query.split("&"):
            name, equals, _value = param.partition("=")
            params.append(literal(name) + ("=" + ANY_VALUE if equals else ""))
        result += literal("?") + "&".join(params)
    return result


def http_rules(requests: Iterable[tuple[str, str, int]], max_paths: int) -> tuple[HTTPEvidence, ...] | None:
    """The HTTP rule entries for one peer and port from its requests (method, path, count), sorted;
    None when they would need more than `max_paths` entries."""
    grouped: dict[HTTPRule, tuple[int, set[str]]] = {}
    for method, path, count in requests:
        rule = HTTPRule(literal(method), generalise(path))
        total, paths = grouped.get(rule, (0, set()))
        paths.add(path)
        grouped[rule] = (total + count, paths)
    if not grouped or len(grouped) > max_paths:
        return None
    return tuple(
        HTTPEvidence(rule, total, tuple(sorted(paths)))
        for rule, (total, paths) in sorted(grouped.items(), key=lambda item: (item[0].path, item[0].method))
    )


def is_literal(expression: str) -> bool:
    """Whether a non-empty regular expression matches one text only (every special character escaped)."""
    return bool(expression) and _META.search(_ESCAPED.sub("", expression)) is None


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> re.Pattern[str] | None:
    try:
        return re.compile(expression)
    except re.error:
        return None


def matches(rule: HTTPRule, method: str, path: str) -> bool:
    """Whether a request matches an HTTP rule entry (each expression in full; empty matches all). An
    expression Python cannot read matches nothing."""
    for expression, value in ((rule.method, method), (rule.path, path)):
        if not expression:
            continue
        pattern = _compiled(expression)
        if pattern is None or pattern.fullmatch(value) is None:
            return False
    return True
