"""bastion serve with TLS: 1.2 and 1.3 accepted, 1.0/1.1 refused (granian's rustls)."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import warnings
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests._deploy import make_deployment
from tests._procs import bastion_serve
from tests._services import free_port


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def handshake(port: int, version: ssl.TLSVersion) -> str:
    with warnings.catch_warnings():
        # Offering TLS 1.0/1.1 is the point of the probe; Python warns that it is deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _handshake(port, version)


def _handshake(port: int, version: ssl.TLSVersion) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # OpenSSL 3 will not even offer TLS < 1.2 without lowering the security level.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return tls.recv(200).decode("latin-1")


@pytest.mark.parametrize("interface", ["asgi", "rsgi"])
def test_tls_listener_speaks_only_tls12_and_up(tmp_path: Path, interface: str) -> None:
    # granian serves ASGI when a route proxies and RSGI when none does: both listen alike.
    port = free_port()
    d = asyncio.run(make_deployment(tmp_path / "d", "http://127.0.0.1:9"))
    cert, key = self_signed(d.folder)
    data = yaml.safe_load(d.config_file.read_text())
    if interface == "rsgi":
        for route in data["routes"]:
            route.pop("upstream", None)
    data["listen"] = {
        "host": "127.0.0.1",
        "port": port,
        "tls": {"cert_file": str(cert), "key_file": str(key)},
    }
    d.config_file.write_text(yaml.safe_dump(data))
    with bastion_serve(d.config_file, port, scheme="https"):
        log = " ".join((d.config_file.parent / "serve.log").read_text().split())
        assert f"(granian {interface.upper()}, 1 worker(s))" in log
        assert handshake(port, ssl.TLSVersion.TLSv1_2).startswith("HTTP/1.1 200")
        assert handshake(port, ssl.TLSVersion.TLSv1_3).startswith("HTTP/1.1 200")
        for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                handshake(port, old)
