"""The public API is exactly what bastion.__all__ lists (httpx's habit)."""

from __future__ import annotations

import bastion


def test_public_api_is_pinned() -> None:
    assert sorted(bastion.__all__) == [
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
    for name in bastion.__all__:
        assert getattr(bastion, name) is not None
