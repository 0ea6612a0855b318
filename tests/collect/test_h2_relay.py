"""The fast stand-in relay (gRPC written straight onto HTTP/2) is read by the real grpcio client as a relay is."""

from __future__ import annotations

import gzip
import json
import os
import signal
from collections import Counter

import grpc
import pyarrow as pa
import pytest
from conftest import ROOT

from synth._proto.flow import flow_pb2
from synth._proto.observer import observer_pb2
from synth.base.errors import CollectError
from synth.collect.hubble import CollectOptions, collect_hubble
from synth.sources.hubble.client import FlowRequest, HubbleClient
from synth.sources.hubble.receiver import CHUNK, Endpoint, ReceivedStream
from synth.sources.transport import StreamBroken, TlsOptions
from synth.store.dataset import Store
from synth.testing import h2_relay, hubble_relay


@pytest.fixture(scope="module")
def responses() -> list[bytes]:
    """The sample's first 2,000 records and its lost events (three nodes), as the relay sends them."""
    lines = gzip.decompress((ROOT / "sample_flows" / "hubble-flows.json.gz").read_bytes()).decode().splitlines()
    chosen = lines[:2000] + [line for line in lines[2000:] if '"lost_events"' in line]
    return [hubble_relay.json_to_response(json.loads(line)).SerializeToString() for line in chosen]


def _stored(store: str) -> list[dict[str, object]]:
    rows = [row for batch in Store(store).read() for row in batch.to_pylist()]
    return sorted(rows, key=lambda row: repr(sorted(row.items())))


def test_a_window_from_the_fast_relay_stores_what_the_grpcio_relay_gives(
    responses: list[bytes], tmp_path: pytest.TempPathFactory
) -> None:
    stores = {}
    for name in ("fast", "grpcio"):
        store = str(tmp_path / name)  # type: ignore[operator]
        if name == "fast":
            relay = h2_relay.FastRelay(responses)
            address = f"127.0.0.1:{relay.start()}"
            try:
                report = collect_hubble(Store(store), CollectOptions(server=address))
            finally:
                relay.stop()
        else:
            observer = hubble_relay.FakeObserver([(0, data) for data in responses])
            server, port = hubble_relay.start(observer)
            try:
                report = collect_hubble(Store(store), CollectOptions(server=f"127.0.0.1:{port}"))
            finally:
                hubble_relay.stop(server, observer)
        assert report.stopped == "stream ended"
        stores[name] = (_stored(store), report.lost_events, report.flows)
    assert stores["fast"] == stores["grpcio"]
    assert stores["fast"][2] > 1900  # some records are not stored flows (a SOCK trace, lost events)
    assert stores["fast"][1] == 424 + 686 + 89


def test_rounds_move_flow_times_a_second_on_and_every_flow_is_stored(
    responses: list[bytes], tmp_path: pytest.TempPathFactory
) -> None:
    flows = [data for data in h2_relay.distinct_in_rounds(responses)
             if observer_pb2.GetFlowsResponse.FromString(data).HasField("flow")]
    flows = flows[:400]
    relay = h2_relay.FastRelay(flows, repeat=3, first_s=1_800_000_000)
    address = f"127.0.0.1:{relay.start()}"
    try:
        report = collect_hubble(Store(str(tmp_path)), CollectOptions(server=address, compact=False))
    finally:
        relay.stop()
    assert report.flows == relay.flows == 1200
    assert report.duplicates == 0
    seconds: Counter[int] = Counter()
    for batch in Store(str(tmp_path)).read(columns=["time"]):
        for moment in batch.column("time").cast(pa.int64()).to_pylist():
            seconds[moment // 1_000_000_000] += 1
    assert seconds == {1_800_000_000: 400, 1_800_000_001: 400, 1_800_000_002: 400}


def test_node_filters_select_flows_and_lost_events_reach_every_stream(responses: list[bytes]) -> None:
    records = h2_relay.records(responses)
    node = Counter(r.node for r in records if r.is_flow).most_common(1)[0][0]
    assert node
    relay = h2_relay.FastRelay(responses)
    address = f"127.0.0.1:{relay.start()}"
    client = HubbleClient(address, TlsOptions(), 5)
    try:
        only = FlowRequest(allowlist=(flow_pb2.FlowFilter(node_name=[node]).SerializeToString(),))
        got = [observer_pb2.GetFlowsResponse.FromString(data) for data in client.open(only, None)]
        others = FlowRequest(denylist=(flow_pb2.FlowFilter(node_name=[node]).SerializeToString(),))
        rest = [observer_pb2.GetFlowsResponse.FromString(data) for data in client.open(others, None)]
        with pytest.raises(CollectError, match=r"refused the request \(INVALID_ARGUMENT: .*node_name only"):
            list(client.open(FlowRequest(allowlist=(flow_pb2.FlowFilter(verdict=[1]).SerializeToString(),)), None))
    finally:
        client.close()
        relay.stop()
    assert {r.flow.node_name or r.node_name for r in got if r.HasField("flow")} == {node}
    flows_of = lambda answer: sum(r.HasField("flow") for r in answer)  # noqa: E731
    assert flows_of(got) + flows_of(rest) == sum(r.is_flow for r in records)
    lost = sum(not r.is_flow and r.node is not None for r in records)
    assert sum(r.HasField("lost_events") for r in got) == sum(r.HasField("lost_events") for r in rest) == lost


def test_unknown_methods_are_unimplemented(responses: list[bytes]) -> None:
    relay = h2_relay.FastRelay(responses[:10])
    address = f"127.0.0.1:{relay.start()}"
    try:
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary("/observer.Observer/GetNodes")
            with pytest.raises(grpc.RpcError) as refused:
                call(b"", timeout=5)
    finally:
        relay.stop()
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_streams_are_received_in_another_process_and_its_death_is_a_broken_stream(responses: list[bytes]) -> None:
    relay = h2_relay.FastRelay(responses)
    endpoint = Endpoint(f"127.0.0.1:{relay.start()}", TlsOptions(), 5)
    try:
        whole = ReceivedStream(endpoint, FlowRequest(), None)
        lists = list(whole)
        assert [data for chunk in lists for data in chunk] == responses
        assert all(0 < len(chunk) <= CHUNK for chunk in lists)
        following = ReceivedStream(endpoint, FlowRequest(follow=True), None)
        received = iter(following)
        assert next(received)
        os.kill(following._process.pid or 0, signal.SIGKILL)
        with pytest.raises(StreamBroken, match="receiving process ended"):
            list(received)
        cancelled = ReceivedStream(endpoint, FlowRequest(follow=True), None)
        received = iter(cancelled)
        assert next(received)
        cancelled.cancel()
        list(received)  # ends quietly
    finally:
        relay.stop()
