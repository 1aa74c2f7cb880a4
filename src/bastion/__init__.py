"""bastion: API authentication done right.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"  # before the imports below: submodules read it

from bastion.config import Config, load_config
from bastion.errors import BastionError
from bastion.gateway.middleware import BastionMiddleware, install_error_handler, require
from bastion.model import CredentialType, Principal

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
