"""The live-collection loop every `synth collect <source>` shares: stream, convert, flush, survive faults.

A reader thread pulls a source's stream items into a queue; the calling thread converts them into
`FlowColumns` and writes through `Store.writer()`. Every `flush_interval_s` seconds or `flush_flows`
flows the buffered rows are written and renamed into place, so `synth edges` sees them while the
collection runs and `kill -9` loses at most the rows since the last flush (a file is only visible
once complete). A stream that breaks off (`StreamBroken`) is reopened with exponential backoff from
where it stopped, as the source decides; SIGINT/SIGTERM (or, from another thread, a `StopRequest`)
flush what is buffered and end the collection normally.

One writer per store: a collection holds the store's writer lock (`synth.store.lock`), so a second
collector, an import or a compaction of the same store is refused while it runs.

A source plugs in by subclassing `LiveCollector` (how to open a stream, how to decode its items,
its facts and report); `collect.py` (Hubble) and `collect_calico.py` (Goldmane) do.
"""

from __future__ import annotations

import contextlib
import math
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import IO, Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from synth.base.errors import CollectError, UsageError
from synth.base.text import plural
from synth.base.timeutil import format_ns
from synth.collect.stop import StopRequest
from synth.sources.columns import FlowColumns
from synth.sources.hubble.client import ServerInfo
from synth.sources.interface import SourceStats
from synth.sources.transport import StreamBroken
from synth.store.dataset import Store
from synth.store.faults import write_failure
from synth.store.writer import PartitionWriter

_BATCH_ROWS = 16_384  # rows converted to Arrow at a time (Python lists cost about 1 KB per row)
_QUEUE_LIMIT = 16_384  # stream items waiting for the collector thread (about 1 KB each)
_TICK_S = 1.0


class LoopSettings(Protocol):
    """The options the loop reads (each source's options dataclass has them)."""

    @property
    def server(self) -> str: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def flush_interval_s(self) -> float: ...
    @property
    def flush_flows(self) -> int: ...
    @property
    def retry_initial_s(self) -> float: ...
    @property
    def retry_max_s(self) -> float: ...
    @property
    def retry_give_up_s(self) -> float: ...
    @property
    def compact(self) -> bool: ...


def check_window(settings: LoopSettings, since_ns: int | None, until_ns: int | None, follow: bool) -> bool:
    """Refuse windows that cannot be collected; True when the collection follows live flows."""
    live = follow or settings.duration_s is not None
    if until_ns is not None and live:
        raise UsageError("--until ends a recorded window; bound a live collection (--follow) with --duration instead")
    if settings.flush_interval_s <= 0 or settings.flush_flows <= 0:
        raise UsageError("--flush-interval and --flush-flows must be positive")
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise UsageError("--until must be later than --since")
    return live


