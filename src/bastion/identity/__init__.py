"""How people sign in: passwords under a NIST SP 800-63B policy, TOTP and recovery codes,
passkeys (WebAuthn), step-up (RFC 9470), the login and account pages.

User docs: docs/mfa.md, docs/passkeys.md, docs/step-up.md. The authorization server
mounts the pages (:func:`bastion.oauth.mount` calls :func:`bastion.identity.web.install`).
"""

from __future__ import annotations

from bastion.identity._store import Factors, IdentityStore
from bastion.identity.policy import MIN_LENGTH, password_problems
from bastion.identity.steps import assurance

__all__ = ["MIN_LENGTH", "Factors", "IdentityStore", "assurance", "password_problems"]
