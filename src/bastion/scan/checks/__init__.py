"""Every check the scanner runs, one module each (see docs/scanner.md for what each sends)."""

from __future__ import annotations

from bastion.scan.checks._base import Check
from bastion.scan.checks.bfla import Bfla
from bastion.scan.checks.bola import Bola
from bastion.scan.checks.brute_force import BruteForce
from bastion.scan.checks.cookie_flags import CookieFlags
from bastion.scan.checks.cors import Cors
from bastion.scan.checks.credential_in_url import CredentialInUrl
from bastion.scan.checks.csrf import Csrf
from bastion.scan.checks.excessive_data_exposure import ExcessiveDataExposure
from bastion.scan.checks.exposed_docs import ExposedDocs
from bastion.scan.checks.jwt_alg_none import JwtAlgNone
from bastion.scan.checks.jwt_empty_hmac_key import JwtEmptyHmacKey
from bastion.scan.checks.jwt_header_injection import JwtHeaderInjection
from bastion.scan.checks.jwt_key_confusion import JwtKeyConfusion
from bastion.scan.checks.jwt_kid_injection import JwtKidInjection
from bastion.scan.checks.jwt_lifetime import JwtLifetime
from bastion.scan.checks.jwt_psychic_signature import JwtPsychicSignature
from bastion.scan.checks.jwt_signature_not_verified import JwtSignatureNotVerified
from bastion.scan.checks.jwt_weak_secret import JwtWeakSecret
from bastion.scan.checks.mass_assignment import MassAssignment
from bastion.scan.checks.no_rate_limit import NoRateLimit
from bastion.scan.checks.pagination import Pagination
from bastion.scan.checks.password_change import PasswordChange
from bastion.scan.checks.redos import Redos
from bastion.scan.checks.security_headers import SecurityHeaders
from bastion.scan.checks.session_fixation import SessionFixation
from bastion.scan.checks.sql_injection import SqlInjection
from bastion.scan.checks.tls import Tls
from bastion.scan.checks.token_after_logout import TokenAfterLogout
from bastion.scan.checks.token_after_password_change import TokenAfterPasswordChange
from bastion.scan.checks.trace_method import TraceMethod
from bastion.scan.checks.transport import Transport
from bastion.scan.checks.unauthenticated_access import UnauthenticatedAccess
from bastion.scan.checks.user_enumeration import UserEnumeration
from bastion.scan.checks.verbose_errors import VerboseErrors
from bastion.scan.checks.version_disclosure import VersionDisclosure
from bastion.scan.checks.websocket_origin import WebSocketOrigin
from bastion.scan.checks.websocket_unauthenticated import WebSocketUnauthenticated
from bastion.scan.checks.xff_bypass import XffBypass

ALL_CHECKS: tuple[type[Check], ...] = (
    # API2 tokens and credentials
    UnauthenticatedAccess,
    WebSocketUnauthenticated,
    JwtSignatureNotVerified,
    JwtAlgNone,
    JwtEmptyHmacKey,
    JwtWeakSecret,
    JwtKeyConfusion,
    JwtHeaderInjection,
    JwtKidInjection,
    JwtPsychicSignature,
    JwtLifetime,
    TokenAfterLogout,
    CredentialInUrl,
    UserEnumeration,
    BruteForce,
    XffBypass,
    SessionFixation,
    PasswordChange,
    TokenAfterPasswordChange,
    # API1 / API3 / API5 authorization
    Bola,
    Bfla,
    MassAssignment,
    ExcessiveDataExposure,
    # API8 / API4 / API9 transport and misconfiguration
    Transport,
    Tls,
    CookieFlags,
    Csrf,
    WebSocketOrigin,
    Cors,
    VerboseErrors,
    VersionDisclosure,
    SecurityHeaders,
    TraceMethod,
    NoRateLimit,
    Pagination,
    Redos,
    ExposedDocs,
    SqlInjection,
)

__all__ = ["ALL_CHECKS", "Check"]
