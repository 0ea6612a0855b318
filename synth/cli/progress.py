"""A one-line progress display on a terminal; silent when stderr is not a TTY (pipes, CI, tests)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from synth.base.timeutil import format_ns


class Progress:
    """Rewrites one stderr line at most a few times a second: files, flows, rate, ETA."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None, interval: float = 0.25) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.started = time.monotonic()
        self._last = 0.0
        self._width = 0

    def update(self, *, flows: int = 0, files: tuple[int, int] | None = None, done_bytes: int = 0,
               total_bytes: int = 0, last_ns: int | None = None, label: str = "") -> None:
        """Show the current state (throttled)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-6)
        parts = [label] if label else []
        if files is not None:
            parts.append(f"file {files[0]}/{files[1]}")
        if flows:
            parts.append(f"{flows:,} flows, {flows / elapsed:,.0f}/s")
        if last_ns is not None:
            parts.append(f"at {format_ns(last_ns)}")
        if total_bytes and done_bytes:
            remaining = elapsed * (total_bytes - done_bytes) / done_bytes
            parts.append(f"ETA {remaining:,.0f}s")
        self._write(" · ".join(parts))

    def _write(self, text: str) -> None:
        padding = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * padding)
        self.stream.flush()
        self._width = len(text)

    def done(self) -> None:
        """Clear the line."""
        if self.enabled and self._width:
            self._write("")
            self.stream.write("\r")
            self.stream.flush()
