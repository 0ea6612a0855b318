"""Untrusted text (labels, names, reasons that come from flows and policies) made safe to print."""

from __future__ import annotations


def ascii_text(text: str, *, keep_newlines: bool = False) -> str:
    """Printable ASCII as is, every other character as a `\\uXXXX` escape (newlines kept on request).

    A terminal control sequence or a right-to-left mark in a pod label then shows as what it is.
    """
    return "".join(
        c if 0x20 <= ord(c) < 0x7F or (keep_newlines and c == "\n") else f"\\u{ord(c):04x}" for c in text
    )


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 flow`, `2 flows`, `1,024 edges`: the count with the word in the number it needs."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
