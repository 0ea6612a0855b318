"""Throwaway certificates for the TLS tests and the stand-in servers (needs `cryptography`, a test dependency).

`certificate` signs one (a CA when `ca`, else a leaf with its name and `alt_names` as SANs);
`write_mtls_files` writes a whole mutual-TLS set: a CA, a server pair and a client pair, all ECDSA P-256,
valid from five minutes ago for the given hours.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


def new_key() -> Key:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    name: str,
    key: Key,
    issuer: tuple[str, Key] | None,
    ca: bool,
    *,
    alt_names: Sequence[str] = (),
    hours: float = 1.0,
) -> bytes:
    """A PEM certificate for `key` named `name`, signed by `issuer` (name, key) or self-signed when None.

    A leaf certificate lists `name` and `alt_names` as subject alternative names (IP addresses as IPs).
    """
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        sans = [_general_name(n) for n in (name, *alt_names)]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def key_pem(key: Key) -> bytes:
    """The private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True, slots=True)
class MutualTlsFiles:
    """Where `write_mtls_files` put the CA, the server pair and the client pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def write_mtls_files(
    out: Path, server_names: Sequence[str], *, ca_name: str = "synth-test-ca", client_name: str = "synth-client",
    hours: float = 24.0,
) -> MutualTlsFiles:  # fmt: skip
    """Write a CA, a server certificate for `server_names` (the first is its name) and a client pair into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key = new_key(), new_key(), new_key()
    signer = (ca_name, ca_key)
    files = MutualTlsFiles(
        out / "ca.crt", out / "server.crt", out / "server.key", out / "client.crt", out / "client.key"
    )
    files.ca.write_bytes(certificate(ca_name, ca_key, None, True, hours=hours))
    server_name, *others = server_names
    files.server_cert.write_bytes(certificate(server_name, server_key, signer, False, alt_names=others, hours=hours))
    files.client_cert.write_bytes(certificate(client_name, client_key, signer, False, hours=hours))
    for path, key in ((files.server_key, server_key), (files.client_key, client_key)):
        path.touch(mode=0o600)  # private from the start
        path.write_bytes(key_pem(key))
    return files
