"""Start the test targets on 127.0.0.1: uvicorn apps in threads, ``openssl s_server``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests._services import free_port, port_open


class ServerThread:
    """One uvicorn server in its own thread and event loop."""

    def __init__(self, app: Any, *, certfile: Path | None = None, keyfile: Path | None = None):
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            lifespan="off",
            server_header=False,
            date_header=False,
            ws="wsproto",
            access_log=False,
            proxy_headers=False,  # X-Forwarded-For from loopback must not be trusted here
            ssl_certfile=str(certfile) if certfile else None,
            ssl_keyfile=str(keyfile) if keyfile else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.scheme = "https" if certfile else "http"

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path  # signed by the CA, SAN 127.0.0.1: the fixed listener
    key: Path
    self_signed: Path  # the vulnerable listener's certificate
    self_signed_key: Path
    soon: Path  # signed by the CA, expires in 10 days (same key as ``cert``)
    expired: Path  # signed by the CA, expired yesterday (same key as ``cert``)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    ca_key = rsa.generate_private_key(65537, 2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("scan test CA"))
        .issuer_name(_name("scan test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(65537, 2048)

    def leaf_cert(start: int, end: int) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(ca.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=start))
            .not_valid_after(now + datetime.timedelta(days=end))
            .add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256())
        )

    leaf = leaf_cert(-1, 200)
    weak_key = rsa.generate_private_key(65537, 2048)
    weak = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(_name("127.0.0.1"))
        .public_key(weak_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(san, critical=False)
        .sign(weak_key, hashes.SHA256())
    )
    pki = Pki(
        folder / "ca.pem",
        folder / "leaf.pem",
        folder / "leaf.key",
        folder / "self.pem",
        folder / "self.key",
        folder / "soon.pem",
        folder / "expired.pem",
    )
    pki.soon.write_bytes(leaf_cert(-1, 10).public_bytes(serialization.Encoding.PEM))
    pki.expired.write_bytes(leaf_cert(-30, -1).public_bytes(serialization.Encoding.PEM))
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _write_key(leaf_key, pki.key)
    pki.self_signed.write_bytes(weak.public_bytes(serialization.Encoding.PEM))
    _write_key(weak_key, pki.self_signed_key)
    return pki


@contextlib.contextmanager
def tls10_server(pki: Pki, folder: Path) -> Iterator[str]:
    """``openssl s_server`` speaking TLS 1.0 only, with a self-signed certificate."""
    args = ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"]
    with openssl_server(folder, pki.self_signed, pki.self_signed_key, args) as url:
        yield url


@contextlib.contextmanager
def openssl_server(folder: Path, cert: Path, key: Path, args: list[str]) -> Iterator[str]:
    """``openssl s_server -HTTP`` on loopback with ``args`` (versions, ciphers)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is required for the TLS tests (Debian package: openssl)")
    port = free_port()
    (folder / "index.html").write_bytes(
        b'HTTP/1.0 200 ok\r\nContent-Type: application/json\r\n\r\n{"service": "legacy"}\n'
    )
    proc = subprocess.Popen(
        [
            openssl,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            *args,
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-HTTP",
            "-quiet",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
