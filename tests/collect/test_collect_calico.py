"""Live collection from Calico OSS Goldmane (the stand-in `synth.testing.goldmane`, in process on 127.0.0.1).

The stand-in keeps flows per key and 15-second bucket and answers List and Stream as Goldmane does.
The flows are the Goldmane emitter lines of tests/fixtures/calico/goldmane.ndjson, repeated over
many buckets; the stored rows must be the ones `synth import calico` stores for the same lines,
whatever faults happen.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from collecting import Collection, CollectorProcess
from conftest import FIXTURES, ROOT, Run
from google.protobuf import json_format

from synth._proto.goldmane import api_pb2
from synth.base.errors import CollectError
from synth.collect.calico import CalicoOptions, collect_calico
from synth.collect.loop import summary_lines
from synth.sources.calico.stream import GoldmaneDecoder, flow_dict, tls_options
from synth.sources.columns import FlowColumns
from synth.store.dataset import Store
from synth.testing import goldmane as fake_goldmane
from synth.testing.goldmane import FakeGoldmane
from synth.testing.pki import certificate, key_pem, new_key

PLAIN = tls_options(insecure_plaintext=True)
FIRST_BUCKET = 1795168800  # the fixture's first start_time (2026-11-20T10:00:00Z)


def _lines(buckets: int, offset: int = 0) -> list[dict[str, Any]]:
    """The fixture's emitter lines shifted over `buckets` 15-second buckets (from bucket `offset` on)."""
    base = [json.loads(line) for line in (FIXTURES / "calico" / "goldmane.ndjson").read_text().splitlines()]
    lines = []
    for k in range(offset, offset + buckets):
        for line in base:
            moved = json.loads(json.dumps(line))
            moved["start_time"] += 15 * k
            moved["end_time"] += 15 * k
            lines.append(moved)
    return lines


def _flow(line: dict[str, Any]) -> api_pb2.Flow:
    return json_format.ParseDict(line, api_pb2.Flow())


@pytest.fixture
def goldmane() -> Iterator[Callable[..., tuple[FakeGoldmane, str]]]:
    started: list[tuple[FakeGoldmane, grpc.Server]] = []

    def make(
        flows: Sequence[api_pb2.Flow] = (), tls: tuple[bytes, bytes, bytes] | None = None
    ) -> tuple[FakeGoldmane, str]:
        fake = FakeGoldmane(flows)
        server, port = fake_goldmane.start(fake, tls=tls)
        started.append((fake, server))
        return fake, f"127.0.0.1:{port}"

    yield make
    for fake, server in started:
        fake_goldmane.stop(server, fake)


def _rows(store: Path) -> list[tuple[tuple[str, str], ...]]:
    rows = [row for batch in Store(str(store)).read() for row in batch.to_pylist()]
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items())) for row in rows)


Key = tuple[int, str, str, str]


def _batch_keys(batch: pa.RecordBatch) -> Counter[Key]:
    """(time, source pod, destination pod or workload, direction) of each row, with multiplicity."""
    columns = [batch.column(name).to_pylist() for name in ("src_pod", "dst_pod", "dst_workload", "direction")]
    times = batch.column("time").cast(pa.int64()).to_pylist()
    return Counter((t, str(s), str(dp or dw), d) for t, s, dp, dw, d in zip(times, *columns, strict=True))


def _keys(store: Path) -> Counter[Key]:
    """The keys of every stored row (one row per flow when collected with compaction off)."""
    keys: Counter[Key] = Counter()
    for batch in Store(str(store)).read(columns=["time", "src_pod", "dst_pod", "dst_workload", "direction"]):
        keys.update(_batch_keys(batch))
    return keys


def _expected_keys(lines: list[dict[str, Any]]) -> Counter[Key]:
    cols, decoder = FlowColumns(), GoldmaneDecoder()
    decoder.take(cols, [api_pb2.FlowResult(id=i, flow=_flow(line)) for i, line in enumerate(lines)])
    return _batch_keys(decoder.finish(cols))


def _window(buckets: int) -> dict[str, int]:
    return {"since_ns": FIRST_BUCKET * 10**9, "until_ns": (FIRST_BUCKET + 15 * buckets) * 10**9}


# ----- the backlog, compared with the file importer


