"""A fast Hubble relay stand-in speaking gRPC over HTTP/2 itself (the `h2` package, a test dependency).

grpcio's Python server hands each message to its C core one call at a time and tops out near 14k
messages a second on a small machine, slower than the collector it would measure. This stand-in
keeps every response framed in advance (gRPC's 5-byte prefix, then the serialized
`GetFlowsResponse`) and writes as many as the client's flow-control window takes into each HTTP/2
DATA frame, then ends the stream with `grpc-status` trailers: the real grpcio client reads it as it
reads hubble-relay.

It serves `ServerStatus` and `GetFlows`: a window call gets the responses, then status 0; a
`follow` call gets them and stays open until the client cancels. Allowlist and denylist
FlowFilters may select nodes by `node_name` (exact names), as a collector reading one stream per
node asks; other filter fields are refused. Relay node-status responses go to every stream, and so
do lost events (hubble-relay does not filter them), so a collector with several streams must count
each node's lost events once.

`repeat` replays the flows that many rounds, round r with flow times moved to second
`first_s + r` (a field appended to each message sets `flow.time.seconds`: protobuf merges a repeated
sub-message field), so a benchmark streams millions of distinct flows from a small capture.
"""

from __future__ import annotations

import contextlib
import fnmatch
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from synth._proto.flow import flow_pb2
from synth._proto.observer import observer_pb2
from synth.sources.hubble.stream import varint

_FLOWS = "/observer.Observer/GetFlows"
_STATUS = "/observer.Observer/ServerStatus"
_ROUND_PART = 2048  # framed flows joined into one chunk
_SECONDS_WIDTH = 5  # varint bytes of a Unix time in seconds (2^28 .. 2^35)
_IDLE_S = 0.05


@dataclass(frozen=True, slots=True)
class Record:
    """One serialized GetFlowsResponse and the node it comes from (None: a relay event for every stream)."""

    data: bytes
    node: str | None
    is_flow: bool


def distinct_in_rounds(responses: Sequence[bytes]) -> list[bytes]:
    """The responses without the flows a round would make identical to an earlier one.

    Rounds keep each flow's nanoseconds and set its seconds, so two flows of a capture that differ
    only in their second become the same flow identity (time, node, addresses, layer 4, verdict,
    direction, reply) in one round, and the store keeps one: left out here, every flow sent is new.
    """
    kept, seen = [], set()
    for data in responses:
        response = observer_pb2.GetFlowsResponse.FromString(data)
        if response.HasField("flow"):
            flow = response.flow
            identity = (flow.time.nanos, flow.node_name or response.node_name, flow.IP.source, flow.IP.destination,
                        flow.l4.SerializeToString(deterministic=True), flow.verdict, flow.traffic_direction,
                        flow.is_reply.value if flow.HasField("is_reply") else None)
            if identity in seen:
                continue
            seen.add(identity)
        kept.append(data)
    return kept


def records(responses: Sequence[bytes]) -> list[Record]:
    """The serialized responses with their nodes, as the relay selects them."""
    found = []
    for data in responses:
        response = observer_pb2.GetFlowsResponse.FromString(data)
        kind = response.WhichOneof("response_types")
        node = (response.flow.node_name or response.node_name) if kind == "flow" else response.node_name
        found.append(Record(data, None if kind == "node_status" else node, kind == "flow"))
    return found


def frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (not compressed)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def seconds_patch(seconds: int) -> bytes:
    """A GetFlowsResponse fragment that sets flow.time.seconds when appended to a message."""
    stamp = b"\x08" + varint(seconds)
    if len(stamp) != 1 + _SECONDS_WIDTH:
        raise ValueError(f"seconds {seconds} out of the range a patch is built for")
    time_field = b"\x0a" + varint(len(stamp)) + stamp
    return b"\x0a" + varint(len(time_field)) + time_field


class FastRelay:
    """Serves fixed responses over a listening socket, one thread per client connection."""

    def __init__(
        self,
        responses: Sequence[bytes],
        *,
        repeat: int = 1,
        first_s: int | None = None,
        version: str = "1.19.4-fast",
        connected_nodes: int | None = None,
    ) -> None:
        self.records = records(responses)
        self.repeat = repeat
        self.first_s = int(time.time()) if first_s is None else first_s
        self.version = version
        nodes = {r.node for r in self.records if r.node}
        self.connected_nodes = len(nodes) if connected_nodes is None else connected_nodes
        self.requests: list[observer_pb2.GetFlowsRequest] = []
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def flows(self) -> int:
        """Flows one unfiltered window call sends."""
        return sum(r.is_flow for r in self.records) * self.repeat

    def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Listen on host:port (0: any free port) in a background thread; returns the port."""
        listener = socket.create_server((host, port))
        self._listener = listener
        thread = threading.Thread(target=self._accept, name="h2-relay", daemon=True)
        thread.start()
        self._threads.append(thread)
        return int(listener.getsockname()[1])

    def stop(self) -> None:
        """Close the listener and every connection."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=_Connection(self, client).run, name="h2-relay-conn", daemon=True)
            thread.start()
            self._threads.append(thread)

    # ----- what each call answers
    def status(self) -> bytes:
        """The serialized ServerStatusResponse."""
        count = len(self.records) * self.repeat
        reply = observer_pb2.ServerStatusResponse(
            num_flows=count, max_flows=max(count, 4095), seen_flows=count, uptime_ns=1_000_000_000,
            version=self.version, flows_rate=1.5,
        )  # fmt: skip
        reply.num_connected_nodes.value = self.connected_nodes
        reply.num_unavailable_nodes.value = 0
        return bytes(reply.SerializeToString())

    def chunks(self, request: observer_pb2.GetFlowsRequest) -> Iterator[bytes]:
        """The framed responses a GetFlows request gets, a chunk at a time (ValueError: filters it cannot apply)."""
        self.requests.append(request)
        allow = [_node_patterns(f) for f in request.whitelist]
        deny = [_node_patterns(f) for f in request.blacklist]
        chosen = [r for r in self.records if r.node is None or _selected(r.node, allow, deny, r.is_flow)]
        if self.repeat == 1:
            for start in range(0, len(chosen), _ROUND_PART):
                yield b"".join(frame(r.data) for r in chosen[start : start + _ROUND_PART])
            return
        yield b"".join(frame(r.data) for r in chosen if not r.is_flow)
        patch_length = len(seconds_patch(self.first_s))
        # Each flow framed with room for the patch that follows it: a round is `patch.join(heads) + patch`.
        heads = [b"\x00" + struct.pack(">I", len(r.data) + patch_length) + r.data for r in chosen if r.is_flow]
        for round_number in range(self.repeat):
            patch = seconds_patch(self.first_s + round_number)
            for start in range(0, len(heads), _ROUND_PART):
                yield patch.join(heads[start : start + _ROUND_PART]) + patch


