"""The operator console in a real browser, against a real pipeline (see `pipeline.py`).

Traffic for three units went through the bus; one G01 event was refused by the portal, one
H29 event dead-lettered while the portal was down. Operators then use the console as they
would: log in, watch the flow, open the dead letter, replay it once the portal is back, and
a provincial operator tries what is not theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import (
    HANOI,
    NATIONAL,
    PASSWORD,
    UNITS,
    Pipeline,
    pipeline,
    sample,
    wait_for,
    wrong_due_date,
)
from playwright.sync_api import BrowserContext, Page, expect

from broker import Broker
from bus.console.sessions import COOKIE
from bus.management import scratch_vhost
from bus.ops import DeadLetter
from schemas import Event


class Traffic:
    """What the module's pipeline went through."""

    def __init__(self, bus: Pipeline, refused: Event, outage: Event) -> None:
        self.bus = bus
        self.refused = refused  # G01, refused by the portal: waits in the dead letters
        self.outage = outage  # H29, dead-lettered while the portal was down


def _letter(bus: Pipeline, event: Event) -> DeadLetter | None:
    return bus.ops.get(str(event.event_id))


@pytest.fixture(scope="module")
def traffic(rabbitmq: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    folder = tmp_path_factory.mktemp("console")
    with (
        scratch_vhost(rabbitmq.amqp_url, rabbitmq.management_url, "console") as vhost,
        pipeline(vhost, folder) as bus,
    ):
        good: list[Event] = []
        held_back: dict[str, Event] = {}
        for seed, unit in enumerate(UNITS, start=1):
            lives = sample(unit, 6, seed)
            # One dossier of each unit with a citizen id and a reception date is held back.
            chosen = next(
                life
                for life in lives
                if life[-1].payload.dossier.received_at is not None
                and life[-1].payload.dossier.applicant.id_number
            )
            held_back[unit] = chosen[-1]
            good += [event for life in lives if life is not chosen for event in life]
        bus.publish(good)
        for unit in UNITS:
            codes = {str(e.dossier_code) for e in good if e.unit == unit}
            wait_for(f"{unit}'s dossiers on the portal", lambda u=unit, c=codes: c <= bus.held(u))
        refused = wrong_due_date(held_back["G01"])
        bus.publish([refused])
        wait_for("the refused event collected", lambda: _letter(bus, refused))
        bus.faults(down=True)
        try:
            bus.publish([held_back["H29"]])
            wait_for("the event of the outage collected", lambda: _letter(bus, held_back["H29"]))
        finally:
            bus.faults(clear=True)
        yield Traffic(bus, refused, held_back["H29"])


def log_in(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#operator")).to_have_text(name)


def test_a_national_operator_logs_in_and_sees_the_flow_of_the_three_units(
    traffic: Traffic, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    page.goto(traffic.bus.console_url)
    expect(page).to_have_url(f"{traffic.bus.console_url}/login")
    page.screenshot(path=artifacts / "01-login.png")
    log_in(page, traffic.bus.console_url, NATIONAL)
    for unit in UNITS:
        card = page.locator(f"#unit-{unit}")
        expect(card).to_be_visible()
        expect(card.locator("polyline[data-measure=synced]")).to_have_count(1)
        expect(card.locator(".lag")).to_contain_text("p99")
    flow = page.request.get(f"{traffic.bus.console_url}/api/flow").json()
    for unit in UNITS:
        assert max(flow["units"][unit]["synced"]) > 0, flow["units"][unit]
        assert flow["units"][unit]["lag"]["p50"] is not None
    expect(page.locator("#queues")).to_contain_text("portal.sync")
    expect(page.locator("#dead-counts")).to_contain_text("portal_rejected")
    page.screenshot(path=artifacts / "02-overview.png", full_page=True)


def test_the_session_cookie_is_out_of_scripts_reach_and_never_sent_cross_site(
    traffic: Traffic, context: BrowserContext
) -> None:
    page = context.new_page()
    log_in(page, traffic.bus.console_url, NATIONAL)
    (session,) = [cookie for cookie in context.cookies() if cookie["name"] == COOKIE]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""


def test_a_dead_letter_opens_masked_and_its_replay_is_applied_on_the_simulator(
    traffic: Traffic, context: BrowserContext, artifacts: Path
) -> None:
    event = traffic.outage
    code = str(event.dossier_code)
    citizen_id = event.payload.dossier.applicant.id_number
    assert citizen_id
    assert not traffic.bus.history(code)
    page = context.new_page()
    log_in(page, traffic.bus.console_url, NATIONAL)
    page.click("text=Dead letters")
    row = page.locator(f"tr[data-id='{event.event_id}']")
    expect(row).to_contain_text("portal_unavailable")
    expect(page.locator(f"tr[data-id='{traffic.refused.event_id}']")).to_contain_text("G01")
    page.screenshot(path=artifacts / "03-dead-letters.png", full_page=True)

    row.locator("a").click()
    expect(page.locator("#letter-reason")).to_have_text("portal_unavailable")
    expect(page.locator("#letter-error")).to_contain_text("PortalUnavailable")
    expect(page.locator("#letter-body")).to_contain_text(code)
    assert citizen_id not in page.content()  # masked, not merely hidden
    page.screenshot(path=artifacts / "04-dead-letter.png", full_page=True)

    page.click("#replay")
    expect(page.locator("#notice")).to_have_text("Replayed.")
    expect(page.locator("#letter-status")).to_have_text("replayed")
    wait_for("the replayed dossier on the portal", lambda: traffic.bus.history(code))
    assert traffic.bus.history(code)[-1]["item"]["MaHoSo"] == code
    page.screenshot(path=artifacts / "05-replayed.png", full_page=True)

    page.click("text=Audit log")
    expect(page.locator("#audit")).to_contain_text("replay")
    page.screenshot(path=artifacts / "06-audit.png", full_page=True)


def test_a_provincial_operator_sees_only_their_unit_and_is_refused_another_with_a_403_on_record(
    traffic: Traffic, context: BrowserContext, artifacts: Path
) -> None:
    foreign = str(traffic.refused.event_id)  # G01's
    page = context.new_page()
    log_in(page, traffic.bus.console_url, HANOI)
    page.goto(f"{traffic.bus.console_url}/deadletters?status=waiting")
    expect(page.locator("#letters")).to_be_visible()
    expect(page.locator(f"tr[data-id='{foreign}']")).to_have_count(0)
    assert not page.locator("#letters tr[data-unit]:not([data-unit=H29])").count()
    page.screenshot(path=artifacts / "07-provincial-dead-letters.png", full_page=True)

    answer = page.goto(f"{traffic.bus.console_url}/deadletters/{foreign}")
    assert answer is not None
    assert answer.status == 403
    expect(page.locator("#error-status")).to_have_text("403")
    page.screenshot(path=artifacts / "08-provincial-refused.png", full_page=True)
    refusals = [
        entry
        for entry in traffic.bus.ops.audit_entries(actor=HANOI)
        if entry.outcome == "forbidden" and entry.unit == "G01"
    ]
    assert refusals
    assert foreign in refusals[0].target

    flow = page.request.get(f"{traffic.bus.console_url}/api/flow").json()
    assert set(flow["units"]) == {"H29"}


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    traffic: Traffic, context: BrowserContext
) -> None:
    letter = str(traffic.refused.event_id)
    page = context.new_page()
    log_in(page, traffic.bus.console_url, NATIONAL)
    answer = page.request.post(
        f"{traffic.bus.console_url}/deadletters/{letter}/discard", form={"unused": "1"}
    )
    assert answer.status == 403
    forged = page.request.post(
        f"{traffic.bus.console_url}/deadletters/{letter}/discard", form={"csrf": "forged"}
    )
    assert forged.status == 403
    found = traffic.bus.ops.get(letter)
    assert found is not None
    assert found.status == "waiting"


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    traffic: Traffic, context: BrowserContext, artifacts: Path
) -> None:
    page = context.new_page()
    page.goto(f"{traffic.bus.console_url}/login")
    page.fill("input[name=name]", NATIONAL)
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator("#problem")).to_have_text("Wrong name or password.")
    assert page.request.get(f"{traffic.bus.console_url}/api/flow").status == 401
    page.screenshot(path=artifacts / "09-wrong-password.png")
