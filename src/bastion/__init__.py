"""bastion: API authentication done right.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports below: submodules read it

from typing import TYPE_CHECKING, Any

from bastion.config import Config, load_config
from bastion.errors import BastionError
from bastion.model import CredentialType, Principal

if TYPE_CHECKING:
    from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require

_LAZY = {"BastionMiddleware", "install_error_handler", "require"}


def __getattr__(name: str) -> Any:
    # The ASGI front door pulls in the whole gateway; `import bastion` (and the CLI that
    # only reads a config) should not pay for it.
    if name in _LAZY:
        from bastion.gateway import middleware

        return getattr(middleware, name)
    raise AttributeError(f"module 'bastion' has no attribute {name!r}")


__all__ = [
    "BastionError",
    "BastionMiddleware",
    "Config",
    "CredentialType",
    "Principal",
    "__version__",
    "install_error_handler",
    "load_config",
    "require",
]
