"""Passkeys: WebAuthn Level 3 registration and authentication ceremonies on py_webauthn.

Every passkey is a discoverable credential (``residentKey: required``), so a user can
sign in without typing a username; user verification is required at registration and
at every sign-in (a PIN or a biometric on the authenticator, §6.2.3 "UV"). The relying
party is the issuer's host (``rp.id``) and only the issuer's origin is accepted. Each
challenge is 32 random bytes, kept in the server-side session, used once and valid for
:data:`CHALLENGE_SECONDS`. The signature counter (§6.1.1) and the backup flags (BE/BS)
are recorded; a counter that does not increase is refused as a possible clone.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bastion.identity._store import Passkey

CHALLENGE_SECONDS = 120
TIMEOUT_MS = CHALLENGE_SECONDS * 1000
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
MAX_CREDENTIAL_JSON = 32 * 1024


class PasskeyError(Exception):
    """A ceremony that failed; the message is for the log, never for the browser."""


@dataclass(frozen=True, slots=True)
class Registered:
    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str
    transports: list[str]
    backup_eligible: bool
    backed_up: bool


@dataclass(frozen=True, slots=True)
class Asserted:
    credential_id: str
    user_handle: str | None
    new_sign_count: int
    backed_up: bool


def new_user_handle() -> str:
    """A random WebAuthn user handle (never the username: §14.6.1 privacy)."""
    return bytes_to_base64url(secrets.token_bytes(32))


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for p in passkeys:
        transports = []
        for t in p.transports:
            try:
                transports.append(AuthenticatorTransport(t))
            except ValueError:
                continue
        out.append(
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id), transports=transports or None
            )
        )
    return out


def _credential(text: str) -> dict[str, Any]:
    if len(text) > MAX_CREDENTIAL_JSON:
        raise PasskeyError("credential too large")
    try:
        data = json.loads(text)
    except ValueError:
        raise PasskeyError("credential is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise PasskeyError("credential is not a PublicKeyCredential")
    return data


class RelyingParty:
    """The WebAuthn relying party for one issuer URL.

    Args:
        issuer: the public URL of the login pages (its host is the RP ID).
        name: shown by the browser and the authenticator.
    """

    def __init__(self, issuer: str, name: str = "bastion") -> None:
        parts = urlsplit(issuer)
        self.rp_id = parts.hostname or "localhost"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.name = name

    def registration_options(
        self, *, username: str, user_handle: str, existing: list[Passkey]
    ) -> tuple[str, bytes]:
        """Options for ``navigator.credentials.create`` (JSON) and the challenge."""
        challenge = secrets.token_bytes(32)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.name,
            user_name=username,
            user_id=base64url_to_bytes(user_handle),
            user_display_name=username,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=_descriptors(existing),
            supported_pub_key_algs=ALGORITHMS,
        )
        return options_to_json(options), challenge

    def verify_registration(self, credential_json: str, challenge: bytes) -> Registered:
        data = _credential(credential_json)
        try:
            verified = verify_registration_response(
                credential=data,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
                supported_pub_key_algs=ALGORITHMS,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise PasskeyError(f"registration refused: {exc}") from None
        transports = data.get("response", {}).get("transports", [])
        return Registered(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            transports=[t for t in transports if isinstance(t, str)][:8],
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
        )

    def authentication_options(self, allow: list[Passkey] | None = None) -> tuple[str, bytes]:
        """Options for ``navigator.credentials.get``; no ``allow`` = discoverable login."""
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=_descriptors(allow or []),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options), challenge

    @staticmethod
    def credential_id(credential_json: str) -> tuple[str, str | None]:
        """The credential id and user handle a browser's assertion names (unverified)."""
        data = _credential(credential_json)
        handle = data.get("response", {}).get("userHandle")
        return data["id"], handle if isinstance(handle, str) and handle else None

    def verify_authentication(
        self, credential_json: str, challenge: bytes, stored: Passkey
    ) -> Asserted:
        data = _credential(credential_json)
        try:
            verified = verify_authentication_response(
                credential=data,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(stored.public_key),
                credential_current_sign_count=stored.sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise PasskeyError(f"assertion refused: {exc}") from None
        handle = data.get("response", {}).get("userHandle")
        return Asserted(
            credential_id=bytes_to_base64url(verified.credential_id),
            user_handle=handle if isinstance(handle, str) else None,
            new_sign_count=verified.new_sign_count,
            backed_up=verified.credential_backed_up,
        )
