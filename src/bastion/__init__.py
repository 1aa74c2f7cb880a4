"""bastion: API authentication done right.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.config import Config, load_config
    from bastion.errors import BastionError
    from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require
    from bastion.model import CredentialType, Principal

# Every export loads on first use: `import bastion` itself costs nothing, so a process
# that needs one submodule does not pay for the rest (the parent of the server's
# workers imports bastion._server and granian only: ~23 MB less than with the config's
# pydantic models; the CLI that only reads a config does not load the gateway).
_EXPORTS = {
    "Config": "bastion.config",
    "load_config": "bastion.config",
    "BastionError": "bastion.errors",
    "CredentialType": "bastion.model",
    "Principal": "bastion.model",
    "BastionMiddleware": "bastion.gateway.middleware",
    "install_error_handler": "bastion.gateway.middleware",
    "require": "bastion.gateway.middleware",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
