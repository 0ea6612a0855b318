"""Live collection from a Hubble Observer gRPC server (an in-process fake relay on 127.0.0.1).

The fake serves the sample flows (or the shared captures) converted from JSON to protobuf; the
stored rows must be the ones `synth import` stores for the same JSON, whatever faults happen.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from collecting import Collection, CollectorProcess, wait_for
from conftest import ROOT, SAMPLE_FLOWS, SHARED_CAPTURES, Run
from disks import small_disk
from processes import alive, children, kill_all

from synth._proto.observer import observer_pb2
from synth.base.errors import CollectError
from synth.collect.hubble import CollectOptions, TlsOptions, collect_hubble, summary_lines
from synth.store.dataset import Store
from synth.testing import hubble_relay
from synth.testing.pki import certificate, key_pem, new_key


def _input_files() -> list[Path]:
    files = list(SAMPLE_FLOWS) + sorted(SHARED_CAPTURES.glob("*.json"))
    if not files:
        pytest.skip("neither sample_flows/ nor ../shared/data/hubble-captures is present")
    return files


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return _input_files()


@pytest.fixture(scope="module")
def responses(files: list[Path]) -> list[hubble_relay.Response]:
    return hubble_relay.load_responses(files)


def _flows(responses: list[hubble_relay.Response]) -> list[hubble_relay.Response]:
    return [r for r in responses if observer_pb2.GetFlowsResponse.FromString(r[1]).HasField("flow")]


@dataclass
class Relay:
    observer: hubble_relay.FakeObserver
    address: str
    port: int
    server: object

    def restart(self) -> None:
        self.server = hubble_relay.start(self.observer, self.port)[0]


@pytest.fixture
def relay_factory() -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def make(responses: list[hubble_relay.Response], *, tls: object = None, live_backlog: bool = False) -> Relay:
        observer = hubble_relay.FakeObserver(responses, nodes=["node-a", "node-b"], live_backlog=live_backlog)
        server, port = hubble_relay.start(observer, tls=tls)  # type: ignore[arg-type]
        relay = Relay(observer, f"127.0.0.1:{port}", port, server)
        started.append(relay)
        return relay

    yield make
    for relay in started:
        hubble_relay.stop(relay.server, relay.observer)  # type: ignore[arg-type]


def _rows(store: Path) -> list[tuple[tuple[str, str], ...]]:
    rows = [row for batch in Store(str(store)).read() for row in batch.to_pylist()]
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items())) for row in rows)


def _flow_keys(store: Path) -> Counter[tuple[int, str]]:
    """(time, node) of every stored flow, with multiplicity (rows stored with compaction off)."""
    keys: Counter[tuple[int, str]] = Counter()
    for batch in Store(str(store)).read(columns=["time", "node", "count"]):
        times = batch.column("time").cast(pa.int64()).to_pylist()
        nodes, counts = batch.column("node").to_pylist(), batch.column("count").to_pylist()
        for moment, node, count in zip(times, nodes, counts, strict=True):
            keys[(moment, node)] += count
    return keys


def _count(responses: list[hubble_relay.Response]) -> int:
    """The flows a collector stores of these responses."""
    return sum(_served_keys(responses).values())


def _served_keys(responses: list[hubble_relay.Response]) -> Counter[tuple[int, str]]:
    keys: Counter[tuple[int, str]] = Counter()
    for moment, data in responses:
        response = observer_pb2.GetFlowsResponse.FromString(data)
        if response.HasField("flow") and response.flow.Type != 3:
            keys[(moment, response.flow.node_name or response.node_name)] += 1
    return keys


# ----- a full window, compared with the file importer


@pytest.fixture(scope="module")
def imported(files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synth.cli import main

    store = tmp_path_factory.mktemp("imported")
    assert main(["import", "hubble", *map(str, files), "--store", str(store)]) == 0
    return store


def test_full_window_stores_the_rows_the_importer_stores(
    responses: list[hubble_relay.Response], imported: Path, relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    relay = relay_factory(responses)
    said: list[str] = []
    report = collect_hubble(Store(str(tmp_path)), CollectOptions(server=relay.address), notify=said.append)
    assert report.stopped == "stream ended"
    assert said[0].startswith(f"{relay.address}: Hubble 1.19.4-fake, {len(responses):,} of")
    assert _rows(tmp_path) == _rows(imported)
    lost = sum(observer_pb2.GetFlowsResponse.FromString(d).lost_events.num_events_lost for _, d in responses)
    assert report.lost_events == lost
    if lost:
        assert any(line.startswith("warning: ") and "events lost on node" in line for line in summary_lines(report))
    facts = Store(str(tmp_path)).facts()
    final = max(facts, key=lambda f: f["flows"])  # type: ignore[arg-type,return-value]
    assert final["lost_events"] == lost
    assert final["server_status"]["version"] == "1.19.4-fake"  # type: ignore[index]
    assert final["node_states"] == {"NODE_CONNECTED": 2}


def test_following_the_demo_server_generates_the_imported_policies(
    responses: list[hubble_relay.Response], imported: Path, relay_factory: Callable[..., Relay],
    tmp_path: Path, synth: Callable[..., Run],
) -> None:  # fmt: skip
    relay = relay_factory(responses, live_backlog=True)
    with CollectorProcess("hubble", "--server", relay.address, "--follow", "--store", str(tmp_path)) as collector:
        collector.wait_for_flows(_count(responses))
        code, out, err = collector.stop(signal.SIGTERM)
    assert code == 0, err
    assert "(interrupted)" in out
    collected = synth("generate", "--all-namespaces", "--store", tmp_path)
    expected = synth("generate", "--all-namespaces", "--store", imported)
    assert collected.code == expected.code == 0
    assert collected.out == expected.out
    assert collected.out.count("kind: NetworkPolicy") > 0


def test_duration_ends_a_live_collection(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path,
    synth: Callable[..., Run],
) -> None:  # fmt: skip
    relay = relay_factory(responses[:300], live_backlog=True)
    started = time.monotonic()
    done = synth("collect", "hubble", "--server", relay.address, "--duration", "1s", "--store", tmp_path)
    assert done.code == 0, done.err
    assert "(duration reached)" in done.out
    assert time.monotonic() - started >= 1.0  # the wall-clock duration is what ended it


# ----- faults


def test_dropped_stream_and_refused_reconnects_lose_and_duplicate_nothing(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    relay = relay_factory(responses)
    relay.observer.break_after = [len(responses) // 3, len(responses) // 4]
    relay.observer.refuse = 1  # the first stream fails at once; two more break off after some flows
    said: list[str] = []
    options = CollectOptions(server=relay.address, since_ns=0, retry_initial_s=0.05, compact=False)
    report = collect_hubble(Store(str(tmp_path)), options, notify=said.append)
    assert report.reconnects == 3
    assert any("stream lost (UNAVAILABLE: fake relay: connection to the node lost)" in line for line in said)
    assert _flow_keys(tmp_path) == _served_keys(responses)
    assert report.duplicates > 0  # the resume window was sent twice and dropped once
    since = [r.since.ToNanoseconds() for r in relay.observer.requests]
    assert since[:2] == [0, 0] and 0 < since[2] < since[3]


def test_server_restart_during_follow_resumes_without_gaps(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    flows = _flows(responses)
    backlog, live = flows[: len(flows) // 2], flows[len(flows) // 2 :]
    relay = relay_factory(backlog)
    options = CollectOptions(
        server=relay.address, since_ns=0, follow=True, retry_initial_s=0.1, retry_max_s=0.2, compact=False
    )
    with Collection(collect_hubble, tmp_path, options) as collection:
        collection.wait_for_flows(_count(backlog))
        hubble_relay.stop(relay.server, relay.observer)  # type: ignore[arg-type]
        relay.observer.responses.extend(live[:100])  # flows that happened while the relay was down
        collection.wait_for_notice("stream lost")
        before = len(relay.observer.requests)
        relay.restart()
        wait_for(lambda: len(relay.observer.requests) > before, 30, "the collector to reconnect")
        relay.observer.feed(live[100:])
        collection.wait_for_flows(_count(flows))
        report = collection.finish()
    assert report.stopped == "interrupted"
    assert report.reconnects >= 1
    assert _flow_keys(tmp_path) == _served_keys(flows)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pki")
    files = {}
    ca_key, other_ca_key, server_key, client_key = (new_key() for _ in range(4))
    pems = {
        "ca.pem": certificate("synth-test-ca", ca_key, None, True),
        "other-ca.pem": certificate("synth-other-ca", other_ca_key, None, True),
        "server.pem": certificate("relay.hubble-grpc.test", server_key, ("synth-test-ca", ca_key), False),
        "server.key": key_pem(server_key),
        "client.pem": certificate("synth-client", client_key, ("synth-test-ca", ca_key), False),
        "client.key": key_pem(client_key),
    }
    for name, pem in pems.items():
        files[name] = out / name
        files[name].write_bytes(pem)
    return files


def test_mutual_tls_with_a_ca_and_a_wrong_ca_refused(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], pki: dict[str, Path],
    tmp_path: Path, synth: Callable[..., Run],
) -> None:  # fmt: skip
    tls = (pki["server.key"].read_bytes(), pki["server.pem"].read_bytes(), pki["ca.pem"].read_bytes())
    relay = relay_factory(responses[:300], tls=tls)
    common = ["collect", "hubble", "--server", relay.address, "--tls-server-name", "relay.hubble-grpc.test"]
    client = ["--tls-client-cert-file", pki["client.pem"], "--tls-client-key-file", pki["client.key"]]
    done = synth(*common, "--tls", "--tls-ca-cert-files", pki["ca.pem"], *client, "--store", tmp_path / "ok")
    assert done.code == 0, done.err
    assert Store(str(tmp_path / "ok")).files()

    refused = synth(*common, "--tls-ca-cert-files", pki["other-ca.pem"], *client, "--store", tmp_path / "no")
    assert refused.code == 3
    assert refused.err.count("\n") == 1
    assert refused.err.startswith(f"synth: error: {relay.address}: TLS handshake failed (")

    no_client_cert = synth(*common, "--tls-ca-cert-files", pki["ca.pem"], "--store", tmp_path / "no")
    assert no_client_cert.code == 3
    assert no_client_cert.err.count("\n") == 1


def test_allow_insecure_trusts_the_presented_certificate(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], pki: dict[str, Path], tmp_path: Path
) -> None:
    relay = relay_factory(responses[:50], tls=(pki["server.key"].read_bytes(), pki["server.pem"].read_bytes(), None))
    options = CollectOptions(server=relay.address, tls=TlsOptions(allow_insecure=True))
    assert collect_hubble(Store(str(tmp_path)), options).records == 51  # 50 and the relay's node status
    with pytest.raises(CollectError, match="TLS handshake failed"):
        collect_hubble(Store(str(tmp_path)), CollectOptions(server=relay.address, tls=TlsOptions(enabled=True)))


def test_unreachable_server_bad_filter_and_bad_window_are_one_line(synth: Callable[..., Run], tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed
    done = synth("collect", "hubble", "--server", f"127.0.0.1:{port}", "--request-timeout", "2s", "--store", tmp_path)
    assert done.code == 3
    assert done.err.count("\n") == 1
    assert done.err.startswith(f"synth: error: 127.0.0.1:{port}: cannot reach the Hubble server (UNAVAILABLE")

    bad = synth("collect", "hubble", "--server", "127.0.0.1:1", "--allowlist", '{"source_pod": 3}', "--store", tmp_path)
    assert bad.code == 3
    assert bad.err.startswith("synth: error: --allowlist '{\"source_pod\": 3}': not a JSON FlowFilter (")
    assert bad.err.count("\n") == 1

    window = synth("collect", "hubble", "--server", "127.0.0.1:1", "--follow", "--until", "1h", "--store", tmp_path)
    assert window.code == 2


def test_filters_are_sent_as_hubble_builds_them(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    relay = relay_factory(responses[:10])
    options = CollectOptions(
        server=relay.address,
        namespaces=("shop", "payments"),
        verdicts=("dropped",),
        denylist=('{"destination_port": ["53"]}',),
    )
    collect_hubble(Store(str(tmp_path)), options)
    (request,) = relay.observer.requests
    assert [list(f.source_pod) for f in request.whitelist] == [["shop/", "payments/"], []]
    assert [list(f.destination_pod) for f in request.whitelist] == [[], ["shop/", "payments/"]]
    assert all(list(f.verdict) == [2] for f in request.whitelist)
    assert [list(f.destination_port) for f in request.blacklist] == [["53"]]
    assert request.number == 2**64 - 1 and not request.follow


# ----- the collector as a process: signals, kill -9, the store lock


def _collector(relay: Relay, store: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "synth", "collect", "hubble", "--server", relay.address, "--store", str(store)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _locked(store: Path) -> bool:
    lock = store / "writer.lock"
    return lock.exists() and "pid" in lock.read_text()


def test_sigterm_flushes_and_a_second_collector_is_refused(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path,
    synth: Callable[..., Run],
) -> None:  # fmt: skip
    relay = relay_factory(responses[:2000], live_backlog=True)
    args = ("hubble", "--server", relay.address, "--store", str(tmp_path), "--follow", "--flush-interval", "10m")
    with CollectorProcess(*args) as first:
        wait_for(lambda: _locked(tmp_path), 30, "the first collector to take the lock")
        second = synth("collect", "hubble", "--server", relay.address, "--follow", "--store", tmp_path)
        assert second.code == 3
        assert "the store is being written by `synth collect hubble --server " in second.err
        assert f"(pid {first.process.pid} on " in second.err
        first.wait_for_flows(_count(responses[:2000]))
        assert not Store(str(tmp_path)).files()  # every flow taken, none flushed yet: the interval is 10 minutes
        code, out, err = first.stop(signal.SIGTERM)
    assert code == 0, err
    assert "(interrupted)" in out
    stored, served = _flow_keys(tmp_path), _served_keys(responses[:2000])
    assert sum(stored.values()) == sum(served.values())  # compacted: counts add up, times are served ones
    assert set(stored) <= set(served)


def test_kill_9_of_an_idle_collector_leaves_no_process_behind(relay_factory: Callable[..., Relay],
                                                               tmp_path: Path) -> None:
    """Following a stream that sends nothing, the receiver has nothing to hand over: it still notices the
    collector is gone, and with it the forkserver and the resource tracker end."""
    relay = relay_factory([])
    collector = _collector(relay, tmp_path, "--follow")
    descendants: list[int] = []
    try:
        wait_for(lambda: _locked(tmp_path), 30, "the collector to take the lock")

        def receiver_started() -> bool:  # the resource tracker, the forkserver, and the receiver it forked
            descendants[:] = [*children(collector.pid), *(p for c in children(collector.pid) for p in children(c))]
            return len(descendants) >= 3

        wait_for(receiver_started, 30, "the receiver process")
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        wait_for(lambda: not any(alive(pid) for pid in descendants), 15, "the collector's processes to end")
    finally:
        collector.kill()
        kill_all(descendants)  # first: they hold the collector's output pipes open
        collector.communicate()


def test_kill_9_leaves_a_readable_store(
    responses: list[hubble_relay.Response], relay_factory: Callable[..., Relay], tmp_path: Path
) -> None:
    flows = _flows(responses)
    relay = relay_factory([])
    collector = _collector(relay, tmp_path, "--follow", "--flush-interval", "1s", "--flush-flows", "500")
    stop = threading.Event()

    def feed() -> None:
        """Feed 200 flows at a time, each batch once the relay has sent the ones before (until stopped)."""
        for start in range(0, len(flows), 200):
            relay.observer.feed(flows[start : start + 200])
            sent = min(start + 200, len(flows))
            while relay.observer.sent < sent and not stop.is_set():
                stop.wait(0.01)
            if stop.is_set():
                return

    feeder = threading.Thread(target=feed)
    try:
        wait_for(lambda: _locked(tmp_path), 30, "the collector to take the lock")
        feeder.start()
        wait_for(lambda: len(Store(str(tmp_path)).files()) >= 2, 30, "two flushed files")
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
    finally:
        stop.set()
        collector.kill()
        collector.communicate()
        if feeder.is_alive():
            feeder.join()
    stored = _flow_keys(tmp_path)  # every visible file reads cleanly
    assert 0 < sum(stored.values()) <= len(flows)
    assert set(stored) <= set(_served_keys(flows))
    # The lock died with the process; the next collector removes the half-written files it left.
    report = collect_hubble(Store(str(tmp_path)), CollectOptions(server=relay.address, since_ns=0))
    assert report.stopped == "stream ended"
    assert not list(tmp_path.rglob(".*.tmp"))


def test_disk_full_stops_the_collection_keeping_every_flushed_file(
    relay_factory: Callable[..., Relay], tmp_path: Path, synth: Callable[..., Run]
) -> None:
    """A full disk ends the collection (exit 3): the files flushed before are stored whole, nothing half-written."""
    relay = relay_factory(hubble_relay.load_responses([SAMPLE_FLOWS[0]]))
    with small_disk(tmp_path / "disk", 384) as disk:
        store = disk / "store"
        result = synth("collect", "hubble", "--server", relay.address, "--flush-flows", "1000", "--store", store)
        assert result.code == 3, result.err
        message = re.fullmatch(
            rf"synth: error: {store}: cannot write the store: No space left on device; collection stopped: "
            r"the ([\d,]+) flows of earlier flushes are stored, the ([\d,]+) received since were not\n",
            result.err.splitlines(keepends=True)[-1],
        )
        assert message, result.err
        stored, lost = (int(n.replace(",", "")) for n in message.groups())
        assert stored > 0 and lost > 0
        assert sum(_flow_keys(store).values()) == stored  # every visible file reads, each flow once
        assert not [p for p in store.rglob(".*") if p.is_file()]