def test_list_backlog_pages_bucket_by_bucket_and_equals_the_importer(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], tmp_path: Path, synth: Callable[..., Run]
) -> None:
    lines = _lines(12)
    fake, address = goldmane([_flow(line) for line in lines])
    ndjson = tmp_path / "goldmane.ndjson"
    ndjson.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert synth("import", "calico", ndjson, "--store", tmp_path / "imported").code == 0

    said: list[str] = []
    options = CalicoOptions(server=address, tls=PLAIN, page_size=2, **_window(12 + 3))
    report = collect_calico(Store(str(tmp_path / "live")), options, notify=said.append)
    assert report.stopped == "stream ended" and report.flows == len(lines) and report.duplicates == 0
    assert summary_lines(report) == [f"{address}: 60 flows stored in 1 file, 2026-11-20T10:00:00Z .. "
                                     "2026-11-20T10:03:15Z (stream ended)"]  # fmt: skip
    assert said == [f"{address}: Goldmane holds 5 flow keys from 2026-11-20T10:00:00Z on, listing them in 15-second "
                    "buckets",
                    # without a terminal (a pod's log), each flush says what it stored
                    f"{address}: stored 60 flows (60 in total), last flow 2026-11-20T10:03:15Z"]  # fmt: skip
    assert _rows(tmp_path / "live") == _rows(tmp_path / "imported")
    # The window once (its first and last page), then every bucket page by page (5 flows, 2 a page).
    first, last, *buckets = fake.list_requests
    assert (first.page, last.page, first.page_size) == (0, 2, 2)
    assert first.start_time_gte == FIRST_BUCKET and first.start_time_lt == FIRST_BUCKET + 15 * 15
    assert [(r.start_time_lt - r.start_time_gte) for r in buckets] == [15] * len(buckets)
    assert {r.start_time_gte for r in buckets} == {FIRST_BUCKET + 15 * k for k in range(15)}
    assert max(r.page for r in buckets) == 2 and all(list(r.sort_by) == [api_pb2.SortOption()] for r in buckets)
    facts = max(Store(str(tmp_path / "live")).facts(), key=lambda f: f["flows"])  # type: ignore[arg-type,return-value]
    assert facts["source"] == "calico" and facts["server_status"] == {"keys": 5, "oldest_s": FIRST_BUCKET}


def test_namespace_filter_and_an_empty_window(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], tmp_path: Path
) -> None:
    _, address = goldmane([_flow(line) for line in _lines(4)])
    options = CalicoOptions(server=address, tls=PLAIN, namespaces=("payments",), **_window(6))
    report = collect_calico(Store(str(tmp_path / "a")), options)
    assert report.flows == 4  # one payments flow per bucket
    said: list[str] = []
    empty = CalicoOptions(server=address, tls=PLAIN, since_ns=10**18, until_ns=10**18 + 10**12)
    assert collect_calico(Store(str(tmp_path / "b")), empty, notify=said.append).flows == 0
    assert "no flows in the window" in said[0]


def test_bad_flows_are_skips_with_the_importers_message() -> None:
    line = _lines(1)[3]  # an end-of-tier deny into a NetworkSet
    assert flow_dict(_flow(line))["Key"]["action"] == 2  # type: ignore[index]  # enums as numbers, as the emitter
    decoder, cols = GoldmaneDecoder(), FlowColumns()
    bad = _flow(line)
    bad.Key.proto = "icmp7"
    decoder.take(cols, [api_pb2.FlowResult(id=9, flow=bad), api_pb2.FlowResult(id=10), b"\xff\xff"])
    assert decoder.stats.skipped == 3
    assert [s.where for s in decoder.stats.skips] == ["flow id 9", "flow id 10", "stream"]
    assert decoder.stats.skips[0].reason == 'field Key.proto: unknown protocol "icmp7"'


# ----- following, faults


