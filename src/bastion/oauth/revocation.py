"""Access-token revocation that reaches every gateway instance.

The gateway's revocation hook (:class:`~bastion.tokens.InMemoryRevocations`) is a local,
synchronous mirror, so the hot path makes no round trip. It is fed three ways:

* in-process: :meth:`RevocationMirror.revoke` updates the mirror before it returns, so
  this instance refuses the token on the very next request;
* Redis pub/sub (when ``redis_url`` is set): other instances hear of it in milliseconds;
* the database (always): every ``oauth.revocation_sync_seconds`` each instance reads the
  revocations newer than the last it saw, so a lost pub/sub message is repaired.

The database is the record: a revocation is written there before anything else, so one
asked for while Redis is out still holds. Its message then waits here and is published
when the subscription is back, and every instance whose subscription comes back first
reads what it missed from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion._tasks import stop_tasks, within
from bastion.model import Clock, system_clock
from bastion.oauth._store import GrantStore
from bastion.tokens import InMemoryRevocations

log = logging.getLogger("bastion.oauth.revocation")


def revocation_channel(namespace: str) -> str:
    """The pub/sub channel of a deployment's revocations (``redis_namespace``)."""
    return f"{namespace}:revoked-jti"


CHANNEL = revocation_channel("bastion")
_OVERLAP = timedelta(seconds=5)  # re-read a little: rows may commit out of order
# The subscriber reads with this timeout and then looks at its stop flag: stopping never
# depends on cancelling a pub/sub read (redis-py has lost such cancellations, #2028).
LISTEN_POLL_SECONDS = 0.5
RECONNECT_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 1.0  # a publish (on the revocation request's path) waits no longer
STOP_SECONDS = 3.0  # the longest aclose waits for its tasks (a poll, a database sync)
# Messages kept while Redis is out; past this the oldest go, and the database sync
# (every instance, every revocation_sync_seconds) is what carries them.
PENDING_MAX = 10_000


class RevocationMirror:
    """Keeps ``local`` in step with the ``oauth_revoked_tokens`` table.

    Args:
        grants: the grant store.
        local: the hook the gateway's bearer authenticator asks.
        redis_url: publish and subscribe revocations when given.
        channel: the pub/sub channel, shared by the deployment's instances only.
        interval: seconds between database syncs.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        grants: GrantStore,
        local: InMemoryRevocations,
        *,
        redis_url: str | None = None,
        channel: str = CHANNEL,
        interval: float = 2.0,
        clock: Clock = system_clock,
    ) -> None:
        self.grants = grants
        self.local = local
        self._redis_url = redis_url
        self._channel = channel
        self._redis: Any = None
        self._interval = interval
        self._clock = clock
        self._watermark: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.subscribed = asyncio.Event()  # set while the Redis subscription is live
        self._pending: deque[tuple[str, int]] = deque(maxlen=PENDING_MAX)
        self._publishing = asyncio.Lock()
        self._redis_out = False  # a publish failed: wait for the subscription to return

    async def revoke(self, jti: str, exp: int) -> None:
        """Revoke an access token's ``jti`` until ``exp``: durable, then local, then fan-out."""
        await self.grants.revoke_jti(jti, exp)
        await self.applied([(jti, exp)])

    async def applied(self, revoked: list[tuple[str, int]]) -> None:
        """Mirror revocations already written to the database (e.g. a whole family)."""
        for jti, exp in revoked:
            self.local.revoke_jti(jti, float(exp))
        if self._redis is not None and revoked:
            self._pending.extend(revoked)
            if not self._redis_out:  # else no request waits on a Redis known to be out
                await self._publish_pending()

    async def _publish_pending(self) -> None:
        """Publish the waiting messages, oldest first; those Redis does not take wait for
        the subscription to come back."""
        async with self._publishing:
            try:
                while self._pending:
                    jti, exp = self._pending[0]
                    await self._redis.publish(self._channel, f"{jti} {exp}")
                    self._pending.popleft()
            except Exception as exc:  # noqa: BLE001 - kept, and the database sync repairs
                self._redis_out = True
                log.warning("revocation publish failed, %d waiting for Redis: %s",
                            len(self._pending), exc.__class__.__name__)  # fmt: skip

    async def sync(self) -> int:
        """Read revocations newer than the last seen; returns how many were applied."""
        since = self._watermark - _OVERLAP if self._watermark else datetime.fromtimestamp(0, UTC)
        rows = await self.grants.revoked_since(since)
        for jti, expires_at, revoked_at in rows:
            self.local.revoke_jti(jti, expires_at.timestamp())
            if self._watermark is None or revoked_at > self._watermark:
                self._watermark = revoked_at
        return len(rows)

    async def start(self) -> None:
        await self.sync()
        self._stopping.clear()
        self._tasks.append(asyncio.create_task(self._poll(), name="bastion-revocation-sync"))
        if self._redis_url:
            import redis.asyncio as redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._redis = redis.from_url(
                self._redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 1),
            )
            self._tasks.append(asyncio.create_task(self._listen(), name="bastion-revocation-sub"))

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the mirror is being closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _poll(self) -> None:
        while not self._stopping.is_set():
            await self._pause(self._interval)
            if self._stopping.is_set():
                return
            try:
                await self.sync()
                self.local.purge()
            except Exception as exc:  # noqa: BLE001 - keep syncing; the next round retries
                log.warning("revocation sync failed: %s", exc.__class__.__name__)

    async def _listen(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while not self._stopping.is_set():
                    message = await pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # Redis confirms: publishes reach us
                        await self._resubscribed()
                    elif message["type"] == "message":
                        self._heard(message["data"])
            except Exception as exc:  # noqa: BLE001 - reconnect after a pause
                log.warning("revocation subscription lost: %s", exc.__class__.__name__)
                await self._pause(RECONNECT_SECONDS)
            finally:
                self.subscribed.clear()
                await within(pubsub.aclose(), REDIS_TIMEOUT_SECONDS, "closing the subscription")

    async def _resubscribed(self) -> None:
        """Catch up on what was missed while not subscribed: from the database, then send
        what waited to be published."""
        self.subscribed.set()
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - the periodic sync retries
            log.warning("revocation sync failed: %s", exc.__class__.__name__)
        self._redis_out = False
        await self._publish_pending()

    def _heard(self, data: bytes) -> None:
        jti, _, exp = data.decode(errors="replace").partition(" ")
        if jti and exp.isdigit():
            self.local.revoke_jti(jti, float(exp))

    async def aclose(self) -> None:
        """Stop syncing and listening; never waits more than a few seconds (a task that
        does not end in time is left behind, and said so in the log)."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        await stop_tasks(tasks, STOP_SECONDS, "revocation mirror")
        if self._redis is not None:
            await within(self._redis.aclose(), REDIS_TIMEOUT_SECONDS, "closing the Redis client")
            self._redis = None
