"""Parse the time and duration arguments users type: `48h`, `2026-11-21T13:00:00Z`, `2026-11-21`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from synth.base.errors import UsageError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
NS = 1_000_000_000


def parse_duration(text: str) -> int:
    """`48h`, `90m`, `2d`, `1h30m`, `45s` to seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"{text!r} is not a duration (examples: 48h, 90m, 2d, 1h30m)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_time(text: str, now: datetime | None = None) -> int:
    """An absolute time (RFC 3339, or a date) or a duration ago, to nanoseconds since the epoch."""
    value = text.strip()
    if _DURATION.match(value) and any(_DURATION.match(value).groups()):  # type: ignore[union-attr]
        reference = now or datetime.now(UTC)
        return int(reference.timestamp()) * NS - parse_duration(value) * NS
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time (examples: 2026-11-21T13:00:00Z, 2026-11-21, 48h for 48 hours ago)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def format_ns(value: int | None) -> str:
    """Nanoseconds since the epoch as `2026-11-21T13:00:00Z` (or `-`)."""
    if value is None:
        return "-"
    return datetime.fromtimestamp(value / NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
