"""Live flows from Calico OSS Goldmane's `goldmane.Flows` gRPC API (List, then Stream). Imports grpc.

Goldmane keeps about an hour of flows in 15-second buckets, aggregated across nodes. Its `List`
answers one flow per FlowKey aggregated over the *whole* requested window (newest first, pages
counted from 0) and ignores `aggregation_interval`; `Stream` sends one flow per key and completed
15-second interval. So the backlog is listed one bucket at a time: a first List of the whole window
finds the oldest bucket held (and proves the server answers), then each bucket `[b, b+15)` is paged
through. Every stored row is then one key in one bucket, exactly what `Stream` sends for the same
interval and what the file importer makes of a 15-second emitter line, and flows a resumed List or
Stream sends again are recognised by (start_time, end_time, FlowKey): Goldmane's `id` is 1:1 with
the key but changes when Goldmane restarts.

Each `FlowResult.flow` is converted into the Go `encoding/json` shape of the emitter's NDJSON and
appended by the file importer's own `append_goldmane`, so live and file rows are identical.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc
import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from synth._proto.goldmane import api_pb2
from synth.base.errors import CollectError, UsageError
from synth.sources.calico.goldmane import append_goldmane
from synth.sources.calico.records import BadField
from synth.sources.columns import FlowColumns
from synth.sources.interface import SourceStats
from synth.sources.transport import UNREACHABLE, TlsOptions, open_channel, raise_stream_error, status, tls_failure

INTERVAL_S = 15  # Goldmane's bucket width; Stream accepts nothing else
_COMPLETE_AFTER_S = 2 * INTERVAL_S  # Goldmane streams [now-2*15s, now-15s]: older buckets are complete
_FUTURE_SLACK_S = 60  # list buckets up to this far past the local clock (clock skew to the server)


@dataclass(frozen=True, slots=True)
class CalicoRequest:
    """What to collect: a window (Unix seconds; None = the oldest held / now), follow, namespaces."""

    since_s: int | None = None
    until_s: int | None = None
    follow: bool = False
    namespaces: tuple[str, ...] = ()  # flows from or to these namespaces (filtered here: Goldmane ANDs fields)
    page_size: int = 1000


@dataclass(frozen=True, slots=True)
class BacklogView:
    """What the first List of the window said."""

    keys: int  # flow keys with data in the window (Goldmane's totalResults)
    oldest_s: int | None  # start of the oldest bucket with flows, None when there are none

    def as_facts(self) -> dict[str, object]:
        """JSON-able collection facts."""
        return {"keys": self.keys, "oldest_s": self.oldest_s}


class GoldmaneClient:
    """One channel to Goldmane (mTLS unless `tls.enabled` is off): List pages and Stream calls."""

    def __init__(self, server: str, tls: TlsOptions, request_timeout_s: float) -> None:
        self.server = server
        self.request_timeout_s = request_timeout_s
        self.tls = tls.enabled
        self.channel = open_channel(server, tls, [("grpc.max_receive_message_length", 64 << 20)])
        self._list = self.channel.unary_unary(
            "/goldmane.Flows/List",
            request_serializer=api_pb2.FlowListRequest.SerializeToString,
            response_deserializer=api_pb2.FlowListResult.FromString,
        )
        # Stream results stay bytes until the collector's thread decodes them (a bad one is a skip there).
        self._stream = self.channel.unary_stream(
            "/goldmane.Flows/Stream",
            request_serializer=api_pb2.FlowStreamRequest.SerializeToString,
            response_deserializer=None,
        )
        self.list_calls = 0

    def list_call(self, gte: int, lt: int, page: int, page_size: int) -> grpc.Future:
        """Start one List call (time-sorted, `page` of `page_size`); `.result()` waits for it."""
        self.list_calls += 1
        request = api_pb2.FlowListRequest(start_time_gte=gte, start_time_lt=lt, page=page, page_size=page_size)
        request.sort_by.add(sort_by=api_pb2.Time)
        return self._list.future(request, timeout=self.request_timeout_s)

    def probe(self, request: CalicoRequest, end_s: int) -> BacklogView:
        """List the window once: the number of keys, and the oldest bucket; CollectError if it fails."""
        gte = request.since_s or 0
        if gte and gte >= end_s:
            return BacklogView(0, None)
        try:
            return self.backlog_view(gte, end_s, request.page_size)
        except grpc.RpcError as e:
            raise CollectError(self.explain(e)) from None

    def backlog_view(self, gte: int, lt: int, page_size: int) -> BacklogView:
        """The keys in [gte, lt) and the start of the oldest bucket (from the last, oldest page)."""
        first: api_pb2.FlowListResult = self.list_call(gte, lt, 0, page_size).result()
        oldest = _oldest(first)
        pages = first.meta.totalPages
        if pages > 1:
            last: api_pb2.FlowListResult = self.list_call(gte, lt, pages - 1, page_size).result()
            oldest = _oldest(last) or oldest
        return BacklogView(first.meta.totalResults, oldest)

    def stream(self, start_s: int) -> grpc.Call:
        """Open a Stream from `start_s` (Goldmane backfills completed intervals from there, then goes live)."""
        return self._stream(api_pb2.FlowStreamRequest(start_time_gte=start_s, aggregation_interval=INTERVAL_S))

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def explain(self, error: grpc.RpcError) -> str:
        """One sentence for a failed call: TLS refused, unreachable, or refused request."""
        code, text = status(error)
        reason = tls_failure(text)
        if reason is not None:
            return (
                f"{self.server}: TLS handshake failed ({reason}); check --tls-ca-cert-files (Secret "
                "calico-system/goldmane-key-pair), --tls-server-name and the client certificate (Secret "
                "calico-system/node-certs)"
            )
        if code in UNREACHABLE:
            hint = " (TLS to a plain-text server? try --insecure-plaintext)" if self.tls and "ssl" in text else ""
            return (
                f"{self.server}: cannot reach Goldmane ({code.name}: {text}){hint}; is it reachable there (e.g. "
                "`kubectl port-forward -n calico-system svc/goldmane 7443:7443`)?"
            )
        return f"{self.server}: Goldmane refused the request ({code.name}: {text})"


def _oldest(result: api_pb2.FlowListResult) -> int | None:
    starts = [r.flow.start_time for r in result.flows if r.flow.start_time > 0]
    return min(starts) if starts else None


class GoldmaneFeed:
    """The state of a collection across reconnects: backlog done or not, where a reopened stream starts."""

    def __init__(self, client: GoldmaneClient, request: CalicoRequest, decoder: GoldmaneDecoder) -> None:
        self.client, self.request, self.decoder = client, request, decoder
        now = int(time.time())
        if request.until_s is not None:
            self.end_s = request.until_s
        elif request.follow:
            self.end_s = now - _COMPLETE_AFTER_S  # newer buckets come complete through Stream
        else:
            self.end_s = now + _FUTURE_SLACK_S
        self.backlog_done = False
        self.buckets_listed = 0
        # The newest start time this reader thread has listed: the decoder (another thread) may not
        # have reached it yet, and a stream opened from an older point would depend on its pace.
        self.listed_newest_s: int | None = None
        self.view: BacklogView | None = None  # the probe's answer, used by the first stream

    def probe(self) -> BacklogView:
        """List the window once (proves the server answers; CollectError otherwise); kept for the first stream."""
        self.view = self.client.probe(self.request, self.end_s)
        return self.view

    def open(self) -> GoldmaneStream:
        """A stream continuing from the newest flow received (or from the start)."""
        return GoldmaneStream(self)

    def resume_s(self) -> int:
        """Where a (re)opened List or Stream starts: the newest start time received (decoded, or
        listed and queued for decoding), else the request's."""
        received = [s for s in (self.decoder.newest_start_s, self.listed_newest_s) if s is not None]
        if received:
            return max(received)
        if not self.backlog_done:
            return self.request.since_s or 0
        return max(self.request.since_s or 0, self.end_s)


