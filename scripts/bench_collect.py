"""Benchmark live collection: a fake relay streams flows as fast as it can, `synth collect` stores them.

    python scripts/bench_collect.py [--seconds 20] [--flows FILE.json.gz] [--json]

The server runs in its own process and replays the sample flows endlessly, each with a fresh
timestamp (so none is dropped as a duplicate). The collector runs `synth collect hubble --follow
--duration N` in another process, as a user would. Reported: flows stored per second (rows in the
store / collection time), the collector's peak RSS and CPU time per stored flow (what one core can
sustain, whatever feeds it), and the machine's CPU count. On a small machine the fake server, a
Python gRPC server sending one message per flow, competes for the same cores and is usually the
limit: compare `flows_per_s` with 1e6 / `collector_cpu_us_per_flow`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc

from synth._proto.observer import observer_pb2
from synth.testing import hubble_relay

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FLOWS = ROOT / "sample_flows" / "hubble-flows.json.gz"


def _retimed(template: bytes, time_ns: int) -> bytes:
    """`template` with the flow's time replaced: a second `flow` field merges into the first (protobuf rules)."""
    patch = observer_pb2.GetFlowsResponse()
    patch.flow.time.FromNanoseconds(time_ns)
    patch.flow.time.nanos |= 1  # a zero field is not encoded, so it would not override the template's
    return template + patch.SerializeToString()


def _endless(templates: list[bytes]) -> Iterator[bytes]:
    moment = time.time_ns()
    while True:
        for template in templates:
            moment += 20_000  # 50k flows per second of flow time
            yield _retimed(template, moment)


def serve(port_queue: multiprocessing.Queue[int], flows: str) -> None:
    """Server process: GetFlows streams the sample flows forever, as fast as the client reads."""
    templates = [data for _, data in hubble_relay.load_responses([flows])]
    templates = [t for t in templates if observer_pb2.GetFlowsResponse.FromString(t).HasField("flow")]
    observer = hubble_relay.FakeObserver([], nodes=["bench-node"])

    def get_flows(_request: observer_pb2.GetFlowsRequest, _context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from _endless(templates)

    handler = grpc.method_handlers_generic_handler(
        "observer.Observer",
        {
            "GetFlows": grpc.unary_stream_rpc_method_handler(
                get_flows, request_deserializer=observer_pb2.GetFlowsRequest.FromString, response_serializer=bytes
            ),
            "ServerStatus": grpc.unary_unary_rpc_method_handler(
                observer.server_status,
                request_deserializer=observer_pb2.ServerStatusRequest.FromString,
                response_serializer=observer_pb2.ServerStatusResponse.SerializeToString,
            ),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    port_queue.put(port)
    server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="collection duration (default 20)")
    parser.add_argument("--flows", default=str(DEFAULT_FLOWS), help="flows to replay (default: the sample)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports, args.flows), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=120)
        with tempfile.TemporaryDirectory() as store:
            command = [
                sys.executable, "-m", "synth", "collect", "hubble", "--server", f"127.0.0.1:{port}",
                "--duration", f"{args.seconds}s", "--store", store, "--flush-interval", "5s",
            ]  # fmt: skip
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            elapsed = time.monotonic() - started
            if done.returncode != 0:
                print(done.stdout, done.stderr, file=sys.stderr)
                return 1
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the collector (the server is not reaped yet)
            peak_rss_mb, cpu_s = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
            rows, stored_rows = _stored_flows(store)
    finally:
        server.terminate()
        server.join()
    result = {
        "flows_stored": rows,
        "rows_after_compaction": stored_rows,
        "seconds": round(elapsed, 1),
        "flows_per_s": round(rows / args.seconds),
        "flows_per_s_wall": round(rows / elapsed),
        "collector_peak_rss_mb": round(peak_rss_mb),
        "collector_cpu_us_per_flow": round(cpu_s / max(rows, 1) * 1e6, 1),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{rows:,} flows stored in {args.seconds}s of collection ({elapsed:.1f}s with start-up): "
            f"{result['flows_per_s']:,} flows/s; collector peak RSS {result['collector_peak_rss_mb']} MB, "
            f"{result['collector_cpu_us_per_flow']} us CPU per flow (incl. start-up); {result['cpus']} CPUs"
        )
    return 0


def _stored_flows(store: str) -> tuple[int, int]:
    """(flows, rows) in the store: compaction folds repeated flows into rows with a count."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    flows = rows = 0
    for path in Path(store).rglob("part-*.parquet"):
        table = pq.read_table(path, columns=["count"])
        flows += pc.sum(table.column("count")).as_py() or 0
        rows += table.num_rows
    return flows, rows


if __name__ == "__main__":
    sys.exit(main())
