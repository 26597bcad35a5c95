"""The sync service end to end: sample lifecycles signed and published through dossier.events
on the real broker, the service run as `bus sync run` runs it, the portal simulator on the
other side (sync_support.py puts the parts together). Times are compressed: what takes
minutes at the real portal (a session's life, an outage) takes seconds here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sync_support import (
    AGENCY,
    UNIT,
    DeadLetter,
    Portal,
    bus_in,
    depth,
    depths,
    differences,
    finals,
    first,
    history,
    metric,
    outcomes,
    portal_sim,
    sample,
    shuffled_twice,
    sync_service,
    sync_settings,
    take_dead_letters,
)

from bus import headers
from bus.publisher import Publisher
from bus.sync.reconcile import Summary, reconcile
from bus.sync.runner import portal_client
from bus.sync.store import open_store
from bus.topology import DEAD_LETTER_QUEUE, SYNC_QUEUE
from schemas import Event
from schemas.wire import to_dossier_item, to_progress_item

NOTHING_LEFT = {"portal.sync": 0, "portal.sync.retry.1": 0, "portal.sync.retry.2": 0,
                "portal.sync.retry.3": 0, "portal.sync.dlq": 0}  # fmt: skip


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    with portal_sim(tmp_path) as portal:
        yield portal


def test_shuffled_duplicated_events_leave_each_dossiers_last_snapshot_and_no_stale_send(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    dossiers = sample(2000, seed=11)
    events = shuffled_twice(dossiers, seed=12)
    settings = sync_settings(vhost, portal.url, tmp_path)
    before = outcomes()

    async def scenario() -> dict[str, int]:
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(events)
            await service.settled(before, len(events))
            return await depths(vhost, settings)

    started = time.monotonic()
    left = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    done = outcomes() - before

    assert left == NOTHING_LEFT
    assert not first(differences(portal, finals(dossiers)))
    seen = history(portal, dossiers)
    assert not seen.regressions, f"{len(seen.regressions)} stale sends: {first(seen.regressions)}"
    assert not seen.unknown
    # Every delivery is accounted for: applied (one portal item each), or dropped unsent as
    # stale, superseded or a duplicate.
    assert set(done) == {"applied", "stale", "superseded", "duplicate"}
    assert seen.items == done["applied"]
    assert done["applied"] + done["stale"] + done["superseded"] + done["duplicate"] == len(events)
    print(f"\n{len(events)} deliveries in {elapsed:.1f} s: {dict(done)}")


def test_a_faulty_portal_delays_the_sync_but_changes_nothing_and_dead_letters_nothing(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    """10% of calls answer 5xx; every 6 s, 3 calls in a row answer 429 (Retry-After 1 s)
    and the portal drops every session; sessions expire every 2.5 s (the real portal's after
    30 min); 3% of calls stall 2 s after the portal applied them, past the client's 1 s
    timeout, so the client cannot tell that they were applied."""
    dossiers = sample(2000, seed=21)
    events = shuffled_twice(dossiers, seed=22)
    settings = sync_settings(vhost, portal.url, tmp_path, portal_timeout=1.0)
    portal.faults(error_rate=0.1, stall_rate=0.03, stall_seconds=2, session_ttl=2.5, seed=23)
    before = outcomes()

    async def bursts_of_429() -> None:
        while True:
            await asyncio.sleep(6)
            await asyncio.to_thread(portal.faults, throttle_next=3, drop_sessions=True)

    async def scenario() -> dict[str, int]:
        bursts = asyncio.create_task(bursts_of_429())
        try:
            async with bus_in(settings) as bus, sync_service(settings) as service:
                await bus.publish(events)
                await service.settled(before, len(events), timeout=150)
        finally:
            bursts.cancel()
        return await depths(vhost, settings)

    started = time.monotonic()
    left = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    portal.faults(clear=True)
    done = outcomes() - before
    stats = portal.stats()
    faults = stats["faults"]

    assert left == NOTHING_LEFT  # nothing dead-lettered, nothing left behind
    assert not first(differences(portal, finals(dossiers)))
    seen = history(portal, dossiers)
    assert not seen.regressions, f"{len(seen.regressions)} stale sends: {first(seen.regressions)}"
    assert not seen.unknown
    assert set(done) == {"applied", "stale", "superseded", "duplicate", "retried"}
    assert done["applied"] + done["stale"] + done["superseded"] + done["duplicate"] == len(events)
    # The client renews a session before it expires; a dropped one it meets in use.
    assert {"error", "throttle", "stall", "sessions_dropped"} <= set(faults)
    assert stats["calls_refused"].get("401", 0) >= 1
    print(
        f"\n{len(events)} deliveries in {elapsed:.1f} s: {dict(done)}; portal items "
        f"{seen.items}; faults {faults}"
    )


def test_a_due_date_before_reception_dead_letters_that_event_alone_with_the_portals_reason(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    """The contract accepts such a dossier; only the portal's own rule refuses it."""
    dossiers = sample(100, seed=31)
    events = [life[-1] for life in dossiers]
    bad = next(i for i, e in enumerate(events) if e.payload.dossier.received_at is not None)
    events[bad] = wrong_due_date(events[bad])
    # A batch waits up to 1 s for more: the 100 events go to the portal in one call.
    settings = sync_settings(vhost, portal.url, tmp_path, sync_linger=1.0)
    before = outcomes()

    async def scenario() -> list[DeadLetter]:
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(events)
            await service.settled(before, len(events))
        return await asyncio.to_thread(take_dead_letters, vhost)

    dead = asyncio.run(scenario())
    done = outcomes() - before

    assert done == {"applied": 99, "dead_lettered": 1}
    expected = finals(dossiers)
    del expected[str(events[bad].dossier_code)]
    assert not first(differences(portal, expected))
    assert portal.stats()["items"]["by_service"]["DongBoHoSoMC"] == {"0": 99, "1": 1}
    [letter] = dead
    assert letter.message_id == str(events[bad].event_id)
    assert letter.headers[headers.REASON] == "portal_rejected"
    error = letter.headers[headers.ERROR]
    assert str(events[bad].dossier_code) in error
    assert "NgayHenTra" in error
    assert "cannot be before NgayTiepNhan" in error


