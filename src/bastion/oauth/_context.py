"""What every part of the authorization server shares (built once by :class:`OAuthServer`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.config import Config
from bastion.model import Clock
from bastion.oauth._authlib import Bridge
from bastion.oauth._store import GrantStore
from bastion.oauth.clients import ClientRegistry
from bastion.oauth.keys import SigningKeys
from bastion.oauth.revocation import RevocationMirror

PREFIX = "/oauth2"
OPAQUE_PREFIX = "bat_"  # bastion access token: opaque, resolved by introspection
PAR_URN = "urn:ietf:params:oauth:request_uri:"
ACR_PASSWORD = "urn:bastion:acr:password"  # noqa: S105 - an acr value
ACR_MFA = "urn:bastion:acr:mfa"  # two factors, or a passkey (docs/mfa.md, passkeys.md)
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
ID_TOKEN_ALGS = ("RS256", "ES256", "EdDSA")

Emit = Callable[[dict[str, Any]], None]


@dataclass
class OAuthContext:
    config: Config
    clients: ClientRegistry
    grants: GrantStore
    keys: SigningKeys
    revocations: RevocationMirror
    bridge: Bridge
    emit: Emit
    clock: Clock

    @property
    def issuer(self) -> str:
        return self.config.issuer_url

    @property
    def audience(self) -> str:
        return self.config.oauth_audience

    def url(self, path: str) -> str:
        """The public URL of an authorization-server path such as ``/token``."""
        return f"{self.issuer}{PREFIX}{path}"

    def security_event(self, kind: str, **fields: Any) -> None:
        """An alert-worthy event in the audit log (never a token value in it)."""
        self.emit({"event": "security_event", "kind": kind, **fields})
