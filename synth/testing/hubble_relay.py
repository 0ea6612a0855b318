"""A fake Hubble Observer server (GetFlows, ServerStatus) for tests, the README demo and the benchmark.

It serves Hubble JSON captures (`hubble observe -o jsonpb` envelopes, legacy bare flows, `.gz` or
not) converted to protobuf, in time order, honouring `since`, `until`, `number` and `follow`.
Tests steer faults through attributes: `break_after` aborts the next streams with UNAVAILABLE
after N responses, `refuse` fails the next GetFlows calls at once, `feed()` adds live flows.
Responses are kept serialized and sent as bytes, so serving costs little CPU.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format

from synth._proto.flow import flow_pb2
from synth._proto.observer import observer_pb2
from synth._proto.relay import relay_pb2
from synth.testing.serving import serve

Response = tuple[int, bytes]  # (time in ns, serialized GetFlowsResponse)
_ENVELOPE_KEYS = ("flow", "lost_events", "node_status", "lostEvents", "nodeStatus")


def json_to_response(value: dict[str, object]) -> observer_pb2.GetFlowsResponse:
    """One JSON record (envelope or legacy bare flow) as a GetFlowsResponse, as a relay would send it."""
    if any(key in value for key in _ENVELOPE_KEYS):
        flow = value.get("flow")
        if isinstance(flow, dict):
            flow.pop("extensions", None)
        envelope = observer_pb2.GetFlowsResponse()
        json_format.ParseDict(value, envelope, ignore_unknown_fields=True)
        return envelope
    value.pop("extensions", None)
    flow_message = flow_pb2.Flow()
    json_format.ParseDict(value, flow_message, ignore_unknown_fields=True)
    response = observer_pb2.GetFlowsResponse(flow=flow_message, node_name=flow_message.node_name)
    response.time.CopyFrom(flow_message.time)
    return response


def response_time_ns(response: observer_pb2.GetFlowsResponse) -> int:
    """The flow's time, else the envelope's."""
    stamp = response.flow.time if response.HasField("flow") and response.flow.HasField("time") else response.time
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def load_responses(paths: Iterable[Path | str]) -> list[Response]:
    """Every record of the files as (time, serialized response), sorted by time (stable)."""
    found = []
    for path in paths:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as lines:
            for line in lines:
                if line.strip():
                    response = json_to_response(json.loads(line))
                    found.append((response_time_ns(response), response.SerializeToString()))
    found.sort(key=lambda item: item[0])
    return found


def node_status(state: int, nodes: Sequence[str], message: str = "") -> bytes:
    """A serialized relay node-status response."""
    response = observer_pb2.GetFlowsResponse(
        node_status=relay_pb2.NodeStatusEvent(
            state_change=state,  # type: ignore[arg-type]  # the enum's number
            node_names=list(nodes),
            message=message,
        )
    )
    response.time.FromNanoseconds(time.time_ns())
    return bytes(response.SerializeToString())


class FakeObserver:
    """The Observer service over a fixed list of responses, plus live ones fed later."""

    def __init__(
        self,
        responses: Sequence[Response],
        *,
        nodes: Sequence[str] = (),
        version: str = "1.19.4-fake",
        live_backlog: bool = False,
    ) -> None:
        self.responses = list(responses)
        self.live_backlog = live_backlog  # `follow` without `since` gets the backlog too, as if it were new
        self.nodes = list(nodes)
        self.version = version
        self.break_after: list[int] = []
        self.refuse = 0
        self.requests: list[observer_pb2.GetFlowsRequest] = []
        self.sent = 0
        self.backlog_sent = threading.Event()
        self._live: list[Response] = []
        self._changed = threading.Condition()
        self._closing = False

    def feed(self, responses: Iterable[Response]) -> None:
        """Add live responses: streams in follow mode send them as they come."""
        with self._changed:
            self._live.extend(responses)
            self._changed.notify_all()

    def close(self) -> None:
        """End the follow loops (call before stopping the grpc server)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    def get_flows(self, request: observer_pb2.GetFlowsRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Stream the backlog in the request's window, then (follow) live responses until cancelled."""
        self.requests.append(request)
        if self.refuse:
            self.refuse -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "fake relay: not ready")
        limit = self.break_after.pop(0) if self.break_after else None
        since = _ns(request.since) if request.HasField("since") else None
        if self.nodes:
            yield node_status(relay_pb2.NODE_CONNECTED, self.nodes)
        sent = [0]
        yield from self._limited(self._backlog(request, since), limit, sent, context)
        self.backlog_sent.set()
        if request.follow:
            yield from self._limited(self._live_after(since, context), limit, sent, context)

    def _backlog(self, request: observer_pb2.GetFlowsRequest, since: int | None) -> list[bytes]:
        until = _ns(request.until) if request.HasField("until") and not request.follow else None
        backlog = [r for r in self.responses if (since is None or r[0] >= since) and (until is None or r[0] <= until)]
        if since is None and until is None:
            if request.number:
                backlog = backlog[-request.number :]
            elif request.follow and not self.live_backlog:
                backlog = []
        return [data for _, data in backlog]

    def _live_after(self, since: int | None, context: grpc.ServicerContext) -> Iterator[bytes]:
        position = 0
        while context.is_active():
            with self._changed:
                if position >= len(self._live) and not self._closing:
                    self._changed.wait(0.1)
                if self._closing:
                    return
                fresh = self._live[position:]
            for moment, data in fresh:
                position += 1
                if since is None or moment >= since:
                    yield data

    def _limited(
        self, responses: Iterable[bytes], limit: int | None, sent: list[int], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """The responses, breaking the stream (UNAVAILABLE) once `limit` were sent on it (`break_after`)."""
        for data in responses:
            if limit is not None and sent[0] >= limit:
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake relay: connection to the node lost")
            yield data
            sent[0] += 1
            self.sent += 1

    def server_status(
        self, _request: observer_pb2.ServerStatusRequest, _context: grpc.ServicerContext
    ) -> observer_pb2.ServerStatusResponse:
        """Status as a relay reports it."""
        reply = observer_pb2.ServerStatusResponse(
            num_flows=len(self.responses),
            max_flows=max(len(self.responses), 4095),
            seen_flows=len(self.responses),
            uptime_ns=1_000_000_000,
            version=self.version,
            flows_rate=1.5,
        )
        reply.num_connected_nodes.value = len(self.nodes)
        reply.num_unavailable_nodes.value = 0
        return reply

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving this fake as `observer.Observer`."""
        return grpc.method_handlers_generic_handler(
            "observer.Observer",
            {
                "GetFlows": grpc.unary_stream_rpc_method_handler(
                    self.get_flows,
                    request_deserializer=observer_pb2.GetFlowsRequest.FromString,
                    response_serializer=bytes,
                ),
                "ServerStatus": grpc.unary_unary_rpc_method_handler(
                    self.server_status,
                    request_deserializer=observer_pb2.ServerStatusRequest.FromString,
                    response_serializer=observer_pb2.ServerStatusResponse.SerializeToString,
                ),
            },
        )


def _ns(stamp: object) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)  # type: ignore[attr-defined]


def start(
    observer: FakeObserver,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls: tuple[bytes, bytes, bytes | None] | None = None,
) -> tuple[grpc.Server, int]:
    """Serve `observer` on host:port (0: any free port); `tls` = (key, cert chain, client CA or None for no mTLS)."""
    with observer._changed:
        observer._closing = False
    return serve(observer.handler(), port, host=host, tls=tls)


def stop(server: grpc.Server, observer: FakeObserver) -> None:
    """Stop serving at once (follow loops end, open streams are cancelled)."""
    observer.close()
    server.stop(grace=None).wait()
