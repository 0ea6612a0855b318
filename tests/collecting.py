"""Helpers of the live-collection tests: waits with a deadline, and collectors watched while they run.

A test waits for what it needs (flows counted by the collector's progress, a notice, a request at the
fake server) and then stops the collector the way a user would (a `StopRequest`, SIGTERM), so no
test depends on how fast this machine happens to be.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from conftest import ROOT

from synth.collect.loop import CollectReport, Progress
from synth.collect.stop import StopRequest
from synth.store.dataset import Store

_POLL_S = 0.02
_PROGRESS = re.compile(r"\r([\d,]+) flows \(")  # tty_progress: "\r12,345 flows (1,234/s), ..."


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(_POLL_S)


class Collection:
    """`collect_hubble`/`collect_calico` running in a thread, watched through its progress and notices.

    `finish()` stops it with a StopRequest (as SIGTERM stops the CLI) and returns its report; leaving
    the `with` block stops it too, so a failing test leaves no collector behind.
    """

    def __init__(self, collect: Callable[..., CollectReport], store: Path, options: object) -> None:
        self.stop = StopRequest()
        self.flows = 0  # the latest progress count (updated about once a second, and at the end)
        self.said: list[str] = []
        self.report: CollectReport | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(collect, store, options), name="test-collection", daemon=True
        )
        self._thread.start()

    def _run(self, collect: Callable[..., CollectReport], store: Path, options: object) -> None:
        try:
            self.report = collect(
                Store(str(store)), options, progress=self._progress, notify=self.said.append, stop=self.stop
            )
        except BaseException as e:  # noqa: BLE001 - raised in the test's thread by finish()
            self.error = e

    def _progress(self, progress: Progress) -> None:
        self.flows = progress.flows

    def wait_for_flows(self, count: int, seconds: float = 60) -> None:
        """Wait until the collector has taken `count` flows (fails if it ends or the time is up first)."""
        wait_for(lambda: self.flows >= count or not self._thread.is_alive(), seconds, f"{count:,} flows")
        if self.flows < count:
            self._raise()
            raise AssertionError(f"the collection ended with {self.flows:,} of {count:,} flows: {self.report}")

    def wait_for_notice(self, text: str, seconds: float = 30) -> None:
        """Wait until the collector has said something containing `text`."""
        wait_for(lambda: any(text in line for line in self.said), seconds, f"a notice with {text!r}")

    def finish(self, seconds: float = 30) -> CollectReport:
        """Stop the collection and return its report (or raise what it raised)."""
        self.stop.set()
        self._thread.join(seconds)
        assert not self._thread.is_alive(), f"the collection did not stop within {seconds:g}s"
        self._raise()
        assert self.report is not None
        return self.report

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop.set()
        self._thread.join(30)


class CollectorProcess:
    """`python -m synth collect ...` as a process whose stderr is a terminal, so it prints its progress.

    The progress line (rewritten about once a second) tells the test how many flows the process has
    taken; `wait_for_flows` polls it. Leaving the `with` block kills the process if it still runs.
    """

    def __init__(self, *args: str) -> None:
        master, terminal = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synth", "collect", *args],
            stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        os.close(terminal)
        self._master = master
        self._err: list[str] = []
        self._reader = threading.Thread(target=self._read, name="collector-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Keep the terminal drained (a full one would block the process) and keep what it wrote."""
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the process has exited and its end of the terminal is closed
                return
            if not data:
                return
            self._err.append(data.decode(errors="replace"))

    @property
    def err(self) -> str:
        """What the process wrote to stderr so far (progress lines included)."""
        return "".join(self._err)

    @property
    def flows(self) -> int:
        """The flow count of the latest progress line (0 before the first one)."""
        counts = _PROGRESS.findall(self.err)
        return int(counts[-1].replace(",", "")) if counts else 0

    def wait_for_flows(self, count: int, seconds: float = 60) -> None:
        """Wait until the process reports `count` flows taken."""
        wait_for(
            lambda: self.flows >= count or self.process.poll() is not None, seconds, f"{count:,} flows reported"
        )
        exited = self.process.returncode
        assert self.flows >= count, f"the collector exited ({exited}) before {count:,} flows: {self.err}"

    def stop(self, sig: signal.Signals = signal.SIGTERM, seconds: float = 30) -> tuple[int, str, str]:
        """Send `sig`, wait for the exit; (exit code, stdout, stderr)."""
        self.process.send_signal(sig)
        out, _ = self.process.communicate(timeout=seconds)
        self._reader.join(10)
        return self.process.returncode, out, self.err

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        self._reader.join(10)
        os.close(self._master)
