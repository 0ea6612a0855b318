"""Live collection from Calico OSS Goldmane into the store (`synth collect calico`).

The loop (reader thread, rolling flushes, the store lock, signals, reconnects with backoff) is the
one `synth collect hubble` uses (`collect.loop`). Goldmane's side (`sources.calico.stream`): the
backlog is listed bucket by bucket from `--since` (default: the oldest bucket Goldmane holds, about
an hour back) to `--until` (default: now); with `--follow`/`--duration` the listing stops two
intervals before now and `Stream` takes over from the newest stored start time. A broken List or
Stream is reopened from there; flows sent twice are dropped by (start_time, end_time, FlowKey).

Each written file carries the collection facts: the server, what the first List said, the request
and counts so far (the file with the largest `flows` of a `collection` holds the final totals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from synth.base.errors import UsageError
from synth.base.timeutil import format_ns
from synth.collect.loop import CollectReport, LiveCollector, LiveStream, Progress, check_window
from synth.collect.stop import StopRequest
from synth.sources.calico.stream import (
    INTERVAL_S,
    BacklogView,
    CalicoRequest,
    GoldmaneClient,
    GoldmaneDecoder,
    GoldmaneFeed,
    tls_options,
)
from synth.sources.columns import FlowColumns
from synth.sources.interface import SourceStats
from synth.sources.transport import TlsOptions
from synth.store.dataset import Store

__all__ = ["CalicoOptions", "StopRequest", "collect_calico", "tls_options"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class CalicoOptions:
    """What to collect from which Goldmane, and how to write and retry (the loop's settings as Hubble's)."""

    server: str
    since_ns: int | None = None
    until_ns: int | None = None
    duration_s: float | None = None  # collect live for this long (implies follow)
    follow: bool = False
    namespaces: tuple[str, ...] = ()
    tls: TlsOptions = field(default_factory=lambda: TlsOptions(enabled=True))
    request_timeout_s: float = 12.0
    page_size: int = 1000
    flush_interval_s: float = 60.0
    flush_flows: int = 250_000
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    retry_give_up_s: float = 600.0
    compact: bool = True  # False: one row per flow, for debugging and tests


def collect_calico(
    store: Store,
    options: CalicoOptions,
    *,
    progress: Callable[[Progress], None] | None = None,
    notify: Callable[[str], None] | None = None,
    stop: StopRequest | None = None,
) -> CollectReport:
    """Collect Goldmane flows into the store until the window is listed, the duration is up, or a signal.

    `stop` ends the collection from another thread as a signal would.
    """
    request = _request(options)
    with store.writing():
        client = GoldmaneClient(options.server, options.tls, options.request_timeout_s)
        try:
            feed = GoldmaneFeed(client, request, GoldmaneDecoder(options.namespaces))
            view = feed.probe()
            say = notify or (lambda _text: None)
            say(_describe(options.server, view, feed))
            return _CalicoCollector(store, feed, options, view, progress, say).run(stop)
        finally:
            client.close()


def _request(options: CalicoOptions) -> CalicoRequest:
    follow = check_window(options, options.since_ns, options.until_ns, options.follow)
    if options.page_size <= 0:
        raise UsageError("--page-size must be positive")
    # Goldmane counts in whole seconds: --since rounds down, --until up (flows start on whole seconds).
    since_s = None if options.since_ns is None else max(options.since_ns // _NS_PER_S, 1)
    until_s = None if options.until_ns is None else -(-options.until_ns // _NS_PER_S)
    return CalicoRequest(since_s, until_s, follow, options.namespaces, options.page_size)


class _CalicoCollector(LiveCollector):
    """The loop over Goldmane's backlog and Stream."""

    thread_name = "goldmane-reader"

    def __init__(
        self,
        store: Store,
        feed: GoldmaneFeed,
        options: CalicoOptions,
        view: BacklogView,
        progress: Callable[[Progress], None] | None,
        notify: Callable[[str], None],
    ) -> None:
        self.feed, self.options, self.view = feed, options, view
        self.decoder = feed.decoder
        super().__init__(store, options, progress, notify)

    @property
    def follow(self) -> bool:
        """Following: the Stream is reopened when it ends."""
        return self.feed.request.follow

    @property
    def stats(self) -> SourceStats:
        """The decoder's counts."""
        return self.decoder.stats

    @property
    def duplicates(self) -> int:
        """Flows a resumed List or Stream sent again."""
        return self.decoder.duplicates

    def _open_stream(self, resuming: bool) -> LiveStream:
        return self.feed.open()

    def _decode(self, cols: FlowColumns, items: list[object]) -> None:
        self.decoder.take(cols, items)

    def _finish(self, cols: FlowColumns) -> pa.RecordBatch:
        return self.decoder.finish(cols)

    def _facts(self) -> dict[str, object]:
        options, request, stats, feed = self.options, self.feed.request, self.decoder.stats, self.feed
        return {
            "source": "calico",
            "format": "goldmane-grpc",
            "collection": self.collection,
            "server": options.server,
            "started_at": self.started_at,
            "server_status": self.view.as_facts(),
            "request": {
                "since_s": request.since_s,
                "until_s": request.until_s,
                "follow": request.follow,
                "duration_s": options.duration_s,
                "namespaces": list(request.namespaces),
                "list_until_s": feed.end_s,
            },
            **self.common_facts(),
            "outside_namespaces": self.decoder.filtered,
            "list_calls": feed.client.list_calls,
            "buckets_listed": feed.buckets_listed,
            "first_ns": stats.first_time_ns,
            "last_ns": stats.last_time_ns,
        }

    def _report(self, stopped: str) -> CollectReport:
        stats = self.decoder.stats
        return CollectReport(
            server=self.options.server,
            server_info=None,
            stopped=stopped,
            flows=stats.flows,
            records=stats.records,
            duplicates=self.decoder.duplicates,
            skipped=stats.skipped,
            lost_events=0,
            lost_by_node=(),
            node_states=(),
            unavailable_nodes=(),
            reconnects=self.reconnects,
            files=len(self.writer.files_written),
            first_ns=stats.first_time_ns,
            last_ns=stats.last_time_ns,
        )


def _describe(server: str, view: BacklogView, feed: GoldmaneFeed) -> str:
    held = (
        f"{view.keys:,} flow keys from {format_ns(view.oldest_s * _NS_PER_S)} on"
        if view.oldest_s is not None
        else "no flows in the window"
    )
    live = "; then following its Stream" if feed.request.follow else ""
    return f"{server}: Goldmane holds {held}, listing them in {INTERVAL_S}-second buckets{live}"
