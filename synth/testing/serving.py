"""Serve a stand-in's gRPC handler on localhost, plain or over (mutual) TLS: shared by every stand-in."""

from __future__ import annotations

from concurrent import futures

import grpc


def serve(
    handler: grpc.GenericRpcHandler,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    tls: tuple[bytes, bytes, bytes | None] | None = None,
) -> tuple[grpc.Server, int]:
    """A started server on host:port (0: any free port) and the port it bound; `tls` = (key, cert chain,
    client CA or None for no client certificates)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[handler])
    address = f"{host}:{port}"
    if tls is None:
        bound = server.add_insecure_port(address)
    else:
        key, chain, client_ca = tls
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        bound = server.add_secure_port(address, credentials)
    if not bound:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server, bound
