"""Serve Goldmane flow files as a stand-in Calico Goldmane, for trying `synth collect calico` without a cluster.

    python scripts/serve_goldmane.py --port 7443 --repeat 8 tests/fixtures/calico/goldmane.ndjson
    synth collect calico --server 127.0.0.1:7443 --insecure-plaintext --store goldmane-store

Goldmane itself only speaks mutual TLS; `--make-certs DIR` writes a throwaway CA, a server
certificate (goldmane.calico-system.svc, localhost, 127.0.0.1) and a client pair into DIR and
serves mutual TLS with them (or bring your own with --tls-cert-file/--tls-key-file/--tls-client-ca-file).
The line printed at start says which `synth collect calico` flags fit.

The files hold Goldmane flows as `synth import calico` reads them: emitter NDJSON, or protojson
Flows and List answers as `grpcurl` prints them, `.gz` or not. (The Calico Enterprise flow logs in
sample_flows/ are not Goldmane's: import them with `synth import calico`.) `--repeat N` serves the
flows N times over, each copy after the buckets of the one before. List pages the backlog; Stream
resends from the bucket asked for, then waits. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from synth.base.errors import SynthError
from synth.base.text import plural
from synth.testing import goldmane

SERVER_NAMES = ("goldmane.calico-system.svc", "localhost", "127.0.0.1")


def main(argv: list[str] | None = None) -> int:
    """Load the files, serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="Goldmane flows (.ndjson, .json, .gz)")
    parser.add_argument("--port", type=int, default=7443, help="port to listen on (default 7443; 0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="serve the flows N times over, in turn")
    tls = parser.add_argument_group("TLS (default: plain gRPC)")
    tls.add_argument("--make-certs", type=Path, metavar="DIR", help="write a CA, server and client pair, serve mTLS")
    tls.add_argument("--tls-cert-file", type=Path, metavar="FILE", help="server certificate (chain)")
    tls.add_argument("--tls-key-file", type=Path, metavar="FILE", help="server key")
    tls.add_argument("--tls-client-ca-file", type=Path, metavar="FILE", help="CA of client certificates: mutual TLS")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.make_certs and (args.tls_cert_file or args.tls_key_file or args.tls_client_ca_file):
        parser.error("--make-certs writes its own certificates; leave out --tls-*")
    if bool(args.tls_cert_file) != bool(args.tls_key_file) or (args.tls_client_ca_file and not args.tls_cert_file):
        parser.error("TLS needs both --tls-cert-file and --tls-key-file")
    try:
        flows = goldmane.repeat(goldmane.load_flows(args.files), args.repeat)
    except SynthError as e:
        print(f"serve_goldmane: error: {e}", file=sys.stderr)
        return 2
    credentials, flags = _tls(args)
    fake = goldmane.FakeGoldmane(flows)
    server, port = goldmane.start(fake, args.port, host=args.host, tls=credentials)
    transport = "plain gRPC" if credentials is None else "mutual TLS" if credentials[2] else "TLS"
    served = f"{plural(len(flows), 'flow')} ({plural(len(fake.windows), 'key')}) from {plural(len(args.files), 'file')}"
    print(
        f"serving {served} on "
        f"{args.host}:{port} over {transport} (Ctrl-C stops); collect with:\n"
        f"  synth collect calico --server {args.host}:{port} {flags} --store goldmane-store",
        flush=True,
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stopped.set())
    stopped.wait()
    goldmane.stop(server, fake)
    return 0


def _tls(args: argparse.Namespace) -> tuple[tuple[bytes, bytes, bytes | None] | None, str]:
    """The server's (key, chain, client CA) or None for plain gRPC, and the client flags that fit."""
    if args.make_certs:
        from synth.testing.pki import write_mtls_files  # cryptography: only when certificates are made

        files = write_mtls_files(args.make_certs, SERVER_NAMES, ca_name="synth-goldmane-ca")
        flags = (
            f"--tls-server-name {SERVER_NAMES[0]} --tls-ca-cert-files {files.ca} "
            f"--tls-client-cert-file {files.client_cert} --tls-client-key-file {files.client_key}"
        )
        return (files.server_key.read_bytes(), files.server_cert.read_bytes(), files.ca.read_bytes()), flags
    if args.tls_cert_file:
        client_ca = args.tls_client_ca_file.read_bytes() if args.tls_client_ca_file else None
        flags = "--tls-ca-cert-files CA --tls-server-name NAME"
        if client_ca is not None:
            flags += " --tls-client-cert-file CERT --tls-client-key-file KEY"
        return (args.tls_key_file.read_bytes(), args.tls_cert_file.read_bytes(), client_ca), flags
    return None, "--insecure-plaintext"


if __name__ == "__main__":
    sys.exit(main())
