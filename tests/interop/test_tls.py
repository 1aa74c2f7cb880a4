"""bastion serve with TLS: 1.2 and 1.3 accepted, 1.0/1.1 refused (granian's rustls and
uvicorn's ssl module); a 1.3 floor held by granian and refused to uvicorn, which cannot."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests._deploy import make_deployment
from tests._procs import BASTION, bastion_serve
from tests._services import free_port, port_open


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


def tls_deployment(tmp_path: Path, port: int, *, proxied: bool, min_version: str = "1.2") -> Path:
    """A deployment listening with TLS on ``port``; its config file."""
    d = asyncio.run(make_deployment(tmp_path / "d", "http://127.0.0.1:9"))
    cert, key = self_signed(d.folder)
    data = yaml.safe_load(d.config_file.read_text())
    if not proxied:
        for route in data["routes"]:
            route.pop("upstream", None)
    tls = {"cert_file": str(cert), "key_file": str(key), "min_version": min_version}
    data["listen"] = {"host": "127.0.0.1", "port": port, "tls": tls}
    d.config_file.write_text(yaml.safe_dump(data))
    return d.config_file


@pytest.mark.parametrize(
    ("server", "interface"), [("granian", "asgi"), ("granian", "rsgi"), ("uvicorn", "asgi")]
)
def test_tls_listener_speaks_only_tls12_and_up(tmp_path: Path, server: str, interface: str) -> None:
    # granian serves ASGI when a route proxies and RSGI when none does: both listen alike.
    port = free_port()
    config = tls_deployment(tmp_path, port, proxied=interface == "asgi")
    with bastion_serve(config, port, "--server", server, scheme="https"):
        log = " ".join((config.parent / "serve.log").read_text().split())
        shown = f"granian {interface.upper()}" if server == "granian" else server
        assert f"({shown}, 1 worker(s))" in log
        assert handshake(port, ssl.TLSVersion.TLSv1_2).startswith("HTTP/1.1 200")
        assert handshake(port, ssl.TLSVersion.TLSv1_3).startswith("HTTP/1.1 200")
        for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                handshake(port, old)


def test_tls_min_version_13_refuses_tls12(tmp_path: Path) -> None:
    port = free_port()
    config = tls_deployment(tmp_path, port, proxied=False, min_version="1.3")
    with bastion_serve(config, port, scheme="https"):
        assert handshake(port, ssl.TLSVersion.TLSv1_3).startswith("HTTP/1.1 200")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(port, ssl.TLSVersion.TLSv1_2)


def test_uvicorn_refuses_to_serve_below_a_tls13_floor(tmp_path: Path) -> None:
    # uvicorn takes no minimum TLS version: serving would accept 1.2 against the config.
    port = free_port()
    config = tls_deployment(tmp_path, port, proxied=True, min_version="1.3")
    cmd = [*BASTION, "serve", "--config", str(config), "--server", "uvicorn"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "min_version 1.3 cannot be held by uvicorn" in " ".join(done.stderr.split())
    assert not port_open(port)
