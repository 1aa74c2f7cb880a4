"""The master key and the keys derived from it (HKDF, RFC 5869).

One random 32-byte master key per deployment lives in a file (mode 0600) or in the
``BASTION_MASTER_KEY`` environment variable (base64url). Every other secret key bastion
needs is derived from it with a distinct ``info`` label, so one file backs up them all.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.errors import ConfigError

ENV_VAR = "BASTION_MASTER_KEY"
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Keyring:
    """Derived keys; ``repr`` never shows key material."""

    master: bytes = field(repr=False)

    def derive(self, label: str) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label.encode())
        return hkdf.derive(self.master)

    @property
    def api_key_hmac(self) -> bytes:
        return self.derive("bastion api-key hmac v1")

    @property
    def client_secret_hmac(self) -> bytes:
        return self.derive("bastion client-secret hmac v1")

    def encrypt(self, plaintext: bytes, *, purpose: str) -> str:
        """AES-256-GCM with a key per purpose; the purpose is also the associated data."""
        nonce = os.urandom(12)
        key = self.derive(f"bastion at-rest {purpose} v1")
        return _b64(nonce + AESGCM(key).encrypt(nonce, plaintext, purpose.encode()))

    def decrypt(self, token: str, *, purpose: str) -> bytes:
        raw = _unb64(token)
        key = self.derive(f"bastion at-rest {purpose} v1")
        return AESGCM(key).decrypt(raw[:12], raw[12:], purpose.encode())


def generate_master_key_file(path: Path) -> None:
    """Write a new master key, readable by the owner only; never overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(_b64(secrets.token_bytes(KEY_BYTES)) + "\n")


def load_keyring(path: Path) -> Keyring:
    """The keyring from ``BASTION_MASTER_KEY`` or else the key file."""
    text = os.environ.get(ENV_VAR)
    source = ENV_VAR
    if not text:
        source = str(path)
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: master key file not found (run 'bastion init' or set {ENV_VAR})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read master key: {exc.__class__.__name__}") from None
    try:
        key = _unb64(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{source}: master key must be {KEY_BYTES} bytes, base64url-encoded")
    return Keyring(master=key)