class LiveStream(Protocol):
    """One open server stream: iterate its items (StreamBroken when it breaks off), or cancel it."""

    cancelled: bool

    def __iter__(self) -> Iterator[object]: ...
    def cancel(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress update (about once a second)."""

    flows: int
    flows_per_s: float
    lost_events: int
    last_flow_ns: int | None
    remaining_s: float | None
    final: bool = False  # the last update: the line can be ended


@dataclass(frozen=True, slots=True)
class CollectReport:
    """What a collection did, for the summary."""

    server: str
    server_info: ServerInfo | None  # Hubble's ServerStatus; None for sources without one
    stopped: str
    flows: int
    records: int
    duplicates: int
    skipped: int
    lost_events: int
    lost_by_node: tuple[tuple[str, int], ...]
    node_states: tuple[tuple[str, int], ...]
    unavailable_nodes: tuple[str, ...]
    reconnects: int
    files: int
    first_ns: int | None
    last_ns: int | None


class _End:
    """Queued by the reader thread when its stream ends; `error` is None for a normal end."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


_WAKE = _End(None)  # queued by the signal handler so the main loop notices at once


def _pump(stream: LiveStream, items: queue.SimpleQueue[object], limit: int) -> None:
    """Reader thread: move items into the queue, then an _End (holding back when `limit` items wait)."""
    try:
        for item in stream:
            items.put(item)
            if items.qsize() > limit:
                while items.qsize() > limit // 2 and not stream.cancelled:
                    time.sleep(0.002)
        items.put(_End(None))
    except Exception as e:  # noqa: BLE001 - handed to the main thread, which decides
        items.put(_End(e))


class LiveCollector:
    """The collection loop and its state (one instance per collection); subclasses supply the source.

    A subclass sets up its decoder before calling `__init__` (which asks `_facts()` for the writer)
    and implements the hooks below the `hooks` line.
    """

    thread_name = "live-reader"
    queue_limit = _QUEUE_LIMIT  # stream items waiting for the collector thread
    batch_items = 4096  # stream items converted in one go (at most)

    def __init__(
        self,
        store: Store,
        settings: LoopSettings,
        progress: Callable[[Progress], None] | None,
        notify: Callable[[str], None],
    ) -> None:
        self.store, self.settings, self.progress, self.notify = store, settings, progress, notify
        self.cols = FlowColumns()
        self.items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.stream: LiveStream | None = None
        self.reader: threading.Thread | None = None
        self.stopping = False
        self.reconnects = 0
        self.broken_since: float | None = None
        self.retry_delay = settings.retry_initial_s
        self.collection = uuid.uuid4().hex[:16]
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.writer: PartitionWriter = store.writer(self._facts())
        if not settings.compact:
            self.writer.compact_interval_ns = 0
        self.flushed_flows = 0
        self.write_failed = False  # a flush could not write: nothing more is tried

    # ----- hooks
    @property
    def follow(self) -> bool:
        """Whether a stream that ends is reopened (live) rather than the end of the collection."""
        raise NotImplementedError

    @property
    def stats(self) -> SourceStats:
        """The decoder's running counts."""
        raise NotImplementedError

    @property
    def duplicates(self) -> int:
        """Items received twice (after a resume) and dropped."""
        raise NotImplementedError

    def _open_stream(self, resuming: bool) -> LiveStream:
        """Open a stream: the first one, or (resuming) one that continues where the last stopped."""
        raise NotImplementedError

    def _decode(self, cols: FlowColumns, items: list[object]) -> None:
        """Append the items' flows to `cols`."""
        raise NotImplementedError

    def _finish(self, cols: FlowColumns) -> pa.RecordBatch:
        """The appended rows as a FLOW_SCHEMA batch (the decoder counts them)."""
        raise NotImplementedError

    def _facts(self) -> dict[str, object]:
        """The collection facts stored with every file."""
        raise NotImplementedError

    def _report(self, stopped: str) -> CollectReport:
        """The summary of the collection."""
        raise NotImplementedError

    def common_facts(self) -> dict[str, object]:
        """Counters every source reports in its facts."""
        stats = self.stats
        return {
            "flows": stats.flows,
            "records": stats.records,
            "duplicates": self.duplicates,
            "skipped": stats.skipped,
            "reconnects": self.reconnects,
        }

    # ----- the loop
    def run(self, stop: StopRequest | None = None) -> CollectReport:
        """Collect until the stream ends (a window), the duration is up, a signal or `stop`; flush; report."""
        remove_stale_temporaries(self.store)
        start = time.monotonic()
        deadline = start + self.settings.duration_s if self.settings.duration_s is not None else math.inf
        previous = self._install_signals()
        if stop is not None:
            stop.attach(self.interrupt)
        try:
            self._open(resuming=False)
            stopped = self._loop(deadline)
        finally:
            if stop is not None:
                stop.attach(None)
            self._close_stream()
            if not self.write_failed:
                self._drain()
                self._flush()
            _restore_signals(previous)
            if self.progress is not None:
                self._tick(_TICK_S, deadline - time.monotonic(), 0, final=True)
        return self._report(stopped)

    def _loop(self, deadline: float) -> str:
        settings, items = self.settings, self.items
        next_flush = time.monotonic() + settings.flush_interval_s
        next_tick = time.monotonic() + _TICK_S
        last_tick_flows = 0
        while True:
            now = time.monotonic()
            if self.stopping:
                return "interrupted"
            if now >= deadline:
                return "duration reached"
            if now >= next_flush or self._pending() >= settings.flush_flows:
                self._flush()
                next_flush = now + settings.flush_interval_s
            if now >= next_tick:
                last_tick_flows = self._tick(now - next_tick + _TICK_S, deadline - now, last_tick_flows)
                next_tick = now + _TICK_S
            try:
                item = items.get(timeout=max(0.0, min(next_flush, next_tick, deadline) - now))
            except queue.Empty:
                continue
            if isinstance(item, _End):
                if item is not _WAKE and self._ended(item):
                    return "stream ended"
                continue
            self._take(self._with_queued(item, settings.flush_flows))

    def _with_queued(self, first: object, limit: int) -> list[object]:
        """`first` and what else is already queued (up to a bound), to convert in one go."""
        batch, items = [first], self.items
        for _ in range(min(limit, self.batch_items)):
            try:
                item = items.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _End):
                items.put(item)  # the loop handles it after this batch
                break
            batch.append(item)
        return batch

    def _take(self, items: list[object]) -> None:
        if self.broken_since is not None:
            self.notify(f"{self.settings.server}: stream resumed")
            self.broken_since = None
            self.retry_delay = self.settings.retry_initial_s
        cols = self.cols
        self._decode(cols, items)
        if len(cols) >= _BATCH_ROWS:
            self.writer.write(self._finish(cols))
            self.cols = FlowColumns()

    def _pending_after(self, handled: int) -> int:
        return self.stats.flows + len(self.cols) - handled

    def _pending(self) -> int:
        return self.stats.flows + len(self.cols) - self.flushed_flows

    # ----- streams and faults
    def _open(self, *, resuming: bool) -> None:
        self.stream = self._open_stream(resuming)
        self.reader = threading.Thread(
            target=_pump, args=(self.stream, self.items, self.queue_limit), name=self.thread_name, daemon=True
        )
        self.reader.start()

    def _ended(self, end: _End) -> bool:
        """Handle the end of a stream: True when the collection is complete, else reopen it."""
        if self.reader is not None:
            self.reader.join()
        if end.error is None and not self.follow:
            return True
        if end.error is not None and not isinstance(end.error, StreamBroken):
            raise end.error
        reason = str(end.error) if end.error is not None else "the server ended the stream"
        now = time.monotonic()
        if self.broken_since is None:
            self.broken_since = now
        elif now - self.broken_since > self.settings.retry_give_up_s:
            raise CollectError(
                f"{self.settings.server}: no flows for {now - self.broken_since:.0f}s after the stream broke off "
                f"({reason}); stopped (flows received so far are stored)"
            )
        self.reconnects += 1
        self.notify(f"{self.settings.server}: stream lost ({reason}); reconnecting in {self.retry_delay:.1f}s")
        with contextlib.suppress(queue.Empty):
            woken = self.items.get(timeout=self.retry_delay)  # the signal handler's _WAKE ends the wait
            if woken is not _WAKE:
                self.items.put(woken)
        self.retry_delay = min(self.retry_delay * 2, self.settings.retry_max_s)
        if not self.stopping:
            self._open(resuming=True)
        return False

    def _close_stream(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
        if self.reader is not None:
            self.reader.join(timeout=5)

    def _drain(self) -> None:
        """Convert what the reader queued before the stream was cancelled."""
        queued = []
        while True:
            try:
                item = self.items.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _End):
                queued.append(item)
        if queued:
            self._take(queued)

    # ----- writing
    def _flush(self) -> None:
        try:
            if len(self.cols):
                self.writer.write(self._finish(self.cols))
                self.cols = FlowColumns()
            self.writer.set_facts(self._facts())
            self.writer.flush()
        except OSError as e:
            # Stop rather than wait for space: the rows would pile up in memory (and the server's ring
            # buffer overruns meanwhile); an exit is seen by whoever runs the collector (a Job restarts it).
            self.write_failed = True
            stored = self.writer.flows_written + self.writer.duplicates
            raise write_failure(
                self.store.root_text, e,
                f"collection stopped: the {plural(self.writer.flows_written, 'flow')} of earlier flushes are stored, "
                f"the {self._pending_after(stored):,} received since were not",
            ) from e
        stored = self.stats.flows - self.flushed_flows
        self.flushed_flows = self.stats.flows
        if self.progress is None and stored:  # no terminal (a pod's log): one line per flush to watch
            self.notify(
                f"{self.settings.server}: stored {plural(stored, 'flow')} ({self.stats.flows:,} in total), "
                f"last flow {format_ns(self.stats.last_time_ns)}"
            )

    # ----- signals, stop requests, progress
    def interrupt(self) -> None:
        """End the collection as SIGINT/SIGTERM do (safe from a signal handler and from other threads)."""
        self.stopping = True
        self.items.put(_WAKE)  # SimpleQueue.put is safe in a signal handler; the loop notices at once

    def _install_signals(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(_signum: int, _frame: FrameType | None) -> None:
            self.interrupt()

        return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _tick(self, elapsed: float, remaining: float, last_flows: int, *, final: bool = False) -> int:
        flows = self.stats.flows + len(self.cols)
        if self.progress is not None:
            stats = self.stats
            last = self.cols.time[-1] if len(self.cols) else stats.last_time_ns
            self.progress(
                Progress(
                    flows=flows,
                    flows_per_s=(flows - last_flows) / max(elapsed, 1e-3),
                    lost_events=stats.lost_events,
                    last_flow_ns=last,
                    remaining_s=None if math.isinf(remaining) else max(remaining, 0.0),
                    final=final,
                )
            )
        return flows


def _restore_signals(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def remove_stale_temporaries(store: Store) -> None:
    """Drop half-written files a killed writer left behind (never visible to readers; the lock is ours)."""
    if not store.exists():
        return
    store.recover()  # a compaction to finish; on an object store, the files no commit record names
    for folder in (store.flows_dir, store.ids_dir):  # flows and their identities are written side by side
        selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        for info in store.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                store.fs.delete_file(info.path)


def summary_lines(report: CollectReport) -> list[str]:
    """The human summary of a collection: what was stored, and the gaps a reviewer must know about."""
    lines = [
        f"{report.server}: {plural(report.flows, 'flow')} stored in {plural(report.files, 'file')}, "
        f"{format_ns(report.first_ns)} .. "
        f"{format_ns(report.last_ns)} ({report.stopped}"
        + (f"; {report.reconnects} reconnects, {report.duplicates:,} resent flows dropped" if report.reconnects else "")
        + (f"; {report.skipped:,} records skipped" if report.skipped else "")
        + ")"
    ]
    for node, lost in report.lost_by_node:
        lines.append(
            f"warning: {lost:,} events lost on node {node or '(unnamed)'}: policies built from this recording "
            "may miss edges"
        )
    if report.unavailable_nodes:
        lines.append(
            f"warning: nodes unavailable during the collection: {', '.join(report.unavailable_nodes)}; their "
            "flows are missing"
        )
    return lines


def tty_progress(stream: IO[str] | None = None) -> Callable[[Progress], None] | None:
    """A progress printer that rewrites one line, or None when `stream` (stderr) is not a terminal."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        return None

    def show(p: Progress) -> None:
        remaining = f", {p.remaining_s:.0f}s left" if p.remaining_s is not None else ""
        out.write(
            f"\r{p.flows:,} flows ({p.flows_per_s:,.0f}/s), {p.lost_events:,} lost, last flow "
            f"{format_ns(p.last_flow_ns)}{remaining}\x1b[K" + ("\n" if p.final else "")
        )
        out.flush()

    return show
