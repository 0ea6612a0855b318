"""Serve Hubble captures as a fake hubble-relay, for trying `synth collect hubble` without a cluster.

    python scripts/serve_hubble.py --port 4245 sample_flows/hubble-*.json.gz
    synth collect hubble --server localhost:4245 --duration 10s

Every GetFlows call gets the captured flows in time order (a `--follow`/`--duration` call too, as if
they were happening now), then waits for more until the client leaves. Ctrl-C stops the server.
`--fast` serves with the HTTP/2 stand-in instead (`synth.testing.h2_relay`: many responses per DATA
frame, far faster than grpcio's server), `--repeat N` replaying the flows N times a second apart.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from synth.base.text import plural
from synth.testing import hubble_relay


def main(argv: list[str] | None = None) -> int:
    """Load the files, serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="Hubble JSON captures (.json, .json.gz)")
    parser.add_argument("--port", type=int, default=4245, help="port to listen on (default 4245)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--fast", action="store_true", help="serve with the HTTP/2 stand-in (for benchmarks)")
    parser.add_argument("--repeat", type=int, default=1, help="with --fast: replay the flows this many times")
    args = parser.parse_args(argv)
    responses = hubble_relay.load_responses(args.files)
    if args.fast:
        return _serve_fast(responses, args)
    nodes = sorted(_nodes(responses))
    observer = hubble_relay.FakeObserver(responses, nodes=nodes, live_backlog=True)
    server, port = hubble_relay.start(observer, args.port, host=args.host)
    where = f"{args.host}:{port}"
    files = plural(len(args.files), "file")
    print(f"serving {plural(len(responses), 'record')} from {files} on {where} (Ctrl-C stops)", flush=True)
    _wait_for_signal()
    hubble_relay.stop(server, observer)
    return 0


def _serve_fast(responses: list[hubble_relay.Response], args: argparse.Namespace) -> int:
    from synth.testing import h2_relay

    relay = h2_relay.FastRelay([data for _, data in responses], repeat=args.repeat)
    port = relay.start(args.port, args.host)
    print(f"serving {plural(relay.flows, 'flow')} on {args.host}:{port} over HTTP/2 (Ctrl-C stops)", flush=True)
    _wait_for_signal()
    relay.stop()
    return 0


def _wait_for_signal() -> None:
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stopped.set())
    stopped.wait()


def _nodes(responses: list[hubble_relay.Response]) -> set[str]:
    from synth._proto.observer import observer_pb2

    return {observer_pb2.GetFlowsResponse.FromString(data).node_name for _, data in responses[:5000]} - {""}


if __name__ == "__main__":
    sys.exit(main())