OUTAGE_SECONDS = 60


def test_while_the_portal_is_down_the_backlog_waits_in_rabbitmq_behind_an_open_breaker(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    """Down for 60 s; the breaker opens after 5 failures and probes after 1 s, then every
    2 s, while the messages wait unacked and the rest of the backlog in RabbitMQ."""
    dossiers = sample(300, seed=41)
    events = [event for life in dossiers for event in life]
    settings = sync_settings(vhost, portal.url, tmp_path)
    before = outcomes()
    openings = metric("bus_portal_breaker_openings_total")
    portal.faults(down=True)

    async def scenario() -> tuple[list[int], list[int], list[float], float]:
        backlog, dead, breaker = [], [], []
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(events)
            for _ in range(OUTAGE_SECONDS):
                await asyncio.sleep(1)
                backlog.append(await depth(vhost, SYNC_QUEUE))
                dead.append(await depth(vhost, DEAD_LETTER_QUEUE))
                breaker.append(metric("bus_portal_breaker_open"))
            await asyncio.to_thread(portal.faults, down=False)
            await service.settled(before, len(events))
            return backlog, dead, breaker, metric("bus_portal_breaker_open")

    backlog, dead, breaker, breaker_after = asyncio.run(scenario())
    done = outcomes() - before

    assert min(backlog) > 0, backlog
    assert dead == [0] * OUTAGE_SECONDS
    assert 1 in breaker, breaker
    assert metric("bus_portal_breaker_openings_total") > openings
    assert breaker_after == 0  # closed again
    assert not first(differences(portal, finals(dossiers)))
    assert done["applied"] + done["stale"] + done["superseded"] + done["duplicate"] == len(events)
    assert "dead_lettered" not in done
    print(f"\nbacklog while down {backlog}; breaker {breaker}; {dict(done)}")


def test_reconcile_requeues_only_the_dossiers_the_portal_lost_or_holds_differently(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    """The simulator cannot delete one dossier, so the portal's state is rebuilt instead:
    reset, then every dossier written again through the portal API but 20 left out
    (missing), 10 with another summary and 10 without their last progress step
    (different)."""
    dossiers = sample(200, seed=51)
    events = [event for life in dossiers for event in life]
    expected = finals(dossiers)
    codes = sorted(code for code, dossier in expected.items() if dossier.progress)
    missing, changed, short = set(codes[:20]), set(codes[20:30]), set(codes[30:40])
    settings = sync_settings(vhost, portal.url, tmp_path)
    before = outcomes()

    async def rebuild_portal() -> None:
        items, steps = [], []
        for code, dossier in expected.items():
            if code in missing:
                continue
            item = dict(to_dossier_item(dossier))
            if code in changed:
                item["TrichYeuHoSo"] = "Sửa trực tiếp trên Cổng, ngoài hệ thống một cửa"
            items.append(item)
            kept = dossier.progress[:-1] if code in short else dossier.progress
            steps += [to_progress_item(code, step) for step in kept]
        await asyncio.to_thread(portal.reset)
        async with portal_client(settings) as client:
            for start in range(0, len(items), 100):
                await client.upsert_dossiers(AGENCY, items[start : start + 100], updating=False)
            for start in range(0, len(steps), 100):
                await client.record_progress(AGENCY, steps[start : start + 100])

    async def reconcile_unit(publisher: Publisher) -> Summary:
        async with (
            open_store(settings.state_url.get_secret_value()) as store,
            portal_client(settings) as client,
        ):
            return await reconcile(store, client, publisher, UNIT)

    async def scenario() -> tuple[Summary, Summary, dict[str, int]]:
        async with bus_in(settings) as bus:
            async with sync_service(settings) as service:
                await bus.publish(events)
                await service.settled(before, len(events))
            assert not first(differences(portal, expected))
            await rebuild_portal()
            assert len(differences(portal, expected)) == 40
            first_run = await reconcile_unit(bus.publisher)
            between = outcomes()
            # A new process: a running one drops the re-queued events as duplicates (see
            # the test marked xfail below).
            async with sync_service(settings) as service:
                await service.settled(between, first_run.requeued)
            second_run = await reconcile_unit(bus.publisher)
            return first_run, second_run, dict(outcomes() - between)

    first_run, second_run, resync = asyncio.run(scenario())

    assert (first_run.checked, first_run.in_step) == (200, 160)
    assert (first_run.missing, first_run.different, first_run.unreadable) == (20, 20, 0)
    assert first_run.requeued == 40
    assert resync == {"applied": 40}
    assert not first(differences(portal, expected))
    # Since the reset: 160 + 20 written by the test, 20 + 20 re-sent by the bus; the 20
    # "different" ones were first sent as creations ("already exists", code 2).
    assert portal.stats()["items"]["by_service"]["DongBoHoSoMC"] == {"0": 220, "2": 20}
    assert (second_run.in_step, second_run.requeued) == (200, 0)


def test_a_running_sync_service_applies_what_reconcile_requeues(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    dossiers = sample(20, seed=61)
    events = [event for life in dossiers for event in life]
    settings = sync_settings(vhost, portal.url, tmp_path)
    before = outcomes()

    async def scenario() -> dict[str, int]:
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(events)
            await service.settled(before, len(events))
            await asyncio.to_thread(portal.reset)
            between = outcomes()
            async with (
                open_store(settings.state_url.get_secret_value()) as store,
                portal_client(settings) as client,
            ):
                summary = await reconcile(store, client, bus.publisher, UNIT)
            await service.settled(between, summary.requeued, timeout=10)
            return dict(outcomes() - between)

    assert asyncio.run(scenario()) == {"applied": 20}
    assert not first(differences(portal, finals(dossiers)))


def test_a_dossier_the_portal_lost_gets_all_its_progress_again_with_its_next_event(
    vhost: str, portal: Portal, tmp_path: Path
) -> None:
    """The portal restored from an old backup: the next update is answered "does not
    exist", and the dossier is created again, with every step it had, not only the new."""
    dossiers = [life for life in sample(60, seed=71) if len(life) >= 5][:20]
    earlier = [event for life in dossiers for event in life[:-1]]
    latest = [life[-1] for life in dossiers]
    settings = sync_settings(vhost, portal.url, tmp_path)
    before = outcomes()

    async def scenario() -> None:
        async with bus_in(settings) as bus, sync_service(settings) as service:
            await bus.publish(earlier)
            await service.settled(before, len(earlier))
            await asyncio.to_thread(portal.reset)
            await bus.publish(latest)
            await service.settled(before, len(earlier) + len(latest))

    asyncio.run(scenario())

    assert not first(differences(portal, finals(dossiers)))


# ---- helpers ----------------------------------------------------------------------------------


def wrong_due_date(event: Event) -> Event:
    """The event with its dossier due a day before it was received."""
    dossier = event.payload.dossier
    assert dossier.received_at is not None
    wrong = dossier.model_copy(update={"due_at": dossier.received_at - timedelta(days=1)})
    payload = event.payload.model_copy(update={"dossier": wrong})
    return event.model_copy(update={"payload": payload})
