from __future__ import annotations

from tests.oauth.conftest import clients, http, issuer

__all__ = ["clients", "http", "issuer"]
