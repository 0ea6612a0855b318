"""A stand-in Calico Goldmane (`goldmane.Flows` List and Stream) for tests and for trying `synth collect calico`.

It keeps flows per key and 15-second bucket and answers as Goldmane does: `List` aggregates each key
over the whole requested window (newest first, pages from 0), `Stream` backfills completed buckets
from `start_time_gte`, then sends fed flows live. Tests steer faults through attributes:
`refuse_lists` fails chosen List calls, `break_after` aborts the next Streams after N results,
`hold_quiet_lists` holds List calls that find nothing (the end of the backlog) until an event is
set, `feed()` adds live flows. `load_flows` reads Goldmane flow files (emitter NDJSON, protojson as
`grpcurl` prints it, `.gz` or not); `scripts/serve_goldmane.py` serves them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format

from synth._proto.goldmane import api_pb2
from synth.base.errors import InputError
from synth.sources.calico.files import detect_format
from synth.sources.calico.goldmane import goldmane_flows, looks_like_goldmane
from synth.sources.calico.records import BadField
from synth.sources.reader import InputFile
from synth.testing.serving import serve

INTERVAL_S = 15  # Goldmane's bucket width
_HOLD_LIMIT_S = 60  # a held List answers after this long anyway (a failing test must not hang the server)
_COUNTERS = ("packets_in", "packets_out", "bytes_in", "bytes_out", "num_connections_started",
             "num_connections_completed", "num_connections_live")  # fmt: skip


class FakeGoldmane:
    """`goldmane.Flows` List and Stream over per-bucket flows, with faults steered by attributes."""

    def __init__(self, flows: Sequence[api_pb2.Flow] = ()) -> None:
        self.windows: dict[bytes, dict[int, api_pb2.Flow]] = {}
        self.ids: dict[bytes, int] = {}
        self.list_requests: list[api_pb2.FlowListRequest] = []
        self.stream_requests: list[api_pb2.FlowStreamRequest] = []
        self.refuse_lists: set[int] = set()  # these List calls (counted from 1) fail with UNAVAILABLE
        self.break_after: list[int] = []  # the next Streams abort after N results
        self.hold_quiet_lists: threading.Event | None = None  # set: List calls that find nothing wait for it
        self.streaming = threading.Event()
        self._live: list[api_pb2.Flow] = []
        self._changed = threading.Condition()
        self._closing = False
        self.add(flows)

    def add(self, flows: Iterable[api_pb2.Flow]) -> None:
        """Store flows (the backlog)."""
        for flow in flows:
            key = flow.Key.SerializeToString(deterministic=True)
            self.ids.setdefault(key, len(self.ids) + 1)
            self.windows.setdefault(key, {})[flow.start_time] = flow

    def feed(self, flows: Sequence[api_pb2.Flow]) -> None:
        """New completed buckets: stored, and sent to open Streams."""
        with self._changed:
            self.add(flows)
            self._live.extend(flows)
            self._changed.notify_all()

    def close(self) -> None:
        """End the Stream loops (call before stopping the grpc server)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    def list(self, request: api_pb2.FlowListRequest, context: grpc.ServicerContext) -> api_pb2.FlowListResult:
        """Goldmane's List: one flow per key over [gte, lt), newest first, one page."""
        self.list_requests.append(request)
        if len(self.list_requests) in self.refuse_lists:
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake goldmane: not ready")
        starts = [start for windows in self.windows.values() for start in windows]
        gte = request.start_time_gte or min(starts, default=0)
        lt = request.start_time_lt or int(time.time())
        if gte >= lt:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"startTimeGt ({gte}) must be less than startTimeLt ({lt})")
        matched = []
        for key, windows in self.windows.items():
            if not any(gte <= start < lt for start in windows):
                continue
            inside = [w for start, w in sorted(windows.items()) if start >= gte and w.end_time <= lt]
            matched.append(api_pb2.FlowResult(id=self.ids[key], flow=aggregate(inside)))
        if not matched and self.hold_quiet_lists is not None:
            self.hold_quiet_lists.wait(_HOLD_LIMIT_S)  # a test holds the collector where its backlog ends
        matched.sort(key=lambda r: (r.flow.start_time, r.id), reverse=True)
        total, size = len(matched), request.page_size
        if size:
            matched = matched[request.page * size : (request.page + 1) * size]
        pages = -(-total // size) if size else 1
        return api_pb2.FlowListResult(meta=api_pb2.ListMetadata(totalPages=pages, totalResults=total), flows=matched)

    def stream(self, request: api_pb2.FlowStreamRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Goldmane's Stream: stored buckets from start_time_gte (0: none), then fed ones as they come."""
        self.stream_requests.append(request)
        limit = self.break_after.pop(0) if self.break_after else None
        sent = 0
        with self._changed:
            position = len(self._live)
            backfill = sorted(
                (flow.start_time, self.ids[key], flow)
                for key, windows in self.windows.items()
                for flow in windows.values()
                if request.start_time_gte and flow.start_time >= request.start_time_gte
            )
        self.streaming.set()
        for _, flow_id, flow in backfill:
            if limit is not None and sent >= limit:
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake goldmane: connection lost")
            yield api_pb2.FlowResult(id=flow_id, flow=flow).SerializeToString()
            sent += 1
        while context.is_active():
            with self._changed:
                if position >= len(self._live) and not self._closing:
                    self._changed.wait(0.1)
                if self._closing:
                    return
                fresh = self._live[position:]
            for flow in fresh:
                position += 1
                if limit is not None and sent >= limit:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "fake goldmane: connection lost")
                key = flow.Key.SerializeToString(deterministic=True)
                yield api_pb2.FlowResult(id=self.ids[key], flow=flow).SerializeToString()
                sent += 1

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving this fake as `goldmane.Flows`."""
        return grpc.method_handlers_generic_handler(
            "goldmane.Flows",
            {
                "List": grpc.unary_unary_rpc_method_handler(
                    self.list,
                    request_deserializer=api_pb2.FlowListRequest.FromString,
                    response_serializer=api_pb2.FlowListResult.SerializeToString,
                ),
                "Stream": grpc.unary_stream_rpc_method_handler(
                    self.stream, request_deserializer=api_pb2.FlowStreamRequest.FromString, response_serializer=bytes
                ),
            },
        )


def aggregate(windows: list[api_pb2.Flow]) -> api_pb2.Flow:
    """Goldmane's DiachronicFlow.Aggregate: counters summed, labels intersected, the span of the windows."""
    flow = api_pb2.Flow()
    if not windows:
        return flow  # Goldmane answers a key without windows in range with an empty flow (start_time 0)
    flow.Key.CopyFrom(windows[0].Key)
    flow.start_time, flow.end_time = windows[0].start_time, windows[-1].end_time
    source, dest = set(windows[0].source_labels), set(windows[0].dest_labels)
    for w in windows:
        source &= set(w.source_labels)
        dest &= set(w.dest_labels)
        for name in _COUNTERS:
            setattr(flow, name, getattr(flow, name) + getattr(w, name))
    flow.source_labels.extend(sorted(source))
    flow.dest_labels.extend(sorted(dest))
    return flow


def start(
    fake: FakeGoldmane,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls: tuple[bytes, bytes, bytes | None] | None = None,
) -> tuple[grpc.Server, int]:
    """Serve `fake` on host:port (0: any free port); `tls` = (key, cert chain, client CA or None for no mTLS)."""
    with fake._changed:
        fake._closing = False
    return serve(fake.handler(), port, host=host, tls=tls)


def stop(server: grpc.Server, fake: FakeGoldmane) -> None:
    """Stop serving at once (Stream loops end, open calls are cancelled)."""
    fake.close()
    server.stop(grace=None).wait()


def load_flows(paths: Iterable[Path | str]) -> list[api_pb2.Flow]:
    """Every Goldmane flow of the files (emitter NDJSON, protojson Flow/FlowResult/List answers), in file order.

    InputError names the file and line of a record that is no Goldmane flow (Goldmane serves nothing else).
    """
    flows = []
    for path in paths:
        with InputFile(str(path)) as source:
            for record in source.records():
                where = f"{source.display}:{record.line}"
                value = record.value
                if record.error or not isinstance(value, dict):
                    raise InputError(f"{where}: {record.error or 'expected a JSON object'}")
                if not looks_like_goldmane(value):
                    found = detect_format(value)
                    what = f"{found} data" if found else "no Calico flow data"
                    raise InputError(
                        f"{where}: {what}, not Goldmane flows; Goldmane serves its own flows only "
                        "(emitter NDJSON or protojson; import other Calico files with `synth import calico`)"
                    )
                for prefix, flow in goldmane_flows(value):
                    flows.append(_parse_flow(flow, f"{where}: {prefix}"))
    return flows


def _parse_flow(value: object, where: str) -> api_pb2.Flow:
    if isinstance(value, BadField):
        raise InputError(f"{where}{value}")
    flow = api_pb2.Flow()
    try:
        json_format.ParseDict(value, flow, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise InputError(f"{where}not a Goldmane flow ({e})") from e
    return flow


def repeat(flows: Sequence[api_pb2.Flow], times: int) -> list[api_pb2.Flow]:
    """The flows `times` over, each copy starting where the buckets of the one before end.

    A file of a few buckets served as a longer backlog (a quiet cluster's hour, say).
    """
    if not flows:
        return []
    starts = [flow.start_time for flow in flows]
    span = max(starts) - min(starts) + INTERVAL_S
    spread = []
    for k in range(times):
        for flow in flows:
            moved = api_pb2.Flow()
            moved.CopyFrom(flow)
            moved.start_time += k * span
            moved.end_time += k * span
            spread.append(moved)
    return spread