class GoldmaneStream:
    """The backlog (bucket by bucket) then, following, the Stream; items are FlowResults or their bytes."""

    def __init__(self, feed: GoldmaneFeed) -> None:
        self.feed = feed
        self.cancelled = False
        self._call: grpc.Future | grpc.Call | None = None

    def __iter__(self) -> Iterator[object]:
        """FlowResults until the window is listed (or the stream ends); StreamBroken when retryable."""
        feed = self.feed
        try:
            if not feed.backlog_done:
                yield from self._backlog()
                if self.cancelled:
                    return
                feed.backlog_done = True
            if feed.request.follow:
                call = self._call = feed.client.stream(feed.resume_s())
                yield from call
        except grpc.FutureCancelledError:
            return
        except grpc.RpcError as e:
            raise_stream_error(e, cancelled=self.cancelled, explain=feed.client.explain)

    def _backlog(self) -> Iterator[api_pb2.FlowResult]:
        feed = self.feed
        client, page_size, end = feed.client, feed.request.page_size, feed.end_s
        start = feed.resume_s()
        if start and start >= end:
            return
        view = feed.view if feed.view is not None else client.backlog_view(start, end, page_size)
        feed.view = None
        if view.oldest_s is None:
            return
        bucket: int | None = view.oldest_s
        limit = min(end, int(time.time()) + _FUTURE_SLACK_S)
        while bucket is not None and bucket < limit and not self.cancelled:
            page, pages, found = 0, 1, 0
            while page < pages and not self.cancelled:
                call = self._call = client.list_call(bucket, bucket + INTERVAL_S, page, page_size)
                result: api_pb2.FlowListResult = call.result()
                for listed in result.flows:
                    start = int(listed.flow.start_time)
                    if feed.listed_newest_s is None or start > feed.listed_newest_s:
                        feed.listed_newest_s = start
                    yield listed
                found += len(result.flows)
                pages = result.meta.totalPages if result.flows else 0
                page += 1
            feed.buckets_listed += 1
            if found:
                bucket += INTERVAL_S
            elif bucket + INTERVAL_S < end:  # a quiet bucket: jump to the next one with flows
                bucket = client.backlog_view(bucket + INTERVAL_S, end, page_size).oldest_s
            else:
                bucket = None

    def cancel(self) -> None:
        """Stop: the current call is cancelled and the iterator ends quietly."""
        self.cancelled = True
        if self._call is not None:
            self._call.cancel()


