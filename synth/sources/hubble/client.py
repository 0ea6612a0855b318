"""The Hubble Observer gRPC client: ServerStatus, and GetFlows streams of serialized responses. Imports grpc.

Kept apart from the decoder (`hubble.stream`) so that a process that only receives flows
(`hubble.receiver`) imports gRPC and the generated messages, not Arrow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import grpc
import grpc.experimental
from google.protobuf import json_format

from synth._proto.flow import flow_pb2
from synth._proto.observer import observer_pb2, observer_pb2_grpc
from synth.base.errors import CollectError, UsageError
from synth.sources.transport import UNREACHABLE, TlsOptions, open_channel, raise_stream_error, status, tls_failure

_ALL_FLOWS = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What `ServerStatus` said at the start of a collection."""

    version: str
    num_flows: int
    max_flows: int
    seen_flows: int
    uptime_ns: int
    flows_rate: float
    connected_nodes: int | None
    unavailable_nodes: int | None
    unavailable_node_names: tuple[str, ...]

    def as_facts(self) -> dict[str, object]:
        """The status as JSON-able collection facts."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class FlowRequest:
    """What to ask GetFlows for; `since_ns` moves forward when a broken stream is resumed."""

    since_ns: int | None = None
    until_ns: int | None = None
    follow: bool = False
    allowlist: tuple[bytes, ...] = ()  # serialized flow.FlowFilter
    denylist: tuple[bytes, ...] = ()

    def message(self, since_ns: int | None) -> observer_pb2.GetFlowsRequest:
        """The GetFlowsRequest, starting at `since_ns` (the resume point) when given."""
        since = self.since_ns if since_ns is None else max(since_ns, self.since_ns or since_ns)
        request = observer_pb2.GetFlowsRequest(follow=self.follow)
        if since is not None:
            request.since.FromNanoseconds(since)
        if self.until_ns is not None and not self.follow:
            request.until.FromNanoseconds(self.until_ns)
        if since is None and self.until_ns is None and not self.follow:
            request.number = _ALL_FLOWS  # no window: everything the server still holds (`hubble observe --all`)
        request.whitelist.extend(flow_pb2.FlowFilter.FromString(f) for f in self.allowlist)
        request.blacklist.extend(flow_pb2.FlowFilter.FromString(f) for f in self.denylist)
        return request


def build_filters(
    namespaces: Sequence[str], verdicts: Sequence[str], allowlist: Sequence[str], denylist: Sequence[str]
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Server-side filters as hubble's CLI builds them: (allowlist, denylist) of serialized FlowFilters.

    `--namespace X` is two ORed filters (source pod in X, destination pod in X), each also carrying
    the verdicts; raw `--allowlist`/`--denylist` JSON FlowFilters are added as given.
    """
    numbers = []
    for verdict in verdicts:
        try:
            numbers.append(flow_pb2.Verdict.Value(verdict.upper()))
        except ValueError:
            known = ", ".join(v.name for v in flow_pb2.Verdict.DESCRIPTOR.values[1:])
            raise UsageError(f"--verdict {verdict}: not a Hubble verdict (one of {known})") from None
    allow: list[flow_pb2.FlowFilter] = []
    if namespaces:
        prefixes = [f"{ns}/" for ns in namespaces]
        allow.append(flow_pb2.FlowFilter(source_pod=prefixes, verdict=numbers))
        allow.append(flow_pb2.FlowFilter(destination_pod=prefixes, verdict=numbers))
    elif numbers:
        allow.append(flow_pb2.FlowFilter(verdict=numbers))
    allow.extend(_parse_filter(text, "--allowlist") for text in allowlist)
    deny = [_parse_filter(text, "--denylist") for text in denylist]
    return tuple(f.SerializeToString() for f in allow), tuple(f.SerializeToString() for f in deny)


