"""Build the sync service from the settings, and run it as a consumer of portal.sync, or, as
worker I of W, of the sync shards: its own first, the others as a standby."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from bus import runtime
from bus.broker import Channel, Connection
from bus.consumer import Consumer
from bus.message import Message
from bus.metrics import PORTAL_BREAKER_OPEN, PORTAL_BREAKER_OPENINGS
from bus.middleware import standard
from bus.probes import NotReady, ProbeServer
from bus.publisher import Publisher
from bus.settings import Settings
from bus.signing import KeyRing
from bus.sync.breaker import BreakerState, CircuitBreaker
from bus.sync.portal import PortalClient
from bus.sync.ratelimit import TokenBucket
from bus.sync.service import SyncService
from bus.sync.store import StateStore, open_store
from bus.topology import SHARDS_EXCHANGE, own_shards, sharded, sync_queues

log = structlog.get_logger(__name__)


class UnsignedRefused(Exception):
    """Signature checks are on by default: turning them off must be said out loud."""


class WorkersRefused(Exception):
    """A worker count or index the queues cannot serve in order."""


def check_workers(settings: Settings) -> None:
    """Several workers need shards: portal.sync has no single active consumer, and two
    workers taking turns on one dossier's events could send them out of order."""
    if settings.sync_worker_index >= settings.sync_workers:
        raise WorkersRefused(
            f"worker index {settings.sync_worker_index} is not below the worker count"
            f" {settings.sync_workers} (indexes count from 0; --worker counts from 1)"
        )
    if settings.sync_workers > 1 and not sharded(settings):
        raise WorkersRefused(
            f"{settings.sync_workers} sync workers need BUS_SYNC_SHARDS above 1: the single"
            " queue portal.sync can have only one sync worker"
        )


def worker_name(settings: Settings) -> str:
    """The connection's name on the broker, where the management UI shows each shard's
    active consumer: bus-sync, or bus-sync-2/3 for worker 2 of 3."""
    if settings.sync_workers == 1:
        return "bus-sync"
    return f"bus-sync-{settings.sync_worker_index + 1}/{settings.sync_workers}"


def key_ring(settings: Settings) -> KeyRing | None:
    if settings.verify_keys_file is not None:
        return KeyRing.load(settings.verify_keys_file)
    if settings.allow_unsigned:
        log.warning("signature checks are OFF (BUS_ALLOW_UNSIGNED): development only")
        return None
    raise UnsignedRefused(
        "set BUS_VERIFY_KEYS_FILE to the connectors' key registry, or BUS_ALLOW_UNSIGNED=true "
        "to run without signature checks in development"
    )


def _on_breaker(old: BreakerState, new: BreakerState) -> None:
    PORTAL_BREAKER_OPEN.set(0 if new is BreakerState.CLOSED else 1)
    if new is BreakerState.OPEN and old is BreakerState.CLOSED:
        PORTAL_BREAKER_OPENINGS.inc()


@asynccontextmanager
async def portal_client(settings: Settings) -> AsyncIterator[PortalClient]:
    bucket = TokenBucket(settings.sync_rate, min_rate=settings.sync_min_rate)
    breaker = CircuitBreaker(
        threshold=settings.breaker_threshold,
        cooldown=settings.breaker_cooldown,
        max_cooldown=settings.breaker_max_cooldown,
        probe_timeout=3 * settings.portal_timeout,
        on_change=_on_breaker,
    )
    async with PortalClient(
        settings.portal_url,
        settings.portal_username,
        settings.portal_password.get_secret_value(),
        timeout=settings.portal_timeout,
        concurrency=settings.sync_concurrency,
        bucket=bucket,
        breaker=breaker,
    ) as client:
        yield client


async def run_sync(settings: Settings, *, until_idle: float | None = None) -> None:
    """Consume the sync queues until SIGTERM (or, with `until_idle`, until they stay empty)."""
    check_workers(settings)
    keys = key_ring(settings)
    store = open_store(settings.state_url.get_secret_value())
    async with store, portal_client(settings) as portal:
        consumer: Consumer | None = None

        def holds(message: Message) -> bool:
            return consumer is not None and consumer.holds(message)

        service = SyncService(
            store,
            portal,
            batch_size=settings.sync_batch_size,
            linger=settings.sync_linger,
            concurrency=settings.sync_concurrency,
            cache_size=settings.sync_cache_dossiers,
            lease=holds,
        )
        connection = Connection.from_settings(settings, name=worker_name(settings))
        publisher = Publisher(connection, window=settings.publish_window)

        async def reopened(channel: Channel) -> None:
            # Before the consumer subscribes again (listeners run in turn): a failing store
            # read fails the reopen, and the connection tries again.
            await channel.close()
            await service.reopen()

        connection.on_open(reopened)
        queues = sync_queues(settings)
        own = len(own_shards(settings)) if sharded(settings) else 1
        consumer = Consumer(
            connection,
            queues[:own],
            service.handle,
            middleware=lambda queue: standard(queue, publisher, settings, keys),
            prefetch=settings.prefetch,
            standby=queues[own:],
            internal=(SHARDS_EXCHANGE,),
        )
        log.info("sync worker", queues=queues[:own], standby=queues[own:])
        probes = _probes(settings, connection, store)
        if probes is not None:
            await probes.start()  # before the broker: /healthz answers while it connects
        try:
            await connection.start()
            consumer.stop_on_signals()
            runtime.settle()
            await consumer.run(until_idle=until_idle)
        finally:
            await service.close()
            await connection.close()
            if probes is not None:
                await probes.stop()


def _probes(settings: Settings, connection: Connection, store: StateStore) -> ProbeServer | None:
    """/metrics, /healthz and /readyz on BUS_METRICS_PORT, if set: ready while the broker
    connection is open and the state store answers."""
    if settings.metrics_port is None:
        return None

    async def broker() -> None:
        if not connection.is_open:
            raise NotReady("the connection to the broker is not open")

    checks = {"broker": broker, "store": store.ping}
    return ProbeServer(checks, settings.metrics_host, settings.metrics_port)
