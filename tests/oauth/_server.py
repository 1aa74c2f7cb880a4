"""A full bastion with the authorization server, as a subprocess (``bastion serve``) on a
free loopback port, with a registered client: for interop peers (openid-client,
oidc-provider in tests/interop/node) and any test that needs a real server.

    with served_bastion(tmp_path, redirect_uris=["http://127.0.0.1:3000/cb"]) as srv:
        srv.issuer            # http://127.0.0.1:<port> (has /.well-known/openid-configuration)
        srv.client_id, srv.client_secret   # client_secret_basic, code+refresh+cc+device
        srv.username, srv.password         # a user for the login form ("alice")

The deployment has the demo upstream behind ``/api`` (any bastion token is accepted there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.oauth.clients import ClientStore, record_from_metadata
from bastion.store import open_store
from tests._deploy import PASSWORD, Deployment, make_deployment
from tests._procs import bastion_serve, demo_upstream
from tests._services import free_port


@dataclass(frozen=True)
class ServedBastion:
    issuer: str
    client_id: str
    client_secret: str
    username: str
    password: str
    deployment: Deployment


async def _prepare(
    folder: Path, upstream: str, port: int, client: dict[str, Any], oauth: dict[str, Any] | None
) -> tuple[Deployment, str]:
    extra: dict[str, Any] = {"oauth": oauth} if oauth else {}
    deployment = await make_deployment(
        folder, upstream, listen={"host": "127.0.0.1", "port": port}, **extra
    )
    async with open_store(deployment.config) as ctx:
        created = await ClientStore(ctx.engine, ctx.keyring.client_secret_hmac).create(
            record_from_metadata(client)
        )
    assert created.secret is not None
    return deployment, created.secret


@contextlib.contextmanager
def served_bastion(
    folder: Path,
    *,
    redirect_uris: Sequence[str] = ("http://127.0.0.1:3000/cb",),
    post_logout_redirect_uris: Sequence[str] = (),
    client_id: str = "interop",
    skip_consent: bool = False,
    oauth: dict[str, Any] | None = None,
) -> Iterator[ServedBastion]:
    """Start the server (and the demo upstream); stop both on exit. ``oauth`` overrides
    settings of the ``oauth:`` section (e.g. ``{"refresh_reuse_grace_seconds": 0}``)."""
    port = free_port()
    client = {
        "client_id": client_id,
        "client_name": "interop peer",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials",
                        "urn:ietf:params:oauth:grant-type:device_code"],
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout_redirect_uris),
        "scope": "openid profile email offline_access read",
        "skip_consent": skip_consent,
    }  # fmt: skip
    with demo_upstream() as upstream:
        deployment, secret = asyncio.run(_prepare(folder, upstream, port, client, oauth))
        with bastion_serve(deployment.config_file, port) as base:
            yield ServedBastion(base, client_id, secret, "alice", PASSWORD, deployment)
