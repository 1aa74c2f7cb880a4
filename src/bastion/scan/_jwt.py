"""Minting deliberately bad JWTs (RFC 7515 compact JWS, RFC 7519 claims) for the probes.

joserfc refuses to make these tokens, rightly; an attacker's tool has to make them by hand.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64u_json(obj: dict[str, Any]) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


@dataclass(frozen=True)
class Jwt:
    """A parsed compact JWS; the signature is not checked (we are the attacker)."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: str
    signature: bytes
    raw: str

    @property
    def alg(self) -> str:
        return str(self.header.get("alg", ""))


def parse(token: str) -> Jwt | None:
    """Parse ``token`` as a JWS JWT; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(unb64u(parts[0]))
        payload = json.loads(unb64u(parts[1]))
        signature = unb64u(parts[2])
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict) or "alg" not in header:
        return None
    return Jwt(header, payload, f"{parts[0]}.{parts[1]}", signature, token)


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{b64u_json(header)}.{b64u_json(payload)}.{signature}"


def sign_hmac(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    alg = str(header.get("alg", "HS256"))
    digest = _HMAC.get(alg, hashlib.sha256)
    signing_input = f"{b64u_json(header)}.{b64u_json(payload)}"
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64u(mac)}"


def hmac_matches(token: Jwt, key: bytes) -> bool:
    digest = _HMAC.get(token.alg)
    if digest is None:
        return False
    mac = hmac.new(key, token.signing_input.encode(), digest).digest()
    return hmac.compare_digest(mac, token.signature)


class AttackerKey:
    """An RSA key the scanner makes for itself: signs ``jwk``/``jku``/``x5u`` forgeries."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "bastion-scan-" + b64u(hashlib.sha256(self.public_pem()).digest()[:6])

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": b64u(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64u(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }

    def sign(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        signing_input = f"{b64u_json(header)}.{b64u_json(payload)}"
        sig = self.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64u(sig)}"

    def self_signed_cert_pem(self) -> bytes:
        """A throwaway certificate for ``x5u`` (a URL to an X.509 chain, RFC 7515 §4.1.5)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion-scan canary")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(self.private, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)
