from __future__ import annotations

from tests.oauth.conftest import app, clients, deployment, http, issuer, runtime, upstream

__all__ = ["app", "clients", "deployment", "http", "issuer", "runtime", "upstream"]
