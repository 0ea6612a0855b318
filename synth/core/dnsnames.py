"""DNS names and the wildcard patterns of Cilium `toFQDNs` and Calico Enterprise `domains`.

The two APIs read `*` differently. Cilium `matchPattern`: `*` is any run of characters within one
label (`*.x.io` matches `a.x.io`, not `x.io` nor `a.b.x.io`), `*` alone any name, and a leading
`**.` one or more labels (v1.19). Calico Enterprise: `*` is a whole label standing for one or more
labels (`*.x.io` matches `a.b.x.io`), one `*` per name and never the last label. One regular
expression per (name or pattern, API) serves the policy engine and generation alike; one check per
API tells why a pattern the user gives would be refused.
"""

from __future__ import annotations

import re
from functools import lru_cache

from synth.core.model import FQDN, PolicyAPI

__all__ = ["covering_pattern", "fqdn_pattern", "normal_pattern", "pattern_problem"]

_LABEL_CHARS = "[-a-z0-9_]"
_CILIUM_CHARS = re.compile(r"[-a-zA-Z0-9_.*]+")
_CALICO_LABEL = re.compile(r"[-a-zA-Z0-9_]+|\*")
_CILIUM_LENGTH = 255
_CALICO_LENGTH = 253


@lru_cache(maxsize=4096)
def fqdn_pattern(fqdn: FQDN, api: PolicyAPI) -> re.Pattern[str]:
    """The regular expression of a name or pattern. Cilium: `*` is any run within one label, `*`
    alone any name, a leading `**.` one or more labels; Calico: a `*` label is one or more labels."""
    text = fqdn.text.lower().rstrip(".")
    if not fqdn.pattern:
        return re.compile(re.escape(text))
    if api == "calico":
        any_labels = f"{_LABEL_CHARS}+(?:\\.{_LABEL_CHARS}+)*"
        return re.compile("\\.".join(any_labels if part == "*" else re.escape(part) for part in text.split(".")))
    if text == "*":
        return re.compile(".*")
    prefix = ""
    if text.startswith("**."):
        prefix, text = f"(?:{_LABEL_CHARS}+\\.)+", text[3:]
    return re.compile(prefix + f"{_LABEL_CHARS}*".join(re.escape(part) for part in text.split("*")))


def covering_pattern(name: str, patterns: tuple[str, ...], api: PolicyAPI) -> str | None:
    """The first of `patterns` that matches `name` in the dialect of `api`, or None."""
    return next((p for p in patterns if fqdn_pattern(FQDN(p, pattern=True), api).fullmatch(name)), None)


def normal_pattern(text: str) -> str:
    """A pattern as policies keep names: lower-case, without the trailing dot."""
    return text.lower().removesuffix(".")


def pattern_problem(text: str, api: PolicyAPI) -> str | None:
    """Why `text` is no DNS-name pattern of `api` (Cilium, or Calico Enterprise), or None when it is one."""
    body = normal_pattern(text)
    if "*" not in body:
        return "no `*`: an exact name needs no pattern (names seen are allowed by name already)"
    if api == "calico":
        return _calico_problem(body)
    return _cilium_problem(body)


def _cilium_problem(body: str) -> str | None:
    if len(body) > _CILIUM_LENGTH:
        return f"longer than {_CILIUM_LENGTH} characters"
    if not _CILIUM_CHARS.fullmatch(body):
        return "Cilium takes only letters, digits, -, _, . and *"
    if body == "*":
        return None
    rest = body.removeprefix("**.")
    if "**" in rest:
        return "`**` only as a leading `**.` (several labels); `*` matches within one label"
    if "" in rest.split("."):
        return "an empty label (two dots in a row, or a leading dot)"
    return None


def _calico_problem(body: str) -> str | None:
    if len(body) > _CALICO_LENGTH:
        return f"longer than {_CALICO_LENGTH} characters"
    labels = body.split(".")
    if "" in labels:
        return "an empty label (two dots in a row, or a leading dot)"
    if not all(_CALICO_LABEL.fullmatch(label) for label in labels):
        bad = next(label for label in labels if not _CALICO_LABEL.fullmatch(label))
        if "*" in bad:
            return f"Calico takes `*` only as a whole label, not {bad!r}"
        return "Calico takes only letters, digits, -, _, . and a `*` label"
    if labels.count("*") > 1:
        return "Calico takes one `*` per name"
    if labels[-1] == "*":
        return "Calico takes no `*` as the last label"
    return None
