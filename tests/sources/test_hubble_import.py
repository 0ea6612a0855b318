"""Importing Hubble files: every framing and naming the CLI and exporters produce, and bad input."""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import FIXTURES, ROOT, SAMPLE_FLOWS, Run, shared_captures

from synth.base.errors import BadRecord
from synth.sources.hubble.files import HubbleFileSource, parse_time_ns
from synth.sources.hubble.semantics import ReplyTracker
from synth.sources.reader import InputFile
from synth.store.dataset import Store
from synth.store.schema import FLOW_SCHEMA

HUBBLE = FIXTURES / "hubble"


def read_all(path: str | Path, **options: Any) -> tuple[pa.Table, HubbleFileSource]:
    with InputFile(str(path)) as input_file:
        source = HubbleFileSource(input_file, **options)
        batches = list(source.batches())
    return pa.Table.from_batches(batches, schema=FLOW_SCHEMA), source


def camel(value: Any) -> Any:
    """Rename every snake_case key to lowerCamelCase, as protojson does without UseProtoNames."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def test_every_shared_capture_imports_without_skips() -> None:
    for path in shared_captures():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        table, source = read_all(path)
        assert source.stats.skipped == 0, (path.name, source.stats.skips)
        assert source.stats.records == len(lines)
        assert table.num_rows + sum(source.stats.other_events.values()) == len(lines)


def test_sample_flows_import_with_lost_events_counted_not_stored() -> None:
    total_lost = 0
    for path in SAMPLE_FLOWS:
        table, source = read_all(path)
        assert source.stats.skipped == 0
        assert source.stats.other_events["lost_events"] == 3
        assert source.stats.lost_events > 0
        assert table.num_rows == source.stats.flows
        total_lost += source.stats.lost_events
    assert total_lost > 0


def test_envelope_fields_map_to_the_flow_schema() -> None:
    table, source = read_all(HUBBLE / "envelope.json")
    rows = table.to_pylist()
    assert source.stats.other_events == {"lost_events": 1, "node_status": 1}
    assert source.stats.lost_events == 424
    request, reply, dns, dropped, egress = rows
    assert (request["src_namespace"], request["dst_namespace"]) == ("shop", "payments")
    assert request["is_reply"] is False and request["dst_port"] == 8443 and request["protocol"] == "TCP"
    assert request["src_workload"] == "Deployment/checkout"
    assert ("app", "checkout") in request["src_labels"]
    assert ("kubernetes.io/metadata.name", "shop") in request["src_ns_labels"]
    assert not any(k.startswith(("io.cilium", "io.kubernetes")) for k, _ in request["src_labels"])
    assert request["dst_service"] == "payments/api"
    assert reply["is_reply"] is True
    assert dns["dns_query"] and dns["dns_answers"]
    assert (
        dropped["verdict"] == "dropped"
        and dropped["drop_reason"] == "POLICY_DENIED"
        and dropped["is_reply"] is not True
    )
    assert egress["dst_kind"] == "world" and egress["dst_names"]


def test_legacy_bare_flows_and_deprecated_reply(tmp_path: Path) -> None:
    table, source = read_all(HUBBLE / "legacy.json")
    assert source.stats.skipped == 0
    assert table.column("is_reply").to_pylist()[0] is True


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda lines: "[\n" + ",\n".join(lines) + "\n]\n", id="json-array"),
        pytest.param(lambda lines: "".join(json.dumps(json.loads(x), indent=2) + "\n" for x in lines), id="pretty"),
        pytest.param(lambda lines: "\n".join(json.dumps(camel(json.loads(x))) for x in lines) + "\n", id="camel-case"),
        pytest.param(lambda lines: "\r\n".join(lines) + "\r\n", id="crlf"),
    ],
)
def test_other_framings_and_namings_give_the_same_rows(tmp_path: Path, transform: Callable[[list[str]], str]) -> None:
    lines = (HUBBLE / "envelope.json").read_text().splitlines()
    expected, _ = read_all(HUBBLE / "envelope.json")
    path = tmp_path / "flows.json"
    path.write_text(transform(lines))
    table, source = read_all(path)
    assert source.stats.skipped == 0, source.stats.skips
    assert table.to_pylist() == expected.to_pylist()


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    expected, _ = read_all(HUBBLE / "envelope.json")
    path = tmp_path / "flows.data"
    path.write_bytes(gzip.compress((HUBBLE / "envelope.json").read_bytes()))
    table, _ = read_all(path)
    assert table.to_pylist() == expected.to_pylist()


def test_tolerates_unknown_fields_enums_extensions_and_64_bit_strings(tmp_path: Path) -> None:
    record = json.loads((HUBBLE / "envelope.json").read_text().splitlines()[0])
    flow = record["flow"]
    flow["extensions"] = {"@type": "type.googleapis.com/vendor.Unknown", "x": 1}
    flow["brand_new_field"] = {"nested": [1, 2]}
    flow["trace_observation_point"] = "SOMEWHERE_NEW"
    flow["socket_cookie"] = "18446744073709551615"
    flow["verdict"] = 1  # an enum by number
    flow["l4"]["TCP"]["destination_port"] = "8443"  # Go protojson accepts quoted integers
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(record) + "\n")
    table, source = read_all(path)
    assert source.stats.skipped == 0
    row = table.to_pylist()[0]
    assert (row["verdict"], row["dst_port"]) == ("forwarded", 8443)


def test_reply_direction_is_inferred_for_flows_that_do_not_say(tmp_path: Path) -> None:
    request = json.loads((HUBBLE / "envelope.json").read_text().splitlines()[0])["flow"]
    request.pop("is_reply")
    syn = json.loads(json.dumps(request))
    syn["l4"]["TCP"]["flags"] = {"SYN": True}
    answer = json.loads(json.dumps(request))  # same connection, the server's packet back, direction unknown
    answer["IP"] = {"source": request["IP"]["destination"], "destination": request["IP"]["source"]}
    tcp = request["l4"]["TCP"]
    answer["l4"] = {"TCP": {"source_port": tcp["destination_port"], "destination_port": tcp["source_port"]}}
    syn_ack = json.loads(json.dumps(answer))
    syn_ack["l4"]["TCP"]["flags"] = {"SYN": True, "ACK": True}
    path = tmp_path / "flows.json"
    path.write_text("\n".join(json.dumps(x) for x in (answer, syn, syn_ack, answer)) + "\n")
    table, _ = read_all(path)
    # The first packet is judged by the rest of its batch: no order is assumed.
    assert table.column("is_reply").to_pylist() == [True, False, True, True]


def _connections(first: int, count: int, *, reply: bool | None) -> pa.Table:
    """`count` TCP packets of distinct connections (client 10.0.x.y:port to 10.9.0.1:80), requests or replies."""
    clients = [f"10.0.{n // 250 % 250}.{n % 250}" for n in range(first, first + count)]
    ports = [1024 + n // 62_500 for n in range(first, first + count)]
    server, service = ["10.9.0.1"] * count, [80] * count
    src_ip, dst_ip = (server, clients) if reply else (clients, server)
    src_port, dst_port = (service, ports) if reply else (ports, service)
    return pa.table({"is_reply": pa.array([reply] * count, pa.bool_()), "src_ip": src_ip, "dst_ip": dst_ip,
                     "src_port": pa.array(src_port, pa.int32()), "dst_port": pa.array(dst_port, pa.int32())})


def test_reply_tracking_remembers_connections_across_tables_within_its_bound() -> None:
    """A collection's tracker lives for days: it keeps at most about `limit` connections, forgets the oldest,
    and still tells the replies of the recent ones apart however many tables it has seen."""
    tracker = ReplyTracker(limit=100_000)
    for start in range(0, 300_000, 20_000):  # requests of 300,000 connections, 15 tables
        assert tracker.resolve_table(_connections(start, 20_000, reply=False)).column("is_reply").null_count == 0
        known = tracker.requests
        assert known is not None and known.num_rows <= 100_000 * 5 // 4 + 20_000
    unmarked = pa.concat_tables([_connections(0, 1_000, reply=None), _connections(299_000, 1_000, reply=None)])
    answers = pa.concat_tables([_connections(0, 1_000, reply=True), _connections(299_000, 1_000, reply=True)])
    answers = answers.set_column(0, "is_reply", pa.nulls(2_000, pa.bool_()))
    assert tracker.resolve_table(unmarked).column("is_reply").to_pylist() == [None] * 1_000 + [False] * 1_000
    assert tracker.resolve_table(answers).column("is_reply").to_pylist() == [None] * 1_000 + [True] * 1_000


def test_time_parsing_keeps_nanoseconds_and_accepts_offsets() -> None:
    assert parse_time_ns("1970-01-01T00:20:34.567800Z") == 1234_567_800_000
    assert parse_time_ns("2021-06-16T16:52:13.136834446Z") % 1_000_000_000 == 136834446
    assert parse_time_ns("2021-06-16T16:52:13Z") == parse_time_ns("2021-06-16T18:52:13+02:00")


BAD = HUBBLE / "bad"
# file → (exit code, the line the user sees)
BAD_INPUTS = {
    "not-json.txt": (3, "synth: error: {path}:1: not JSON (starts with 'hello world')"),
    "empty.json": (3, "synth: error: {path}: empty input, no records"),
    "blank-lines.json": (3, "synth: error: {path}: empty input, no records"),
    "truncated.json.gz": (
        3,
        "synth: error: {path}: truncated or corrupt gzip data (Compressed file ended before the "
        "end-of-stream marker was reached)",
    ),
    "all-bad.json": (
        3,
        "synth: error: {path}: no flow could be read (2 records skipped; first: {path}:1: field flow: "
        "expected an object, got 3)",
    ),
    "bad-json-line.json": (
        0,
        "  skipped {path}:2: not valid JSON (unexpected end of data: line 1 column 121 (char 120))",
    ),
    "bad-port.json": (0, "  skipped {path}:2: field flow.l4.TCP.destination_port: expected a port number, got 'http'"),
    "bad-time.json": (0, "  skipped {path}:2: field flow.time: not an RFC 3339 timestamp: 'yesterday'"),
    "labels-not-list.json": (
        0,
        "  skipped {path}:2: field flow.source.labels: expected a list of strings, got 'k8s:app=cart'",
    ),
    "not-a-flow.json": (0, "  skipped {path}:2: not a Hubble flow or event (keys: hello)"),
    "not-an-object.json": (0, "  skipped {path}:2: expected a JSON object, got list"),
    "is-reply-string.json": (0, "  skipped {path}:2: field flow.is_reply: expected true or false, got 'yes'"),
    "http-not-object.json": (0, "  skipped {path}:2: field flow.l7.http: expected an object, got 'GET /cart'"),
    "http-method-number.json": (0, "  skipped {path}:2: field flow.l7.http.method: expected a string, got 5"),
    "missing-time.json": (0, "  skipped {path}:2: field time: missing (neither the flow nor its envelope has a time)"),
}


def test_every_bad_input_fixture_has_an_expected_message() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(BAD_INPUTS)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_its_exact_message(name: str, tmp_path: Path, synth: Callable[..., Run]) -> None:
    code, message = BAD_INPUTS[name]
    path = BAD / name
    store = tmp_path / "store"
    result = synth("import", "hubble", path, "--store", store)
    assert result.code == code
    assert message.format(path=path) in result.err.splitlines()
    assert "Traceback" not in result.err
    flows = sum(b.num_rows for b in Store(str(store)).read())
    assert flows == (1 if code == 0 else 0)  # skips keep the good line; errors write nothing
    assert not (store / ".staging").exists() or not any((store / ".staging").iterdir())


@pytest.mark.parametrize("name", [n for n, (code, _) in BAD_INPUTS.items() if code == 0])
def test_strict_stops_at_the_first_bad_record_and_writes_nothing(
    name: str, tmp_path: Path, synth: Callable[..., Run]
) -> None:
    store = tmp_path / "store"
    result = synth("import", "hubble", BAD / name, "--strict", "--store", store)
    expected = BAD_INPUTS[name][1].strip().removeprefix("skipped ").format(path=BAD / name)
    assert result.code == 3
    assert result.err.strip() == f"synth: error: {expected}"
    assert list(Store(str(store)).read()) == []


def test_strict_raises_bad_record_with_the_place() -> None:
    with pytest.raises(BadRecord) as raised:
        read_all(BAD / "bad-port.json", strict=True)
    assert raised.value.where.endswith("bad-port.json:2")


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path, synth: Callable[..., Run]) -> None:
    missing = synth("import", "hubble", tmp_path / "nope.json", "--store", tmp_path / "s")
    assert (missing.code, missing.err.strip()) == (3, f"synth: error: {tmp_path / 'nope.json'}: no such file")
    directory = synth("import", "hubble", tmp_path, "--store", tmp_path / "s")
    assert directory.code == 3 and "is a directory" in directory.err


def test_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth: Callable[..., Run]) -> None:
    data = (HUBBLE / "envelope.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    result = synth("import", "hubble", "-", "--store", tmp_path / "s")
    assert result.code == 0, result.err
    assert "<stdin>: 5 flows imported" in result.out


def test_the_same_file_twice_is_skipped_unless_forced(tmp_path: Path, synth: Callable[..., Run]) -> None:
    source = tmp_path / "flows.json"
    source.write_bytes((HUBBLE / "envelope.json").read_bytes())
    store = tmp_path / "s"
    assert synth("import", "hubble", source, "--store", store).code == 0
    again = synth("import", "hubble", source, "--store", store)
    assert again.code == 0 and "already imported" in again.out and "--force" in again.out
    copy = tmp_path / "copy.json"  # the same bytes under another name
    copy.write_bytes(source.read_bytes())
    assert "already imported" in synth("import", "hubble", copy, "--store", store).out
    assert sum(b.num_rows for b in Store(str(store)).read()) == 5
    forced = synth("import", "hubble", source, "--force", "--store", store)  # read again: its flows are stored
    assert forced.code == 0 and "0 flows imported (5 more already in the store)" in forced.out
    assert sum(b.num_rows for b in Store(str(store)).read()) == 5


def test_memory_stays_flat_while_streaming(tmp_path: Path) -> None:
    """The source yields bounded batches; nothing accumulates the whole file."""
    line = (HUBBLE / "envelope.json").read_text().splitlines()[0]
    path = tmp_path / "many.json"
    path.write_text((line + "\n") * 5000)
    with InputFile(str(path)) as input_file:
        sizes = [b.num_rows for b in HubbleFileSource(input_file, batch_rows=1000, jobs=1).batches()]
    assert sum(sizes) == 5000 and max(sizes) <= 1000


def test_the_number_of_threads_changes_no_row_and_no_order(tmp_path: Path) -> None:
    lines = [line for path in SAMPLE_FLOWS for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    path = tmp_path / "flows.json"
    path.write_text("\n".join(lines[:6000]) + "\n")
    results = []
    for jobs in (1, 2):
        with InputFile(str(path)) as input_file:
            source = HubbleFileSource(input_file, jobs=jobs, block_size=1 << 20)
            results.append((pa.Table.from_batches(list(source.batches()), schema=FLOW_SCHEMA), source.stats))
    (one, one_stats), (two, two_stats) = results
    assert one.equals(two)
    assert (one_stats.flows, one_stats.records, one_stats.lost_events) == (two_stats.flows, two_stats.records,
                                                                           two_stats.lost_events)


def test_fast_and_general_paths_give_identical_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [HUBBLE / "envelope.json", HUBBLE / "legacy.json", *SAMPLE_FLOWS]
    fast = [read_all(path)[0] for path in files]
    monkeypatch.setattr("synth.sources.hubble.files.fast_decode", lambda line: None)
    general = [read_all(path)[0] for path in files]
    for path, a, b in zip(files, fast, general, strict=True):
        assert sorted(a.to_pylist(), key=repr) == sorted(b.to_pylist(), key=repr), path.name


def test_a_calico_file_given_to_import_hubble_points_at_import_calico(
    synth: Callable[..., Run], tmp_path: Path
) -> None:
    calico = ROOT / "sample_flows" / "calico-flows.log.gz"
    result = synth("import", "hubble", calico, "--store", tmp_path / "store")
    assert result.code == 3
    assert result.err == (
        f"synth: error: {calico}: no flow could be read (4881 records skipped; first: {calico}:1: a Calico flowlog "
        "record, not a Hubble flow: import it with `synth import calico`)\n"
    )


def test_ctrl_c_while_duckdb_parses_is_an_interrupt_not_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB turns the SIGINT it sees into its own exception: that must stop the import like any Ctrl-C."""
    import duckdb

    from synth.sources.native import BlockReader

    reader = BlockReader(threads=1)

    class Interrupted:
        def sql(self, *args: object, **kwargs: object) -> None:
            raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

        def interrupt(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(reader, "_connection", Interrupted())
    with pytest.raises(KeyboardInterrupt):
        reader.read("SELECT 1", b"{}\n")
    reader.close()