def test_stream_drop_resumes_from_the_newest_start_without_duplicates(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], tmp_path: Path
) -> None:
    backlog = _lines(10)
    live = sorted(_lines(10, offset=10), key=lambda line: line["start_time"])  # Goldmane streams bucket by bucket
    fake, address = goldmane([_flow(line) for line in backlog])
    fake.break_after = [7]  # the first Stream breaks after 7 results (the resent last bucket and 2 fed flows)
    # The collector opens its Stream from the newest start it has decoded, in another thread than the one
    # that lists: hold the List past the backlog's end until the whole backlog is decoded.
    fake.hold_quiet_lists = backlog_decoded = threading.Event()
    options = CalicoOptions(server=address, tls=PLAIN, since_ns=FIRST_BUCKET * 10**9, follow=True,
                            request_timeout_s=120, retry_initial_s=0.05, compact=False)  # fmt: skip
    with Collection(collect_calico, tmp_path, options) as collection:
        collection.wait_for_flows(len(backlog))
        backlog_decoded.set()
        assert fake.streaming.wait(30)
        fake.feed([_flow(line) for line in live[:25]])
        collection.wait_for_notice("stream resumed")  # the first Stream broke off, the second one is open
        fake.feed([_flow(line) for line in live[25:]])
        collection.wait_for_flows(len(backlog) + len(live))
        report = collection.finish()
    assert report.stopped == "interrupted"
    assert report.reconnects == 1
    assert report.duplicates >= 5  # the newest bucket, resent by each Stream
    assert _keys(tmp_path) == _expected_keys(backlog + live)
    newest_listed = max(line["start_time"] for line in backlog)
    assert fake.stream_requests[0].start_time_gte == newest_listed
    assert fake.stream_requests[1].start_time_gte >= newest_listed  # the newest start received
    assert all(r.aggregation_interval == 15 for r in fake.stream_requests)


def test_a_refused_list_mid_backlog_is_retried(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], tmp_path: Path
) -> None:
    lines = _lines(6)
    fake, address = goldmane([_flow(line) for line in lines])
    said: list[str] = []
    options = CalicoOptions(server=address, tls=PLAIN, retry_initial_s=0.05, compact=False, **_window(6))

    fake.refuse_lists = {5}  # the window, three buckets, then the fourth bucket's List is refused
    report = collect_calico(Store(str(tmp_path)), options, notify=said.append)
    until = FIRST_BUCKET + 15 * 6
    assert _keys(tmp_path) == _expected_keys([line for line in lines if line["start_time"] < until])
    assert report.reconnects == 1 and report.stopped == "stream ended"
    assert [line for line in said if ": stored " not in line] == [
        said[0], f"{address}: stream lost (UNAVAILABLE: fake goldmane: not ready); reconnecting in 0.1s",
        f"{address}: stream resumed"]  # fmt: skip
    resumed = fake.list_requests[5]  # the window again, from the newest bucket received
    assert (resumed.start_time_gte, resumed.start_time_lt) == (FIRST_BUCKET + 30, until)


def test_follow_then_sigterm_flushes_and_exits_0(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], tmp_path: Path
) -> None:
    backlog, live = _lines(4), _lines(4, offset=4)
    fake, address = goldmane([_flow(line) for line in backlog])
    args = ("calico", "--server", address, "--insecure-plaintext", "--store", str(tmp_path), "--follow",
            "--flush-interval", "10m")  # fmt: skip
    with CollectorProcess(*args) as collector:
        assert fake.streaming.wait(30)
        fake.feed([_flow(line) for line in live])
        collector.wait_for_flows(len(backlog) + len(live))
        assert not Store(str(tmp_path)).files()  # every flow taken, none flushed yet: the interval is 10 minutes
        code, out, err = collector.stop(signal.SIGTERM)
    assert code == 0, err
    assert "(interrupted)" in out
    # Compacted per minute: the same edges, and the counts add up.
    assert {key[1:] for key in _keys(tmp_path)} == {key[1:] for key in _expected_keys(backlog + live)}
    stored = sum(sum(b.column("count").to_pylist()) for b in Store(str(tmp_path)).read(columns=["count"]))
    assert stored == sum(line.get("num_connections_live") or line.get("num_connections_started") or 1
                         for line in backlog + live)  # fmt: skip


# ----- TLS and unreachable servers


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA as in goldmane-key-pair, Goldmane's server certificate, a node-certs client pair, another CA."""
    out = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = (new_key() for _ in range(4))
    pems = {
        "ca.crt": certificate("tigera-ca", ca_key, None, True),
        "other-ca.crt": certificate("other-ca", other_key, None, True),
        "goldmane.crt": certificate("goldmane.calico-system.svc", server_key, ("tigera-ca", ca_key), False),
        "goldmane.key": key_pem(server_key),
        "node.crt": certificate("calico-node", client_key, ("tigera-ca", ca_key), False),
        "node.key": key_pem(client_key),
    }
    files = {}
    for name, pem in pems.items():
        files[name] = out / name
        files[name].write_bytes(pem)
    return files