class GoldmaneDecoder:
    """Appends Goldmane FlowResults to FlowColumns with the file importer's mapping, dropping resent ones."""

    def __init__(self, namespaces: Sequence[str] = (), resume_window_s: int = 4 * INTERVAL_S) -> None:
        self.stats = SourceStats()
        self.duplicates = 0
        self.filtered = 0
        self.newest_start_s: int | None = None
        self.namespaces = frozenset(namespaces)
        self.resume_window_s = resume_window_s
        self._seen: dict[tuple[int, int, bytes], None] = {}

    def take(self, cols: FlowColumns, items: Sequence[object]) -> None:
        """Decode FlowResults (messages, or serialized from Stream); append new flows in the namespaces."""
        stats = self.stats
        for item in items:
            stats.records += 1
            if isinstance(item, bytes):
                try:
                    result = api_pb2.FlowResult.FromString(item)
                except DecodeError as e:
                    stats.skip("stream", f"not a Goldmane FlowResult: {e}", strict=False)
                    continue
            else:
                result = item
            if not result.HasField("flow"):
                stats.skip(f"flow id {result.id}", "field flow: missing", strict=False)
                continue
            flow = result.flow
            if self._seen_before(flow):
                self.duplicates += 1
                continue
            key = flow.Key
            if self.namespaces and not {key.source_namespace, key.dest_namespace} & self.namespaces:
                self.filtered += 1
                continue
            try:
                append_goldmane(cols, flow_dict(flow))
            except BadField as e:
                stats.skip(f"flow id {result.id}", str(e), strict=False)

    def finish(self, cols: FlowColumns) -> pa.RecordBatch:
        """The appended rows as a FLOW_SCHEMA batch."""
        self.stats.flows += len(cols)
        self.stats.saw_time(min(cols.time), max(cols.time))
        return cols.to_batch()

    def _seen_before(self, flow: api_pb2.Flow) -> bool:
        """Whether (start, end, key) came already; remembers it, forgetting keys older than the window."""
        start = flow.start_time
        seen = self._seen
        tag = (start, flow.end_time, flow.Key.SerializeToString(deterministic=True))
        if tag in seen:
            return True
        seen[tag] = None
        newest = self.newest_start_s
        if newest is None or start > newest:
            self.newest_start_s = newest = start
            horizon = newest - self.resume_window_s
            if len(seen) > 4096 and next(iter(seen))[0] < horizon:
                self._seen = {k: None for k in seen if k[0] >= horizon}
        return False


def flow_dict(flow: api_pb2.Flow) -> dict[str, object]:
    """A Flow in the Goldmane emitter's NDJSON shape (`Key`, snake_case, enums as numbers, zero values left out).

    int64 values come out as decimal strings, which the importer accepts as protojson integers.
    """
    shape: dict[str, object] = json_format.MessageToDict(
        flow, preserving_proto_field_name=True, use_integers_for_enums=True
    )
    return shape


def tls_options(
    insecure_plaintext: bool,
    ca_cert_files: Sequence[str] = (),
    client_cert_file: str | None = None,
    client_key_file: str | None = None,
    server_name: str | None = None,
    allow_insecure: bool = False,
) -> TlsOptions:
    """Goldmane's transport: mutual TLS unless `--insecure-plaintext` (port-forwards to a test server)."""
    if insecure_plaintext and (ca_cert_files or client_cert_file or client_key_file or server_name or allow_insecure):
        raise UsageError("--insecure-plaintext turns TLS off; it cannot be combined with --tls-* options")
    return TlsOptions(
        enabled=not insecure_plaintext,
        ca_cert_files=tuple(ca_cert_files),
        client_cert_file=client_cert_file,
        client_key_file=client_key_file,
        server_name=server_name,
        allow_insecure=allow_insecure,
    )
