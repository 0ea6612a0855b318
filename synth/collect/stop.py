"""Stopping a live collection from another thread (`StopRequest`)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class StopRequest:
    """Ends a running collection from another thread as SIGINT/SIGTERM do: flushed, reported as `interrupted`.

    Signals reach only a collection in the main thread; a program (or a test) that runs one in a
    thread passes a StopRequest to `collect_hubble`/`collect_calico` and calls `set()`. Set before
    the collection starts, it ends the collection as soon as it has begun.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._wake: Callable[[], None] | None = None

    def set(self) -> None:
        """Ask the collection to stop (thread-safe; more calls change nothing)."""
        with self._lock:
            self._set = True
            wake = self._wake
        if wake is not None:
            wake()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def attach(self, wake: Callable[[], None] | None) -> None:
        """Call `wake` when the stop is asked for (at once if it was already); None detaches."""
        with self._lock:
            self._wake = wake
            now = self._set
        if now and wake is not None:
            wake()
