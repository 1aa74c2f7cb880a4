"""``python -m bastion.cli._preflight CONFIG``: open everything once, then exit.

``bastion serve`` runs this in a child process so that a bad key file or database fails
with one clear line before the server starts, without the parent (from which the ASGI
server forks its workers) importing and building the whole gateway: a parent that had
would double the resident memory of a deployment.
"""

from __future__ import annotations

import asyncio
import sys

from bastion.config import config_from_env
from bastion.errors import BastionError


async def _check() -> None:
    from bastion.gateway.runtime import Runtime

    runtime = await Runtime.start(config_from_env())
    await runtime.aclose()


def main() -> int:
    try:
        asyncio.run(_check())
    except BastionError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
