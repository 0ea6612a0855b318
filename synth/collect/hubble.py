"""Live collection from Hubble into the store (`synth collect hubble`).

The loop itself (reader thread, rolling flushes, the store lock, signals, reconnects) is shared with
the other live sources in `collect.loop`; this module says how to talk to Hubble: the GetFlows
request built from hubble's flag shapes, a resumed stream starting at the newest flow received
(minus `resume_window_s`) with flows received twice dropped, lost events and relay node status
kept as facts. Each stream is received in a child process (`hubble.receiver`) and decoded here,
so that receiving and decoding run on two cores.

Each written file carries the collection facts in its metadata: the server and its status at the
start, the request, and counts *so far* (flows, lost events per node, relay node status events).
The file of a collection (same `collection` id) with the largest `flows` holds the final totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain

import pyarrow as pa

from synth.collect.loop import (
    CollectReport,
    LiveCollector,
    LiveStream,
    Progress,
    check_window,
    summary_lines,
    tty_progress,
)
from synth.collect.stop import StopRequest
from synth.sources.columns import FlowColumns
from synth.sources.hubble.client import FlowRequest, HubbleClient, ServerInfo, build_filters
from synth.sources.hubble.receiver import Endpoint, ReceivedStream
from synth.sources.hubble.stream import FlowDecoder
from synth.sources.interface import SourceStats
from synth.sources.transport import TlsOptions
from synth.store.dataset import Store

__all__ = [
    "CollectOptions",
    "CollectReport",
    "Progress",
    "StopRequest",
    "TlsOptions",
    "collect_hubble",
    "summary_lines",
    "tty_progress",
]


@dataclass(frozen=True, slots=True)
class CollectOptions:
    """What to collect from where, with hubble's flag shapes, and how to write and retry."""

    server: str
    since_ns: int | None = None
    until_ns: int | None = None
    duration_s: float | None = None  # collect live for this long (implies follow)
    follow: bool = False
    namespaces: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    allowlist: tuple[str, ...] = ()  # FlowFilter JSON, as `hubble observe --allowlist`
    denylist: tuple[str, ...] = ()
    tls: TlsOptions = field(default_factory=TlsOptions)
    request_timeout_s: float = 12.0
    flush_interval_s: float = 60.0
    flush_flows: int = 250_000
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    retry_give_up_s: float = 600.0
    resume_window_s: float = 1.0
    compact: bool = True  # False: one row per flow (the store's compaction off), for debugging and tests


def collect_hubble(
    store: Store,
    options: CollectOptions,
    *,
    progress: Callable[[Progress], None] | None = None,
    notify: Callable[[str], None] | None = None,
    stop: StopRequest | None = None,
) -> CollectReport:
    """Collect flows from a Hubble server into the store until the window ends, the duration is up, or a signal.

    `stop` ends the collection from another thread as a signal would.
    """
    request = _request(options)
    with store.writing():
        client = HubbleClient(options.server, options.tls, options.request_timeout_s)
        try:
            info = client.status()
            say = notify or (lambda _text: None)
            say(_describe(options.server, info))
            collector = _HubbleCollector(store, client, request, options, info, progress, say)
            return collector.run(stop)
        finally:
            client.close()


def _request(options: CollectOptions) -> FlowRequest:
    follow = check_window(options, options.since_ns, options.until_ns, options.follow)
    allow, deny = build_filters(options.namespaces, options.verdicts, options.allowlist, options.denylist)
    return FlowRequest(options.since_ns, options.until_ns, follow, allow, deny)


class _HubbleCollector(LiveCollector):
    """The loop over GetFlows streams."""

    thread_name = "hubble-reader"
    # Items are lists of up to `receiver.CHUNK` responses from the receiving process.
    queue_limit = 16
    batch_items = 16

    def __init__(
        self,
        store: Store,
        client: HubbleClient,
        request: FlowRequest,
        options: CollectOptions,
        info: ServerInfo,
        progress: Callable[[Progress], None] | None,
        notify: Callable[[str], None],
    ) -> None:
        self.client, self.request, self.options, self.info = client, request, options, info
        self.decoder = FlowDecoder(int(options.resume_window_s * 1e9))
        super().__init__(store, options, progress, notify)

    @property
    def follow(self) -> bool:
        """Follow mode: a stream that ends is reopened."""
        return self.request.follow

    @property
    def stats(self) -> SourceStats:
        """The decoder's counts."""
        return self.decoder.stats

    @property
    def duplicates(self) -> int:
        """Flows a resumed stream sent again."""
        return self.decoder.duplicates

    def _open_stream(self, resuming: bool) -> LiveStream:
        endpoint = Endpoint(self.options.server, self.options.tls, self.options.request_timeout_s)
        return ReceivedStream(endpoint, self.request, self.decoder.recent.resume_since() if resuming else None)

    def _decode(self, cols: FlowColumns, items: list[object]) -> None:
        self.decoder.take(cols, list(chain.from_iterable(items)))  # type: ignore[arg-type]  # lists of responses

    def _finish(self, cols: FlowColumns) -> pa.RecordBatch:
        return self.decoder.finish(cols)

    def _facts(self) -> dict[str, object]:
        stats, nodes, options = self.decoder.stats, self.decoder.nodes, self.options
        return {
            "source": "hubble",
            "collection": self.collection,
            "server": options.server,
            "started_at": self.started_at,
            "server_status": self.info.as_facts(),
            "request": {
                "since_ns": options.since_ns,
                "until_ns": options.until_ns,
                "follow": self.request.follow,
                "duration_s": options.duration_s,
                "namespaces": list(options.namespaces),
                "verdicts": list(options.verdicts),
                "allowlist": list(options.allowlist),
                "denylist": list(options.denylist),
            },
            "flows": stats.flows,
            "records": stats.records,
            "duplicates": self.decoder.duplicates,
            "skipped": stats.skipped,
            "reconnects": self.reconnects,
            "lost_events": stats.lost_events,
            "lost_by_node": dict(sorted(stats.lost_by_node.items())),
            "node_states": dict(sorted(nodes.by_state.items())),
            "unavailable_nodes": sorted(nodes.unavailable),
            "node_status": list(nodes.latest),
            "first_ns": stats.first_time_ns,
            "last_ns": stats.last_time_ns,
        }

    def _report(self, stopped: str) -> CollectReport:
        stats, nodes = self.decoder.stats, self.decoder.nodes
        return CollectReport(
            server=self.options.server,
            server_info=self.info,
            stopped=stopped,
            flows=stats.flows,
            records=stats.records,
            duplicates=self.decoder.duplicates,
            skipped=stats.skipped,
            lost_events=stats.lost_events,
            lost_by_node=tuple(sorted(stats.lost_by_node.items())),
            node_states=tuple(sorted(nodes.by_state.items())),
            unavailable_nodes=tuple(sorted(nodes.unavailable)),
            reconnects=self.reconnects,
            files=len(self.writer.files_written),
            first_ns=stats.first_time_ns,
            last_ns=stats.last_time_ns,
        )


def _describe(server: str, info: ServerInfo) -> str:
    nodes = ""
    if info.connected_nodes is not None:
        nodes = f"; {info.connected_nodes} nodes connected"
        if info.unavailable_nodes:
            names = ", ".join(info.unavailable_node_names) or "names not reported"
            nodes += f", {info.unavailable_nodes} unavailable ({names})"
    return (
        f"{server}: Hubble {info.version or '(version not reported)'}, {info.num_flows:,} of {info.max_flows:,} "
        f"flows buffered, {info.flows_rate:.1f} flows/s{nodes}"
    )