def test_mutual_tls_and_a_wrong_ca_refused_in_one_line(
    goldmane: Callable[..., tuple[FakeGoldmane, str]], pki: dict[str, Path], tmp_path: Path,
    synth: Callable[..., Run],
) -> None:  # fmt: skip
    tls = (pki["goldmane.key"].read_bytes(), pki["goldmane.crt"].read_bytes(), pki["ca.crt"].read_bytes())
    _, address = goldmane([_flow(line) for line in _lines(2)], tls=tls)
    common = ["collect", "calico", "--server", address, "--tls-server-name", "goldmane.calico-system.svc",
              "--since", "2026-11-20T10:00:00Z", "--until", "2026-11-20T10:01:00Z"]  # fmt: skip
    client = ["--tls-client-cert-file", pki["node.crt"], "--tls-client-key-file", pki["node.key"]]
    done = synth(*common, "--tls-ca-cert-files", pki["ca.crt"], *client, "--store", tmp_path / "ok")
    assert done.code == 0, done.err
    assert done.out.startswith(f"{address}: 10 flows stored in 1 file, 2026-11-20T10:00:00Z .. ")

    refused = synth(*common, "--tls-ca-cert-files", pki["other-ca.crt"], *client, "--store", tmp_path / "no")
    assert refused.code == 3
    assert refused.err.count("\n") == 1
    assert refused.err.startswith(f"synth: error: {address}: TLS handshake failed (")

    no_client_cert = synth(*common, "--tls-ca-cert-files", pki["ca.crt"], "--store", tmp_path / "no")
    assert no_client_cert.code == 3
    assert no_client_cert.err.count("\n") == 1

    plain = synth(*common, "--insecure-plaintext", "--tls-ca-cert-files", pki["ca.crt"], "--store", tmp_path / "no")
    assert plain.code == 2


def test_unreachable_server_and_bad_window_are_one_line(synth: Callable[..., Run], tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed
    done = synth("collect", "calico", "--server", f"127.0.0.1:{port}", "--insecure-plaintext", "--request-timeout",
                 "2s", "--store", tmp_path)  # fmt: skip
    assert done.code == 3
    assert done.err.count("\n") == 1
    assert done.err.startswith(f"synth: error: 127.0.0.1:{port}: cannot reach Goldmane (UNAVAILABLE")
    with pytest.raises(CollectError, match="cannot reach Goldmane"):
        collect_calico(Store(str(tmp_path)), CalicoOptions(server=f"127.0.0.1:{port}", request_timeout_s=1))

    window = synth("collect", "calico", "--server", "127.0.0.1:1", "--follow", "--until", "1h", "--store", tmp_path)
    assert window.code == 2


# ----- scripts/serve_goldmane.py, the stand-in a user can run

SERVE_GOLDMANE = ROOT / "scripts" / "serve_goldmane.py"


def _serve_goldmane(*args: str | Path) -> subprocess.Popen[str]:
    command = [sys.executable, str(SERVE_GOLDMANE), "--port", "0", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _announced_address(server: subprocess.Popen[str], seconds: float) -> str:
    """The address the script says it serves on (its first line), waiting at most `seconds`."""
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], seconds)
    assert ready, f"serve_goldmane.py said nothing within {seconds:g}s"
    line = server.stdout.readline()
    found = re.search(r" on (127\.0\.0\.1:\d+) over ", line)
    assert found, line + (server.stderr.read() if server.stderr and server.poll() is not None else "")
    return found.group(1)


