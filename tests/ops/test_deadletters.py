"""Dead letters for operators, against the real broker: the sync service dead-letters real
events (ops_support.py), `DeadLetters` collects, shows, replays and discards them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import orjson
import pytest
from ops_support import Made, Ops, operating

from bus import headers
from bus.errors import Forbidden, NotFound
from bus.ops import DeadLetter, Operator, OpsStore
from bus.settings import Settings
from bus.topology import DEAD_LETTER_QUEUE
from schemas import Event
from sync.sync_support import Portal, depth

ADMIN = Operator.national("an")
H29_ONLY = Operator.of_units("hoa", {"H29"})
G01_ONLY = Operator.of_units("binh", {"G01"})


def ids(events: list[Event]) -> list[str]:
    return [str(event.event_id) for event in events]


@contextlib.contextmanager
def operating_store(settings: Settings) -> Iterator[OpsStore]:
    """The operator store the test's tools wrote to, to look at afterwards."""
    with OpsStore(settings.ops_url.get_secret_value()) as store:
        yield store


def test_collect_moves_every_dead_letter_into_the_store_with_why_when_and_how_often(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> tuple[Made, int, int]:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            collected = await ops.dead_letters.collect()
            left = await depth(ops_settings.amqp_url.get_secret_value(), DEAD_LETTER_QUEUE)
            return made, collected, left

    made, collected, left = asyncio.run(scenario())
    assert (collected, left) == (made.count, 0)
    with operating_store(ops_settings) as store:
        letters = {d.id: d for d in store.find(limit=None)}
    unavailable = letters[ids(made.unavailable)[0]]
    assert (unavailable.unit, unavailable.reason, unavailable.attempts) == (
        "H29", "portal_unavailable", 2
    )  # fmt: skip
    assert unavailable.routing_key == f"H29.{made.unavailable[0].event_type}"
    assert unavailable.connector == "sample-h29"
    assert unavailable.first_failure is not None
    assert unavailable.last_failure is not None
    assert unavailable.first_failure < unavailable.last_failure
    unsigned = letters[ids(made.unsigned)[0]]
    assert (unsigned.unit, unsigned.reason, unsigned.attempts) == ("G01", "signature", 1)
    assert unsigned.error_class == "SignatureError"
    rejected = letters[str(made.rejected.event_id)]
    assert rejected.reason == "portal_rejected"
    assert "NgayHenTra" in rejected.error
    assert rejected.dossier_code == str(made.rejected.dossier_code)
    assert all(d.status == "waiting" and d.replays == 0 for d in letters.values())


def test_a_dead_letters_body_is_shown_with_personal_data_masked_and_kept_intact_for_replay(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> tuple[Made, DeadLetter]:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            return made, ops.dead_letters.get(ADMIN, str(made.rejected.event_id))

    made, letter = asyncio.run(scenario())
    applicant = made.rejected.payload.dossier.applicant
    assert applicant.id_number is not None
    shown = orjson.dumps(letter.masked_body()).decode()
    assert applicant.id_number in letter.body.decode()
    assert applicant.id_number not in shown
    assert applicant.name not in shown
    assert str(made.rejected.dossier_code) in shown
    assert headers.SIGNATURE not in letter.masked_headers()


def test_a_replayed_dead_letter_that_now_succeeds_is_applied_on_the_portal(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> tuple[Made, int]:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            replayed = await ops.dead_letters.replay(ADMIN, ids(made.unavailable))
            await until_on_portal(ops, [str(e.dossier_code) for e in made.unavailable])
            return made, replayed

    made, replayed = asyncio.run(scenario())
    assert replayed == len(made.unavailable)
    with operating_store(ops_settings) as store:
        letters = store.find(ids=ids(made.unavailable), status=None, limit=None)
        [entry] = store.audit_entries()
    assert {(d.status, d.replays) for d in letters} == {("replayed", 1)}
    assert (entry.actor, entry.action, entry.unit, entry.count, entry.outcome) == (
        "an", "replay", "H29", len(made.unavailable), "done"
    )  # fmt: skip


def test_a_replay_that_fails_again_comes_back_to_its_row_with_its_history_and_does_not_loop(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> tuple[Made, int]:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            await ops.dead_letters.replay(ADMIN, [str(made.rejected.event_id)])
            await ops.wait_for_dead_letters(1)
            await ops.dead_letters.collect()
            await asyncio.sleep(1.5)  # time for a loop to show itself, if there were one
            return made, await depth(ops_settings.amqp_url.get_secret_value(), DEAD_LETTER_QUEUE)

    made, left = asyncio.run(scenario())
    assert left == 0
    with operating_store(ops_settings) as store:
        letter = store.get(str(made.rejected.event_id))
    assert letter is not None
    assert (letter.status, letter.replays, letter.reason) == ("waiting", 1, "portal_rejected")
    assert [f.replayed_by for f in letter.history] == [None, "an"]
    assert letter.history[0].dead_lettered_at < letter.history[1].dead_lettered_at
    # Sent to the portal twice in all: once first, once replayed.
    assert ops_portal.stats()["items"]["by_service"]["DongBoHoSoMC"]["1"] == 2


def test_discard_and_bulk_actions_by_reason_and_by_unit_act_only_on_waiting_ones(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> tuple[Made, list[int]]:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            dl = ops.dead_letters
            by_reason = dl.select(ADMIN, reason="signature")
            counts = [len(by_reason), await dl.discard(ADMIN, by_reason, target="reason=signature")]
            by_unit = dl.select(ADMIN, unit="H29")
            counts.append(len(by_unit))
            counts.append(await dl.discard(ADMIN, by_unit[:1]))
            counts.append(await dl.discard(ADMIN, by_unit[:1]))  # already discarded
            counts.append(len(dl.list(ADMIN)))
            return made, counts

    _, counts = asyncio.run(scenario())
    assert counts == [2, 2, 4, 1, 0, 3]
    with operating_store(ops_settings) as store:
        entries = store.audit_entries()
        discarded = store.find(status="discarded", limit=None)
    assert len(discarded) == 3
    oldest = entries[-1]
    assert (oldest.action, oldest.unit, oldest.count, oldest.target) == (
        "discard", "G01", 2, "reason=signature"
    )  # fmt: skip
    assert [e.count for e in reversed(entries)] == [2, 1, 0]


def test_a_provincial_operator_sees_only_their_unit_and_is_refused_and_audited_elsewhere(
    ops_settings: Settings, ops_portal: Portal
) -> None:
    async def scenario() -> Made:
        async with operating(ops_settings, ops_portal) as ops:
            made = await ops.make_dead_letters()
            await ops.dead_letters.collect()
            dl = ops.dead_letters
            assert {d.unit for d in dl.list(G01_ONLY)} == {"G01"}
            assert dl.counts(G01_ONLY) == {("G01", "signature"): 2}
            with pytest.raises(Forbidden):
                dl.list(G01_ONLY, unit="H29")
            with pytest.raises(Forbidden):
                dl.get(G01_ONLY, str(made.rejected.event_id))
            with pytest.raises(Forbidden):
                await dl.replay(G01_ONLY, [*ids(made.unsigned), str(made.rejected.event_id)])
            with pytest.raises(Forbidden):
                dl.select(H29_ONLY, unit="G01")
            with pytest.raises(NotFound):
                dl.get(ADMIN, "no-such-id")
            assert len(dl.list(ADMIN, status="waiting")) == made.count  # nothing was replayed
            return made

    asyncio.run(scenario())
    with operating_store(ops_settings) as store:
        refused = store.audit_entries()
        g01_view = store.audit_entries(units={"G01"})
    assert [(e.actor, e.action, e.unit, e.outcome) for e in reversed(refused)] == [
        ("binh", "list", "H29", "forbidden"),
        ("binh", "show", "H29", "forbidden"),
        ("binh", "replay", "H29", "forbidden"),
        ("hoa", "list", "G01", "forbidden"),
    ]
    assert [e.actor for e in g01_view] == ["hoa"]


async def until_on_portal(ops: Ops, codes: list[str], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not set(codes) <= set(await asyncio.to_thread(ops.portal.records)):
        assert loop.time() < deadline, "replayed dossiers never reached the portal"
        await asyncio.sleep(0.1)
