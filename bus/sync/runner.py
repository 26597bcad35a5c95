"""Build the sync service from the settings, and run it as a consumer of portal.sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from bus import runtime
from bus.broker import Connection
from bus.consumer import Consumer
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
from bus.topology import SYNC_QUEUE

log = structlog.get_logger(__name__)


class UnsignedRefused(Exception):
    """Signature checks are on by default: turning them off must be said out loud."""


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
    """Consume portal.sync until SIGTERM (or, with `until_idle`, until it stays empty)."""
    keys = key_ring(settings)
    store = open_store(settings.state_url.get_secret_value())
    async with store, portal_client(settings) as portal:
        service = SyncService(
            store,
            portal,
            batch_size=settings.sync_batch_size,
            linger=settings.sync_linger,
            concurrency=settings.sync_concurrency,
            cache_size=settings.sync_cache_dossiers,
        )
        await service.resume()
        connection = Connection.from_settings(settings, name="bus-sync")
        publisher = Publisher(connection, window=settings.publish_window)
        consumer = Consumer(
            connection,
            SYNC_QUEUE,
            service.handle,
            middleware=standard(SYNC_QUEUE, publisher, settings, keys),
            prefetch=settings.prefetch,
        )
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
