"""The gRPC transport the live sources share: channels (plain, TLS, mutual TLS), failed calls, broken streams.

Hubble (`hubble.stream`) and Goldmane (`calico.stream`) differ in their services and messages, not
in how a channel is opened or what a failed call means: a stream that breaks off with a retryable
status is `StreamBroken` (the collector reopens it), a cancelled one ends quietly, anything else is
a `CollectError` in the source's own words. `TlsOptions` has the meaning of hubble's `--tls*` flags.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from synth.base.errors import CollectError, UsageError

# Status codes after which a stream is reopened (server restart, relay failover, dropped connection).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class StreamBroken(Exception):
    """The flow stream ended before it should (retryable: reopen it where it stopped)."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Transport security, with the meaning of hubble's own `--tls*` flags."""

    enabled: bool = False
    ca_cert_files: tuple[str, ...] = ()
    client_cert_file: str | None = None
    client_key_file: str | None = None
    server_name: str | None = None
    allow_insecure: bool = False


def open_channel(target: str, tls: TlsOptions, options: list[tuple[str, object]]) -> grpc.Channel:
    """A channel to `target`: TLS (with the server name to check, when one is given or pinned) or plain text."""
    if not tls.enabled:
        return grpc.insecure_channel(target, options)
    channel_credentials, name = credentials(target, tls)
    if name:
        options = [*options, ("grpc.ssl_target_name_override", name)]
    return grpc.secure_channel(target, channel_credentials, options)


def credentials(target: str, tls: TlsOptions) -> tuple[grpc.ChannelCredentials, str | None]:
    """Channel credentials for `tls`, and the server name to check (None: the target's host)."""
    if bool(tls.client_cert_file) != bool(tls.client_key_file):
        raise UsageError("--tls-client-cert-file and --tls-client-key-file go together (mutual TLS needs both)")
    key = _read(tls.client_key_file, "client key") if tls.client_key_file else None
    chain = _read(tls.client_cert_file, "client certificate") if tls.client_cert_file else None
    name = tls.server_name
    if tls.allow_insecure:
        roots, presented = _pin_presented_certificate(target)
        name = name or presented
    elif tls.ca_cert_files:
        roots = b"\n".join(_read(path, "CA certificate") for path in tls.ca_cert_files)
    else:
        roots = None  # the system's trust store
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=chain), name


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CollectError(f"{path}: cannot read the {what} ({e.strerror})") from None


def _pin_presented_certificate(target: str) -> tuple[bytes, str | None]:
    """`--tls-allow-insecure`: trust the certificate the server presents, and the name it carries.

    gRPC Python cannot switch certificate verification off, so the presented certificate is fetched
    without verification and pinned as the only trusted root (traffic is still encrypted).
    """
    host, _, port = target.rpartition(":")
    try:
        pem = ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=10)
    except (OSError, ValueError) as e:
        raise CollectError(f"{target}: cannot fetch the server's certificate for --tls-allow-insecure ({e})") from None
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(pem)
        handle.flush()
        try:
            decoded = ssl._ssl._test_decode_cert(handle.name)  # type: ignore[attr-defined]  # stdlib, no public API
        except (ssl.SSLError, AttributeError):
            decoded = {}
    names = [value for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    names += [value for rdn in decoded.get("subject", ()) for key, value in rdn if key == "commonName"]
    name = names[0].replace("*.", "any.", 1) if names else None
    return pem.encode(), name


def status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status code of a failed call and its details on one line."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else str(error)) or ""
    return code, " ".join(details.split())


def tls_failure(details: str) -> str | None:
    """The short reason when a call failed in the TLS handshake (certificate, name, protocol), else None."""
    lowered = details.lower()
    if "handshake" not in lowered and "certificate" not in lowered and "ssl" not in lowered:
        return None
    return ": ".join(details.rsplit(": ", 2)[-2:]) if "OPENSSL_internal" in details else details


def raise_stream_error(error: grpc.RpcError, *, cancelled: bool, explain: Callable[[grpc.RpcError], str]) -> None:
    """What a stream that failed with `error` means: nothing when we cancelled it, StreamBroken when a
    reopened stream may go on (retryable status), else a CollectError worded by `explain`."""
    code, details = status(error)
    if cancelled and code == grpc.StatusCode.CANCELLED:
        return
    if code in RETRYABLE:
        raise StreamBroken(f"{code.name}: {details}") from None
    raise CollectError(explain(error)) from None
