"""Field checks shared by the manifest converters (NetworkPolicies, workloads): one spelling of each rule.

Every check takes the field path and a `Where` that names the object, so a problem reads
`origin (ident): field.path: problem`, whatever kind of object it is found in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn

from synth.base.errors import PolicyError
from synth.core.model import Protocol

__all__ = [
    "PROTOCOLS",
    "Where",
    "check_keys",
    "check_label_key",
    "check_label_value",
    "describe",
    "is_port_name",
    "list_field",
    "mapping_field",
    "string_map",
]

PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")

_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class Where:
    """Formats `origin (ident): field.path: problem` errors for one object."""

    __slots__ = ("ident", "origin")

    def __init__(self, origin: str, ident: str) -> None:
        self.origin = origin
        self.ident = ident

    def fail(self, path: str, problem: str) -> NoReturn:
        """Raise the `PolicyError` for a problem at `path`."""
        raise PolicyError(f"{self.origin} ({self.ident}): {path}: {problem}")


def describe(value: object) -> str:
    """`int 1`, `str 'x'`: a value's type and text, for messages."""
    return f"{type(value).__name__} {value!r}"


def mapping_field(value: object, path: str, w: Where) -> Mapping[str, Any]:
    """A mapping, `{}` when absent."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        w.fail(path, f"must be a mapping, got {describe(value)}")
    return value


def list_field(value: object, path: str, w: Where) -> list[Any]:
    """A list, `[]` when absent."""
    if value is None:
        return []
    if not isinstance(value, list):
        w.fail(path, f"must be a list, got {describe(value)}")
    return value


def check_keys(value: Mapping[str, Any], allowed: tuple[str, ...], path: str, w: Where) -> None:
    """Refuse unknown fields (a typo would otherwise silently change what the object means)."""
    for key in sorted(map(str, value)):
        if key not in allowed:
            w.fail(f"{path}.{key}", f"unknown field (expected {', '.join(allowed)})")


def string_map(value: object, path: str, w: Where) -> tuple[tuple[str, str], ...]:
    """A mapping of strings (annotations), sorted."""
    items = mapping_field(value, path, w)
    for key, item in items.items():
        if not isinstance(item, str):
            w.fail(f"{path}.{key}", f"value must be a string, got {describe(item)} (quote it)")
    return tuple(sorted((str(k), str(v)) for k, v in items.items()))


def check_label_key(key: object, path: str, w: Where) -> None:
    """A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters."""
    if not isinstance(key, str):
        w.fail(path, f"label key must be a string, got {describe(key)}")
    prefix, slash, name = key.rpartition("/")
    valid = bool(name) and len(name) <= 63 and _LABEL_NAME.fullmatch(name) is not None
    if slash:
        valid = valid and 0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix) is not None
    if not valid:
        w.fail(path, f"{key!r} is not a valid label key")


def check_label_value(value: object, path: str, w: Where) -> None:
    """A label value: a string of at most 63 characters, empty or alphanumeric at both ends."""
    if not isinstance(value, str):
        w.fail(path, f"label value must be a string, got {describe(value)} (quote it)")
    if len(value) > 63 or (value and _LABEL_NAME.fullmatch(value) is None):
        w.fail(path, f"{value!r} is not a valid label value")


def is_port_name(name: str) -> bool:
    """IANA_SVC_NAME: at most 15 of [a-z0-9-], at least one letter, no leading/trailing/double `-`."""
    return (
        len(name) <= 15
        and _PORT_NAME.fullmatch(name) is not None
        and "--" not in name
        and any(c.isalpha() for c in name)
    )
