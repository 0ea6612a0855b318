"""Benchmark live collection: a fast stand-in relay streams N flows, `synth collect hubble` stores them.

    python scripts/bench_collect.py [--flows 1000000] [--capture FILE.json.gz] [--json]

The relay (`synth.testing.h2_relay`, gRPC written straight onto HTTP/2, many messages per DATA
frame) runs in its own process and replays the capture's flows in rounds, each round one second of
flow time later, so every flow is distinct. The collector runs `synth collect hubble` for that
window as a user would, in another process, and ends when the relay ends the stream. Reported:
flows stored per second of the collector's wall time (start-up included), whether every flow sent
was stored (none lost, none twice), the peak RSS summed over the collector's process tree, CPU
seconds per flow of the collector (its whole process tree, and its main process alone) and of the
relay (the machine's other load does not change those), and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import machine, run

from synth.testing import h2_relay, hubble_relay

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CAPTURE = ROOT / "sample_flows" / "hubble-flows.json.gz"


def serve(ports: multiprocessing.Queue[tuple[int, int]], capture: str, flows: int) -> None:
    """Relay process: serve the capture's flows, repeated to about `flows`; report (port, flows per call)."""
    responses = h2_relay.distinct_in_rounds([data for _, data in hubble_relay.load_responses([capture])])
    per_round = sum(r.is_flow for r in h2_relay.records(responses))
    relay = h2_relay.FastRelay(responses, repeat=max(1, math.ceil(flows / per_round)))
    port = relay.start()
    ports.put((port, relay.flows))
    multiprocessing.Event().wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(flows: int, capture: str = str(DEFAULT_CAPTURE), code: str | None = None) -> dict[str, Any]:
    """Collect about `flows` flows from a fast relay (with synth from the folder `code`, if given); the figures."""
    ports: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports, capture, flows), daemon=True)
    server.start()
    load_before = os.getloadavg()[0]
    try:
        port, sent = ports.get(timeout=300)
        relay_cpu = cpu_seconds(server.pid or 0)
        with tempfile.TemporaryDirectory() as store:
            command = [sys.executable, "-m", "synth", "collect", "hubble", "--server", f"127.0.0.1:{port}",
                       "--store", store]  # fmt: skip
            collected = run(command, cwd=code)  # `python -m` imports synth from the working folder first
            relay_cpu = cpu_seconds(server.pid or 0) - relay_cpu
            stored, rows = _stored_flows(store)
    finally:
        server.terminate()
        server.join()
    return {
        "flows_sent": sent,
        "flows_stored": stored,
        "lost_or_doubled": sent - stored,
        "rows_after_compaction": rows,
        "seconds": round(collected["seconds"], 2),
        "flows_per_s": round(stored / collected["seconds"]),
        "collector_cpu_s": round(collected["tree_cpu_seconds"], 2),
        "collector_cpu_us_per_flow": round(collected["tree_cpu_seconds"] / max(stored, 1) * 1e6, 2),
        "collector_main_process_cpu_us_per_flow": round(collected["cpu_seconds"] / max(stored, 1) * 1e6, 2),
        "relay_cpu_us_per_flow": round(relay_cpu / max(sent, 1) * 1e6, 2),
        "tree_peak_rss_mb": round(collected["rss_mb"]),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def describe(result: dict[str, Any]) -> str:
    """One paragraph for the table."""
    lost = "none lost or doubled" if result["lost_or_doubled"] == 0 else f"{result['lost_or_doubled']:+,} MISSING"
    return (
        f"collect hubble: {result['flows_stored']:,} of {result['flows_sent']:,} flows stored ({lost}) in "
        f"{result['seconds']} s = {result['flows_per_s']:,} flows/s; collector {result['collector_cpu_us_per_flow']} "
        f"CPU-us/flow (its main process {result['collector_main_process_cpu_us_per_flow']}), "
        f"relay {result['relay_cpu_us_per_flow']} CPU-us/flow; process tree peak "
        f"{result['tree_peak_rss_mb']} MB; load {result['load_before']} -> {result['load_after']}"
    )


def _stored_flows(store: str) -> tuple[int, int]:
    """(flows, rows) in the store: compaction folds repeated flows into rows with a count."""
    import pyarrow.compute as pc

    from synth.store.dataset import Store

    flows = rows = 0
    for batch in Store(store).read(columns=["count"]):  # the committed flows only (not `ids/`, not staging)
        flows += pc.sum(batch.column("count")).as_py() or 0
        rows += batch.num_rows
    return flows, rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000, help="flows to collect (default 1,000,000)")
    parser.add_argument("--capture", default=str(DEFAULT_CAPTURE), help="flows to replay (default: the sample)")
    parser.add_argument("--code", help="run the collector from this folder's synth package (another version)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.flows, args.capture, args.code)
    result["machine"] = machine()
    print(json.dumps(result) if args.json else describe(result))
    return 0 if result["lost_or_doubled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
