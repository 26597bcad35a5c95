"""Every event is attributable: the sync service applies only what a connector signed with a
valid key of its own AND published as its own broker user, and dead-letters the rest with
reason `signature`, while the valid events around it are applied.

Everything is real: connectors provisioned as `bus provision connector` makes them (their
own broker users, Ed25519 keys in the registry bound to connector, unit and user), the
broker, the sync service as `bus sync run` runs it, and the portal simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from accounts_support import Account, accounts, heartbeats, publishing_as, unique

from bus import headers
from bus.message import Outgoing
from bus.provision import retire_key, rotate_key
from bus.publisher import event_message
from bus.settings import Settings
from bus.signing import RELOAD_INTERVAL, Signer
from bus.topology import DEAD_LETTER_QUEUE
from connectors.config import load_config
from connectors.runner import Connector
from connectors.sample import lifecycles
from connectors.sample.local import LocalSystem
from connectors.sample.rest import SampleServer, create_app
from schemas import Dossier, Event
from sync.sync_support import (
    AGENCY,
    START,
    UNIT,
    DeadLetter,
    Portal,
    bus_in,
    depth,
    differences,
    finals,
    outcomes,
    portal_sim,
    sync_service,
    sync_settings,
    take_dead_letters,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"


@dataclass
class Flow:
    """The sync pipeline, reading the registry that `bus provision` wrote for `accounts`."""

    portal: Portal
    settings: Settings
    accounts: list[Account]

    @property
    def url(self) -> str:
        return self.settings.amqp_url.get_secret_value()

    async def synced(self, expected: dict[str, Dossier], timeout: float = 90) -> list[str]:
        """Wait until the portal holds exactly `expected`; the differences left."""
        deadline = time.monotonic() + timeout
        while True:
            problems = await asyncio.to_thread(differences, self.portal, expected)
            if not problems or time.monotonic() > deadline:
                return problems
            await asyncio.sleep(0.3)

    async def dead_letters(self, count: int, timeout: float = 60) -> dict[str, DeadLetter]:
        """Wait for `count` dead letters and take them all, by event id."""
        deadline = time.monotonic() + timeout
        while await depth(self.url, DEAD_LETTER_QUEUE) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"not {count} dead letters within {timeout} s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # anything more on its way shows up too
        taken = await asyncio.to_thread(take_dead_letters, self.url)
        return {str(letter.message_id): letter for letter in taken}


@contextlib.asynccontextmanager
async def flow(
    vhost: str, management_url: str, tmp_path: Path, systems: int = 1
) -> AsyncIterator[Flow]:
    wanted = [(UNIT, unique()) for _ in range(systems)]
    with accounts(vhost, management_url, tmp_path, wanted) as made, portal_sim(tmp_path) as portal:
        settings = sync_settings(vhost, portal.url, tmp_path, verify_keys_file=made[0].registry)
        async with bus_in(settings), sync_service(settings):
            yield Flow(portal, settings, made)


def dossiers_of(account: Account, count: int, seed: int) -> list[list[Event]]:
    """`count` dossiers of the connector, received on a day of their own (their codes hold
    it): dossiers of different seeds never share a code."""
    start = START + timedelta(days=seed)
    return lifecycles(AGENCY, count, seed=seed, start=start, connector=account.connector)


def every(dossiers: list[list[Event]]) -> list[Event]:
    return [event for lifecycle in dossiers for event in lifecycle]


def reason_of(letter: DeadLetter) -> tuple[str, str]:
    return str(letter.headers.get(headers.REASON)), str(letter.headers.get(headers.ERROR))


# ---- what the sync service refuses ----------------------------------------------------------

Forge = Callable[[Flow, Event], Awaitable[tuple[str, bytes]]]


async def as_connector(account: Account, message: Outgoing) -> None:
    async with publishing_as(account) as sender:
        await sender.publisher.publish(message)


async def tampered_body(flow: Flow, base: Event) -> tuple[str, bytes]:
    [igate] = flow.accounts
    signed = event_message(base, igate.signer)
    data = json.loads(signed.body)
    data["seq"] += 1000  # a newer version the connector never sent
    body = json.dumps(data, ensure_ascii=False).encode()
    await as_connector(igate, replace(signed, body=body))
    return str(base.event_id), body


async def tampered_key_id_header(flow: Flow, base: Event) -> tuple[str, bytes]:
    # Relabelled with the id of another genuine key of the same connector.
    [igate] = flow.accounts
    other = rotate_key(igate.registry, igate.key_file.parent, igate.connector)
    await asyncio.sleep(RELOAD_INTERVAL + 0.5)  # the running service knows that key too
    signed = event_message(base, igate.signer)
    relabelled = {**signed.headers, headers.KEY_ID: other.key.key_id}
    await as_connector(igate, replace(signed, headers=relabelled))
    return str(base.event_id), signed.body


async def signature_header_of_another_event(flow: Flow, base: Event) -> tuple[str, bytes]:
    [igate] = flow.accounts
    signed = event_message(base, igate.signer)
    other = event_message(replace_seq(base, base.seq + 1), igate.signer)
    copied = {**signed.headers, headers.SIGNATURE: other.headers[headers.SIGNATURE]}
    await as_connector(igate, replace(signed, headers=copied))
    return str(base.event_id), signed.body


async def tampered_event_id(flow: Flow, base: Event) -> tuple[str, bytes]:
    [igate] = flow.accounts
    signed = event_message(base, igate.signer)
    event_id = "00000000-0000-4000-8000-000000000001"
    await as_connector(igate, replace(signed, message_id=event_id))
    return event_id, signed.body


async def unknown_key_id(flow: Flow, base: Event) -> tuple[str, bytes]:
    [igate] = flow.accounts
    unregistered = Signer.generate(f"{igate.connector}-not-registered")
    signed = event_message(base, unregistered)
    await as_connector(igate, signed)
    return str(base.event_id), signed.body


def replace_seq(event: Event, seq: int) -> Event:
    return event.model_copy(update={"seq": seq})


FORGED = [
    pytest.param(tampered_body, "does not match", id="tampered-body"),
    pytest.param(tampered_key_id_header, "does not match", id="tampered-key-id-header"),
    pytest.param(signature_header_of_another_event, "does not match", id="copied-signature"),
    pytest.param(tampered_event_id, "does not match", id="tampered-event-id"),
    pytest.param(unknown_key_id, "unknown key id", id="unknown-key-id"),
]


@pytest.mark.parametrize(("forge", "explained"), FORGED)
def test_a_forged_event_is_dead_lettered_with_reason_signature_and_the_valid_ones_applied(
    vhost: str, management_url: str, tmp_path: Path, forge: Forge, explained: str
) -> None:
    async def scenario() -> tuple[list[str], str, bytes, dict[str, DeadLetter]]:
        async with flow(vhost, management_url, tmp_path) as bus:
            [igate] = bus.accounts
            dossiers = dossiers_of(igate, 10, seed=71)
            [spare] = dossiers_of(igate, 1, seed=72)  # only the forged event names it
            events = every(dossiers)
            async with publishing_as(igate) as sender:
                await sender.publish(events[: len(events) // 2])
                event_id, body = await forge(bus, spare[-1])
                await sender.publish(events[len(events) // 2 :])
            problems = await bus.synced(finals(dossiers))
            return problems, event_id, body, await bus.dead_letters(1)

    problems, event_id, body, dead = asyncio.run(scenario())

    assert problems == []
    assert list(dead) == [event_id]
    assert dead[event_id].body == body
    reason, error = reason_of(dead[event_id])
    assert reason == "signature"
    assert explained in error


def test_an_event_signed_with_a_connectors_key_but_published_by_another_user_is_dead_lettered(
    vhost: str, management_url: str, tmp_path: Path
) -> None:
    """Another connector of the same unit, which may publish the unit's routing keys, has
    stolen igate's private key: the signature is valid, the connector named is igate, but
    the broker says who published it."""

    async def scenario() -> tuple[list[str], str, str, dict[str, DeadLetter]]:
        async with flow(vhost, management_url, tmp_path, systems=2) as bus:
            igate, thief = bus.accounts
            dossiers = dossiers_of(igate, 5, seed=73)
            [stolen] = dossiers_of(igate, 1, seed=74)
            async with publishing_as(igate) as sender:
                await sender.publish(every(dossiers))
            async with publishing_as(thief, signer=igate.signer) as sender:
                await sender.publish(stolen[:1])
            problems = await bus.synced(finals(dossiers))
            return problems, str(stolen[0].event_id), thief.connector, await bus.dead_letters(1)

    problems, event_id, thief, dead = asyncio.run(scenario())

    assert problems == []
    assert list(dead) == [event_id]
    reason, error = reason_of(dead[event_id])
    assert reason == "signature"
    assert f"and {thief!r} published this" in error
    # The dead letter says who really published it, for the operator who looks.
    assert dead[event_id].headers[headers.PUBLISHED_BY] == thief


# ---- what it accepts ------------------------------------------------------------------------


def test_during_a_rotation_both_keys_are_accepted_and_once_retired_the_old_one_is_refused(
    vhost: str, management_url: str, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[str], int, list[str], str, dict[str, DeadLetter]]:
        async with flow(vhost, management_url, tmp_path) as bus:
            [igate] = bus.accounts
            old = igate.signer
            rotated = rotate_key(igate.registry, tmp_path / "secrets", igate.connector)
            new = Signer.from_text(rotated.key.key_id, rotated.file.read_text().strip())
            before, after = dossiers_of(igate, 8, seed=75), dossiers_of(igate, 8, seed=76)
            await asyncio.sleep(RELOAD_INTERVAL + 0.5)  # the running service sees the new key
            async with publishing_as(igate, signer=old) as sender:
                await sender.publish(every(before)[::2])
            async with publishing_as(igate, signer=new) as sender:
                await sender.publish(every(before)[1::2])
            both = await bus.synced(finals(before))
            depth_after_both = await depth(bus.url, DEAD_LETTER_QUEUE)

            retire_key(igate.registry, old.key_id)
            await asyncio.sleep(RELOAD_INTERVAL + 0.5)
            [late] = dossiers_of(igate, 1, seed=77)
            async with publishing_as(igate, signer=old) as sender:
                await sender.publish(late[:1])
            async with publishing_as(igate, signer=new) as sender:
                await sender.publish(every(after))
            only_new = await bus.synced(finals(before) | finals(after))
            dead = await bus.dead_letters(1)
            return both, depth_after_both, only_new, str(late[0].event_id), dead

    both, dead_after_both, only_new, event_id, dead = asyncio.run(scenario())

    assert both == []
    assert dead_after_both == 0
    assert only_new == []
    assert list(dead) == [event_id]
    reason, error = reason_of(dead[event_id])
    assert reason == "signature"
    assert "is retired" in error


def test_an_event_retried_after_a_portal_failure_keeps_its_publisher_and_is_applied(
    vhost: str, management_url: str, tmp_path: Path
) -> None:
    # The retry copy is the sync service's publish: without the publisher it carries in a
    # header, the key bound to igate's broker user would refuse it on its way back.
    async def scenario() -> tuple[list[str], int, int]:
        async with flow(vhost, management_url, tmp_path) as bus:
            [igate] = bus.accounts
            dossiers = dossiers_of(igate, 6, seed=78)
            before = outcomes()
            await asyncio.to_thread(bus.portal.faults, error_next=3)
            async with publishing_as(igate) as sender:
                await sender.publish(every(dossiers))
            problems = await bus.synced(finals(dossiers))
            retried = (outcomes() - before)["retried"]
            return problems, retried, await depth(bus.url, DEAD_LETTER_QUEUE)

    problems, retried, dead = asyncio.run(scenario())

    assert problems == []
    assert retried >= 1
    assert dead == 0


def test_a_connector_run_on_its_provisioned_account_delivers_its_dossiers(
    vhost: str, management_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connector runtime needs nothing but what `bus provision` gave it: it declares
    nothing, publishes its events and heartbeats under its unit's keys, as its own user."""
    local = LocalSystem(AGENCY, 20, seed=79, start=START - timedelta(days=1))
    local.advance(local.remaining)
    monkeypatch.setenv("H29_API_KEY", "sample-key")

    async def scenario() -> tuple[str, list[str], list[tuple[str, str | None]], int]:
        async with flow(vhost, management_url, tmp_path) as bus:
            [igate] = bus.accounts
            config = load_config(EXAMPLES / "rest_poll.toml")
            with SampleServer(create_app(local, "sample-key")) as url:
                table = config.connector.model_copy(
                    update={
                        "name": igate.connector,
                        "state_dir": tmp_path / "state",
                        "poll_interval": 0.2,
                    }
                )
                source = {**config.source, "url": f"{url}/api/v1/ho-so"}
                config = config.model_copy(update={"connector": table, "source": source})
                settings = Settings(
                    amqp_url=igate.amqp_url,
                    signing_key_file=igate.key_file,
                    signing_key_id=igate.signer.key_id,
                    reconnect_max_delay=0.5,
                )
                connector = Connector(config, settings)
                task = asyncio.create_task(connector.run())
                try:
                    problems = await bus.synced(local.expected())
                    assert not task.done(), task
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            beats = [(beat.app_id or "", beat.user_id) for beat in await heartbeats(bus.url)]
            return igate.connector, problems, beats, await depth(bus.url, DEAD_LETTER_QUEUE)

    connector, problems, beats, dead = asyncio.run(scenario())

    assert problems == []
    assert dead == 0
    assert beats  # the first one goes out as soon as the connection is open
    assert set(beats) == {(connector, connector)}  # its name, and the broker's word for it
