"""Bodies published straight onto dossier.events: each bad one ends in portal.sync.dlq at once,
body intact, with the reason in `x-bus-reason`, while every valid event published around it
is applied on the portal simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from badinput_support import BODY_LIMIT, Published, Sender, published, reason_of, synced
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import headers
from bus.signing import Signer
from connectors.sample import lifecycles
from schemas import Event, encode_event
from strategies import refused_bodies
from sync.sync_support import AGENCY, CONNECTOR, START, UNIT, finals, sample

# Events of dossiers that only bad input names: none of them may reach the portal.
SPARE = lifecycles(AGENCY, 40, seed=97, start=START - timedelta(days=400))
BODY_REASONS = {"not_json", "not_utf8", "contract", "unknown_type"}

Send = Callable[[Sender, Event], Awaitable[tuple[str, bytes]]]


def spoiled(base: Event, change: Callable[[dict[str, object]], None]) -> bytes:
    data = json.loads(encode_event(base))
    change(data)
    return json.dumps(data, ensure_ascii=False).encode()


async def sent(send: Sender, base: Event, body: bytes, **options: object) -> tuple[str, bytes]:
    return await send.bad(body, base, **options), body  # type: ignore[arg-type]


async def not_json(send: Sender, base: Event) -> tuple[str, bytes]:
    return await sent(send, base, b"<HoSo><MaHoSo>not JSON</MaHoSo></HoSo>")


async def not_utf8(send: Sender, base: Event) -> tuple[str, bytes]:
    body = encode_event(base).replace(b'"seq"', b'"s\xe9q"')
    return await sent(send, base, body)


async def huge(send: Sender, base: Event) -> tuple[str, bytes]:
    return await sent(send, base, encode_event(base) + b" " * BODY_LIMIT)


async def unknown_type(send: Sender, base: Event) -> tuple[str, bytes]:
    body = spoiled(base, lambda data: data.update(event_type="dossier_deleted"))
    return await sent(send, base, body, event_type="dossier_deleted")


async def missing_signature(send: Sender, base: Event) -> tuple[str, bytes]:
    return await sent(send, base, encode_event(base), sign=False)


async def wrong_signature(send: Sender, base: Event) -> tuple[str, bytes]:
    forged = Signer(send.signer.key_id, "hmac-sha256", b"not the connector's secret")
    return await sent(send, base, encode_event(base), signer=forged)


async def tampered_after_signing(send: Sender, base: Event) -> tuple[str, bytes]:
    body = encode_event(base)
    changed = spoiled(base, lambda data: data.update(seq=base.seq + 1000))
    return await sent(send, base, changed, signed_body=body)


async def missing_field(send: Sender, base: Event) -> tuple[str, bytes]:
    return await sent(send, base, spoiled(base, lambda data: data.pop("dossier_code")))


def _status(data: dict[str, object], code: int) -> None:
    payload = data["payload"]
    assert isinstance(payload, dict)
    payload["dossier"]["status"] = code


async def unknown_status_code(send: Sender, base: Event) -> tuple[str, bytes]:
    return await sent(send, base, spoiled(base, lambda data: _status(data, 42)))


async def agency_of_another_unit(send: Sender, base: Event) -> tuple[str, bytes]:
    def elsewhere(data: dict[str, object]) -> None:
        source = data["source"]
        assert isinstance(source, dict)
        source["agency"] = "000.00.01.G01"

    return await sent(send, base, spoiled(base, elsewhere))


async def malformed_dossier_code(send: Sender, base: Event) -> tuple[str, bytes]:
    def garbled(data: dict[str, object]) -> None:
        data["dossier_code"] = "H29/2025/0001"
        payload = data["payload"]
        assert isinstance(payload, dict)
        payload["dossier"]["code"] = "H29/2025/0001"

    return await sent(send, base, spoiled(base, garbled))


BAD = [
    pytest.param(not_json, "not_json", "not JSON", id="not-json"),
    pytest.param(not_utf8, "not_utf8", "not UTF-8", id="not-utf8"),
    pytest.param(huge, "too_large", "byte limit", id="huge"),
    pytest.param(unknown_type, "unknown_type", "dossier_deleted", id="unknown-type"),
    pytest.param(missing_signature, "signature", "not signed", id="missing-signature"),
    pytest.param(wrong_signature, "signature", "does not match", id="wrong-signature"),
    pytest.param(tampered_after_signing, "signature", "does not match", id="tampered"),
    pytest.param(missing_field, "contract", "dossier_code", id="missing-field"),
    pytest.param(unknown_status_code, "contract", "status", id="unknown-status-code"),
    pytest.param(agency_of_another_unit, "contract", "unit", id="agency-of-another-unit"),
    pytest.param(malformed_dossier_code, "contract", "dossier_code", id="malformed-code"),
]


def run_among_valid(
    vhost: str, tmp_path: Path, bad: list[Send], seed: int
) -> tuple[list[str], list[tuple[str, bytes]], dict[str, object]]:
    """Publish the events of 30 dossiers with the bad bodies (one per `bad`, each spoiled
    from a spare dossier's event) in the middle; the portal's differences from the 30
    dossiers' final states, what was sent bad, and the dead letters by message id."""
    dossiers = sample(30, seed=seed)
    events = [event for lifecycle in dossiers for event in lifecycle]
    bases = [lifecycle[-1] for lifecycle in SPARE[: len(bad)]]

    async def scenario() -> tuple[list[str], list[tuple[str, bytes]], dict[str, object]]:
        async with published(vhost, tmp_path) as bus:
            half = len(events) // 2
            await bus.send.good(events[:half])
            sent_bad = [await send(bus.send, base) for send, base in zip(bad, bases, strict=True)]
            await bus.send.good(events[half:])
            dead = await bus.dead_letters(len(bad))
            spare = {str(base.dossier_code) for base in bases}
            problems = await synced(bus.portal, UNIT, finals(dossiers), spare)
            return problems, sent_bad, dict(dead)

    return asyncio.run(scenario())


@pytest.mark.parametrize(("send", "reason", "explained"), BAD)
def test_a_bad_body_is_dead_lettered_with_its_reason_and_every_valid_event_around_it_is_applied(
    vhost: str, tmp_path: Path, send: Send, reason: str, explained: str
) -> None:
    problems, [(event_id, body)], dead = run_among_valid(vhost, tmp_path, [send], seed=61)

    assert problems == []
    assert list(dead) == [event_id]
    letter = dead[event_id]
    assert letter.body == body  # type: ignore[attr-defined]
    said, error = reason_of(letter)  # type: ignore[arg-type]
    assert said == reason
    assert explained in error
    assert letter.headers[headers.ATTEMPT] == 1  # type: ignore[attr-defined]


def test_every_kind_of_bad_body_at_once_leaves_the_valid_flow_whole(
    vhost: str, tmp_path: Path
) -> None:
    sends = [param.values[0] for param in BAD]
    problems, sent_bad, dead = run_among_valid(vhost, tmp_path, sends, seed=62)

    assert problems == []
    assert sorted(dead) == sorted(event_id for event_id, _ in sent_bad)
    said = [reason_of(dead[event_id])[0] for event_id, _ in sent_bad]  # type: ignore[arg-type]
    assert said == [param.values[1] for param in BAD]


def test_a_valid_event_of_another_unit_under_this_units_routing_key_is_not_applied(
    vhost: str, tmp_path: Path
) -> None:
    # The broker lets a connector publish only under its own unit's routing keys; a body
    # naming another unit's dossier must not ride in under them.
    [foreign] = lifecycles("000.00.01.G01", 1, seed=63, start=START, connector=CONNECTOR)
    dossiers = sample(5, seed=64)
    base = foreign[-1]

    async def scenario() -> tuple[list[str], list[str], dict[str, object]]:
        async with published(vhost, tmp_path) as bus:
            await bus.send.good([event for lifecycle in dossiers for event in lifecycle])
            event_id = await bus.send.bad(
                encode_event(base), base, routing_key=f"{UNIT}.{base.event_type}"
            )
            problems = await synced(bus.portal, UNIT, finals(dossiers))
            await asyncio.sleep(1.0)  # time enough for the foreign event to be applied
            foreign_held = list(bus.portal.records("G01"))
            dead = await bus.dead_letters(1, timeout=10)
            return problems, foreign_held, {event_id: dead.get(event_id)}

    problems, foreign_held, dead = asyncio.run(scenario())
    assert problems == []
    assert foreign_held == []
    [letter] = dead.values()
    assert reason_of(letter) == (  # type: ignore[arg-type]
        "contract",
        f"event of unit G01 published under routing key 'H29.{base.event_type}'",
    )


def test_generated_bad_bodies_are_each_dead_lettered_with_their_reason_while_the_valid_flow_goes_on(
    vhost: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with published(vhost, tmp_path) as bus:
            expected: dict[str, object] = {}
            rounds = iter(range(1, 10_000))

            def on_the_loop(step: Awaitable[object]) -> object:
                return asyncio.run_coroutine_threadsafe(step, loop).result(timeout=120)  # type: ignore[arg-type]

            @settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(data=st.data())
            def check(data: st.DataObject) -> None:
                round_ = next(rounds)
                base = SPARE[data.draw(st.integers(0, len(SPARE) - 1))][-1]
                valid = json.loads(encode_event(base))
                bad = data.draw(st.lists(refused_bodies(valid, BODY_LIMIT), min_size=1, max_size=3))
                signing = data.draw(
                    st.lists(
                        st.sampled_from(["signed", "unsigned", "forged"]),
                        min_size=len(bad),
                        max_size=len(bad),
                    )
                )
                fresh = lifecycles(AGENCY, 2, seed=round_, start=START + timedelta(days=round_))
                expected.update(finals(fresh))
                on_the_loop(_round(bus, fresh, base, bad, signing, dict(expected)))

            await asyncio.to_thread(check)

    asyncio.run(scenario())


async def _round(
    bus: Published,
    fresh: list[list[Event]],
    base: Event,
    bad: list[tuple[bytes, str]],
    signing: list[str],
    expected: dict[str, object],
) -> None:
    events = [event for lifecycle in fresh for event in lifecycle]
    forged = Signer(bus.send.signer.key_id, "hmac-sha256", b"forged")
    await bus.send.good(events[:1])
    ids = {}
    for (body, reason), how in zip(bad, signing, strict=True):
        options = {"sign": how != "unsigned", "signer": forged if how == "forged" else None}
        event_id = await bus.send.bad(body, base, **options)  # type: ignore[arg-type]
        if reason != "too_large" and how != "signed":
            reason = "signature"  # checked before the body is read
        ids[event_id] = (body, reason)
    await bus.send.good(events[1:])
    dead = await bus.dead_letters(len(bad))
    assert sorted(dead) == sorted(ids)
    for event_id, (body, reason) in ids.items():
        letter = dead[event_id]
        assert letter.body == body
        said, error = reason_of(letter)
        assert said in BODY_REASONS if reason == "" else said == reason, (said, error, body[:80])
        assert error
    problems = await synced(bus.portal, UNIT, expected, {str(base.dossier_code)})  # type: ignore[arg-type]
    assert problems == []