@pytest.mark.parametrize("transport", ["plaintext", "mutual-tls"])
def test_serve_goldmane_script_serves_synth_collect_calico(
    transport: str, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    lines = _lines(1)
    served = [*lines, *(json.loads(json.dumps(line)) for line in lines)]
    for line in served[len(lines) :]:  # --repeat 2: the copy starts where the file's three buckets end
        line["start_time"] += 45
        line["end_time"] += 45
    ndjson = tmp_path / "served.ndjson"
    ndjson.write_text("".join(json.dumps(line) + "\n" for line in served))
    assert synth("import", "calico", ndjson, "--store", tmp_path / "imported").code == 0

    pki = tmp_path / "pki"
    extra = ["--make-certs", pki] if transport == "mutual-tls" else []
    server = _serve_goldmane("--repeat", "2", FIXTURES / "calico" / "goldmane.ndjson", *extra)
    try:
        address = _announced_address(server, 60)
        tls: list[str | Path] = ["--insecure-plaintext"]
        if transport == "mutual-tls":
            tls = ["--tls-server-name", "goldmane.calico-system.svc", "--tls-ca-cert-files", pki / "ca.crt",
                   "--tls-client-cert-file", pki / "client.crt", "--tls-client-key-file", pki / "client.key"]
        # Without --follow/--duration the collection ends once Goldmane's backlog is listed: bounded by itself.
        done = synth("collect", "calico", "--server", address, *tls, "--store", tmp_path / "live")
    finally:
        server.kill()
        server.communicate()
    assert done.code == 0, done.err
    assert done.out == (f"{address}: 10 flows stored in 1 file, 2026-11-20T10:00:00Z .. 2026-11-20T10:01:15Z "
                        "(stream ended)\n")  # fmt: skip
    assert _rows(tmp_path / "live") == _rows(tmp_path / "imported")


def test_serve_goldmane_script_refuses_flows_goldmane_does_not_serve() -> None:
    server = _serve_goldmane(ROOT / "sample_flows" / "calico-flows.log.gz")
    try:
        _, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 2
    assert err == (
        f"serve_goldmane: error: {ROOT / 'sample_flows' / 'calico-flows.log.gz'}:1: flowlog data, not Goldmane "
        "flows; Goldmane serves its own flows only (emitter NDJSON or protojson; import other Calico files with "
        "`synth import calico`)\n"
    )


# ----- the proto subset: Goldmane's numbers (docs: reference/calico.md section 5.1)

GOLDMANE_FIELDS = {
    "goldmane.FlowListRequest": {"start_time_gte": 1, "start_time_lt": 2, "page": 3, "page_size": 4, "sort_by": 5,
                                 "filter": 6, "aggregation_interval": 7},
    "goldmane.FlowListResult": {"meta": 1, "flows": 2},
    "goldmane.ListMetadata": {"totalPages": 1, "totalResults": 2},
    "goldmane.FlowStreamRequest": {"start_time_gte": 1, "filter": 2, "aggregation_interval": 3},
    "goldmane.FlowResult": {"id": 1, "flow": 2},
    "goldmane.Flow": {"Key": 1, "start_time": 2, "end_time": 3, "source_labels": 4, "dest_labels": 5, "packets_in": 6,
                      "packets_out": 7, "bytes_in": 8, "bytes_out": 9, "num_connections_started": 10,
                      "num_connections_completed": 11, "num_connections_live": 12},
    "goldmane.FlowKey": {"source_name": 1, "source_namespace": 2, "source_type": 3, "dest_name": 4,
                         "dest_namespace": 5, "dest_type": 6, "dest_port": 7, "dest_service_name": 8,
                         "dest_service_namespace": 9, "dest_service_port_name": 10, "dest_service_port": 11,
                         "proto": 12, "reporter": 13, "action": 14, "policies": 15},
    "goldmane.PolicyTrace": {"enforced_policies": 1, "pending_policies": 2},
    "goldmane.PolicyHit": {"kind": 1, "namespace": 2, "name": 3, "tier": 4, "action": 5, "policy_index": 6,
                           "rule_index": 7, "trigger": 8},
    "goldmane.Filter": {"source_names": 1, "source_namespaces": 2, "dest_names": 3, "dest_namespaces": 4,
                        "protocols": 5, "dest_ports": 6, "actions": 7, "policies": 8, "reporter": 9,
                        "pending_actions": 10},
    "goldmane.StringMatch": {"value": 1, "type": 2},
    "goldmane.PortMatch": {"port": 1},
    "goldmane.PolicyMatch": {"kind": 1, "tier": 2, "namespace": 3, "name": 4, "action": 5},
    "goldmane.SortOption": {"sort_by": 1},
}  # fmt: skip


@pytest.mark.parametrize("message", sorted(GOLDMANE_FIELDS))
def test_field_numbers_are_goldmane_ones(message: str) -> None:
    descriptor = api_pb2.DESCRIPTOR.pool.FindMessageTypeByName(message)
    assert {f.name: f.number for f in descriptor.fields} == GOLDMANE_FIELDS[message]


def test_enums_and_the_service() -> None:
    assert [(v.name, v.number) for v in api_pb2.PolicyKind.DESCRIPTOR.values][-3:] == [
        ("Profile", 9), ("EndOfTier", 10), ("ClusterNetworkPolicy", 11)
    ]  # fmt: skip
    assert api_pb2.EndpointType.Value("Network") == 4 and api_pb2.Reporter.Value("Dst") == 2
    assert api_pb2.SortBy.Value("SourceType") == 6 and api_pb2.MatchType.Value("Fuzzy") == 1
    assert api_pb2.Action.Value("Pass") == 3
    service = api_pb2.DESCRIPTOR.services_by_name["Flows"]
    assert service.full_name == "goldmane.Flows"
    assert {m.name: m.server_streaming for m in service.methods} == {"List": False, "Stream": True}