def _parse_filter(text: str, flag: str) -> flow_pb2.FlowFilter:
    try:
        parsed: flow_pb2.FlowFilter = json_format.Parse(text, flow_pb2.FlowFilter())
    except json_format.ParseError as e:
        reason = str(e).splitlines()[0] if str(e) else "invalid JSON"
        raise CollectError(f"{flag} {text!r}: not a JSON FlowFilter ({reason})") from None
    return parsed


class HubbleClient:
    """One channel to a Hubble Observer server: status, then flow streams."""

    def __init__(self, server: str, tls: TlsOptions, request_timeout_s: float) -> None:
        self.server = server
        self.request_timeout_s = request_timeout_s
        target, tls = _target(server, tls)
        options: list[tuple[str, object]] = [
            ("grpc.max_receive_message_length", 64 << 20),
            (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1),
        ]
        self.channel = open_channel(target, tls, options)
        self.stub = observer_pb2_grpc.ObserverStub(self.channel)  # type: ignore[no-untyped-call]
        # GetFlows responses stay bytes until the collector's thread decodes them (smaller queued, parsed once).
        self._get_flows = self.channel.unary_stream(
            "/observer.Observer/GetFlows",
            request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
            response_deserializer=None,
        )
        self.tls = tls.enabled

    def status(self) -> ServerInfo:
        """Ask ServerStatus; an unreachable server or a refused certificate is a CollectError."""
        try:
            reply = self.stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=self.request_timeout_s)
        except grpc.RpcError as e:
            raise CollectError(self.explain(e)) from None
        return ServerInfo(
            version=reply.version,
            num_flows=reply.num_flows,
            max_flows=reply.max_flows,
            seen_flows=reply.seen_flows,
            uptime_ns=reply.uptime_ns,
            flows_rate=reply.flows_rate,
            connected_nodes=reply.num_connected_nodes.value if reply.HasField("num_connected_nodes") else None,
            unavailable_nodes=reply.num_unavailable_nodes.value if reply.HasField("num_unavailable_nodes") else None,
            unavailable_node_names=tuple(reply.unavailable_nodes),
        )

    def open(self, request: FlowRequest, since_ns: int | None) -> FlowStream:
        """Start a GetFlows stream (from `since_ns` when resuming)."""
        return FlowStream(self, self._get_flows(request.message(since_ns)))

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def explain(self, error: grpc.RpcError) -> str:
        """One sentence for a failed call: TLS refused, unreachable, or refused request."""
        code, text = status(error)
        reason = tls_failure(text)
        if reason is not None:
            return (
                f"{self.server}: TLS handshake failed ({reason}); check --tls-ca-cert-files, "
                "--tls-server-name and the client certificate"
            )
        if code in UNREACHABLE:
            hint = " (plain text to a TLS server? try --tls)" if not self.tls and "Socket closed" in text else ""
            return (
                f"{self.server}: cannot reach the Hubble server ({code.name}: {text}){hint}; is hubble-relay "
                "reachable there (e.g. `cilium hubble port-forward`)?"
            )
        return f"{self.server}: the Hubble server refused the request ({code.name}: {text})"


class FlowStream:
    """One open GetFlows call: iterate the responses, or cancel it from another thread."""

    def __init__(self, client: HubbleClient, call: grpc.Call) -> None:
        self.client = client
        self.call = call
        self.cancelled = False

    def __iter__(self) -> Iterator[bytes]:
        """Serialized responses until the server ends the stream; StreamBroken when it breaks off (retryable)."""
        try:
            yield from self.call
        except grpc.RpcError as e:
            raise_stream_error(e, cancelled=self.cancelled, explain=self.client.explain)

    def cancel(self) -> None:
        """Stop the stream; the iterator then ends quietly."""
        self.cancelled = True
        self.call.cancel()


def _target(server: str, tls: TlsOptions) -> tuple[str, TlsOptions]:
    # As hubble: a tls:// prefix, or any TLS flag, switches TLS on.
    if server.startswith("tls://"):
        return server[len("tls://") :], replace(tls, enabled=True)
    if tls.allow_insecure or tls.ca_cert_files or tls.client_cert_file or tls.server_name:
        return server, replace(tls, enabled=True)
    return server, tls