def _node_patterns(flow_filter: flow_pb2.FlowFilter) -> tuple[str, ...]:
    fields = {descriptor.name for descriptor, _ in flow_filter.ListFields()}
    if fields - {"node_name"}:
        raise ValueError(f"this stand-in filters on node_name only, not {', '.join(sorted(fields - {'node_name'}))}")
    return tuple(flow_filter.node_name)


def _selected(node: str, allow: list[tuple[str, ...]], deny: list[tuple[str, ...]], is_flow: bool) -> bool:
    if not is_flow:
        return True  # lost events reach every stream
    return (not allow or any(_matches(node, p) for p in allow)) and not any(_matches(node, p) for p in deny)


def _matches(node: str, patterns: tuple[str, ...]) -> bool:
    """A filter without node names matches every node."""
    return not patterns or any(fnmatch.fnmatchcase(node, pattern) for pattern in patterns)


class _Call:
    """One response being sent: framed bytes still to write, then trailers unless it follows."""

    def __init__(self, chunks: Iterator[bytes], follow: bool) -> None:
        self.chunks = chunks
        self.follow = follow
        self.pending = memoryview(b"")
        self.done = False  # trailers sent (or, following, nothing more to send)

    def next_piece(self, size: int) -> memoryview | None:
        """Up to `size` bytes to send next, or None when the responses are all out."""
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return None
            self.pending = memoryview(chunk)
        piece, self.pending = self.pending[:size], self.pending[size:]
        return piece


class _Connection:
    """One client connection: HTTP/2 state, request bodies, responses being written."""

    def __init__(self, relay: FastRelay, sock: socket.socket) -> None:
        self.relay, self.sock = relay, sock
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.paths: dict[int, str] = {}
        self.bodies: dict[int, bytearray] = {}
        self.calls: dict[int, _Call] = {}

    def run(self) -> None:
        """Serve until the client leaves or the relay stops."""
        try:
            self.h2.initiate_connection()
            self._flush()
            while not self.relay._stopping.is_set():
                busy = any(not call.done and self.h2.local_flow_control_window(sid) > 0
                           for sid, call in self.calls.items())  # fmt: skip
                readable, _, _ = select.select([self.sock], [], [], 0 if busy else _IDLE_S)
                if readable:
                    data = self.sock.recv(1 << 16)
                    if not data:
                        return
                    self._handle(self.h2.receive_data(data))
                self._send()
                self._flush()
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            self.sock.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def _handle(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                paths = [value for name, value in event.headers or [] if name in (":path", b":path")]
                self.paths[event.stream_id] = str(paths[0]) if paths else ""
                self.bodies[event.stream_id] = bytearray()
            elif isinstance(event, h2.events.DataReceived):
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data or b"")
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._answer(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.calls.pop(event.stream_id, None)

    def _answer(self, stream_id: int) -> None:
        path, body = self.paths.pop(stream_id, ""), bytes(self.bodies.pop(stream_id, b""))
        message = body[5:]
        if path == _STATUS:
            self._start(stream_id, _Call(iter([frame(self.relay.status())]), follow=False))
        elif path == _FLOWS:
            request = observer_pb2.GetFlowsRequest.FromString(message)
            try:
                chunks = self.relay.chunks(request)
                first = next(chunks, b"")
            except ValueError as e:
                self._refuse(stream_id, 3, str(e))  # INVALID_ARGUMENT
                return
            self._start(stream_id, _Call(_prepend(first, chunks), follow=request.follow))
        else:
            self._refuse(stream_id, 12, f"{path} is not served here")  # UNIMPLEMENTED

    def _start(self, stream_id: int, call: _Call) -> None:
        self.h2.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        self.calls[stream_id] = call

    def _refuse(self, stream_id: int, code: int, text: str) -> None:
        headers = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", str(code)),
                   ("grpc-message", text)]  # fmt: skip
        self.h2.send_headers(stream_id, headers, end_stream=True)

    def _send(self) -> None:
        """Write what the flow-control windows allow, frame by frame; trailers after a window's last response."""
        for stream_id, call in list(self.calls.items()):
            while not call.done:
                window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if window <= 0:
                    break
                piece = call.next_piece(window)
                if piece is None:
                    call.done = True
                    if not call.follow:
                        self.h2.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
                        del self.calls[stream_id]
                    break
                self.h2.send_data(stream_id, piece.tobytes())
                self._flush()


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
