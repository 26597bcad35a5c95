"""Structured logs: with JSON logging configured, every line written while a message is
handled, by the handler or by the bus, names the event, its dossier, unit and connector; and
no line, whoever writes it, shows a person's identity number, phone, e-mail or name, or a
password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, Literal
from uuid import uuid4

import pytest
import structlog
from consumer_support import CONNECTOR, Recorder, bus_in, consuming, eventually
from pydantic import SecretStr

from bus.errors import TransientError
from bus.logging import configure_logging, handling
from bus.message import Message
from bus.settings import Settings
from factories import a_dossier, a_status_changed


@contextlib.contextmanager
def json_logging(log_format: Literal["json", "console"] = "json") -> Iterator[None]:
    """JSON logging to stderr (or `console`'s), as production configures it, for the block's
    duration.

    Call it inside the test itself: pytest swaps sys.stderr between the setup and call
    phases, and configure_logging keeps the stream it finds. It also caches each logger on
    first use, and a cached logger would write to this test's closed capture in later tests,
    so nothing is cached here.
    """
    configure_logging(Settings(log_format=log_format, log_level="debug"))
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield
    finally:
        structlog.reset_defaults()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def identity(event: Any) -> dict[str, str]:
    return {
        "event_id": str(event.event_id),
        "dossier_code": str(event.dossier_code),
        "unit": "H29",
        "connector": CONNECTOR,
    }


@pytest.mark.parametrize(
    "prefetch",
    [
        pytest.param(1, id="one-after-another"),  # each message follows another in one worker
        pytest.param(10, id="interleaved"),  # handlers wait on I/O side by side
    ],
)
def test_every_line_a_handler_writes_names_the_event_dossier_unit_and_connector(
    vhost: str, capfd: pytest.CaptureFixture[str], prefetch: int
) -> None:
    events = [a_status_changed(seq=n) for n in range(1, 21)]
    log = structlog.get_logger("sync")
    running, most = 0, 0

    async def handler(message: Message) -> None:
        nonlocal running, most
        seen = str(message.event.event_id if message.event else "")
        running += 1
        most = max(most, running)
        log.info("received", seen=seen)
        await asyncio.sleep(0.02)  # others run meanwhile: contexts must not leak between them
        log.info("sending to the portal", seen=seen)
        running -= 1

    recorder = Recorder()

    async def both(message: Message) -> None:
        await recorder(message)
        await handler(message)

    async def scenario() -> None:
        async with bus_in(vhost) as bus:
            await bus.publish(*events)  # all waiting: the consumer gets `prefetch` at once
            async with consuming(bus, both, prefetch=prefetch):
                await eventually(lambda: len(recorder.seen) == len(events), what="every event")
                await asyncio.sleep(0.1)
        log.info("all done")  # written outside any message

    with json_logging():
        asyncio.run(scenario())

    assert (most > 1) == (prefetch > 1), f"at most {most} handled at once"
    lines = json_lines(capfd.readouterr().err)
    by_event = {str(event.event_id): event for event in events}
    for name in ("received", "sending to the portal"):
        written = [line for line in lines if line.get("event") == name]
        assert sorted(line["seen"] for line in written) == sorted(by_event)
        for line in written:
            expected = identity(by_event[line["seen"]])
            assert {key: line.get(key) for key in expected} == expected
            assert line["level"] == "info"
            assert "timestamp" in line
    # Lines about no message name none: neither the consumer's own nor the test's.
    for name in ("consuming", "all done"):
        [line] = [line for line in lines if line.get("event") == name]
        assert not {"event_id", "dossier_code", "unit", "connector"} & set(line), line


def test_the_bus_own_retry_and_dead_letter_lines_carry_the_same_identity(
    vhost: str, capfd: pytest.CaptureFixture[str]
) -> None:
    event = a_status_changed()
    handler = Recorder(fail=lambda _m: TransientError("portal timed out"))

    async def scenario() -> None:
        async with bus_in(vhost) as bus, consuming(bus, handler):
            await bus.publish(event)
            await eventually(lambda: len(handler.seen) == 3, what="three attempts")
            await asyncio.sleep(0.2)

    with json_logging():
        asyncio.run(scenario())

    lines = json_lines(capfd.readouterr().err)
    failures = [line for line in lines if line.get("event") == "message failed, will retry"]
    dead = [line for line in lines if line.get("event") == "message dead-lettered"]
    assert [line["attempt"] for line in failures] == [1, 2]
    assert [line["attempt"] for line in dead] == [3]
    for line in failures + dead:
        assert {key: line.get(key) for key in identity(event)} == identity(event)
        assert line["reason"] == "transient"


# ---- personal data and secrets

ID_NUMBER, PHONE, EMAIL, NAME = (
    "079123456789",
    "0912345678",
    "an.nguyen@example.vn",
    "Nguyễn Văn An",
)
IN_CLEAR = (ID_NUMBER, PHONE, EMAIL, NAME, "Nguyễn", "hunter2")


def assert_nothing_in_clear(text: str) -> None:
    for secret in IN_CLEAR:
        assert secret not in text


def test_every_text_of_a_line_is_masked_the_message_nested_values_and_the_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    log = structlog.get_logger("connector")
    with json_logging():
        log.warning(
            f"record of {ID_NUMBER} refused",
            reason=f"ma_tthc (procedure_code): '{ID_NUMBER}' — not a procedure code",
            record={"note": f"gọi {PHONE} hoặc {EMAIL}", "lists": [[f"cmnd {ID_NUMBER[:9]}"]]},
        )
        try:
            raise ValueError(f"the portal refused SoDienThoai {PHONE}")
        except ValueError:
            log.exception("portal call failed")

    [refused, failed] = json_lines(capfd.readouterr().err)
    assert_nothing_in_clear(json.dumps([refused, failed], ensure_ascii=False))
    assert refused["event"] == "record of 0791******89 refused"
    assert refused["record"]["note"] == "gọi 091*****78 hoặc a***@example.vn"
    assert refused["record"]["lists"] == [["cmnd 0791***56"]]
    assert "ValueError: the portal refused SoDienThoai 091*****78" in failed["exception"]


def test_values_under_keys_that_name_a_person_are_masked_as_that_kind(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with json_logging():
        structlog.get_logger().info(
            "seen",
            name=NAME,
            ho_ten=NAME,
            applicant={"name": NAME, "SoGiayToChuHoSo": "B1234567", "dien_thoai": PHONE},
            so_giay_to="12345",  # too short to look like one: its key says what it is
            address="Số 12 Lê Lợi",
            dossier=a_dossier(),  # a model of the contract: its marked fields say
        )

    [line] = json_lines(capfd.readouterr().err)
    assert_nothing_in_clear(json.dumps(line, ensure_ascii=False))
    assert line["name"] == line["ho_ten"] == "N. V. A."
    assert line["applicant"] == {
        "name": "N. V. A.", "SoGiayToChuHoSo": "B123**67", "dien_thoai": "091*****78"
    }  # fmt: skip
    assert line["so_giay_to"] == "*****"
    assert line["address"] == "<12 characters>"
    assert line["dossier"]["applicant"]["id_number"] == "0012******89"
    assert line["dossier"]["code"] == str(a_dossier().code)


def test_what_operators_trace_by_is_logged_as_it_is(capfd: pytest.CaptureFixture[str]) -> None:
    event_id = "5b0f3c52-8a53-4c1e-9a57-123456789012"  # its last group: 12 digits
    traced = {
        "event_id": event_id,
        "dossier_code": "000.00.01.H29-250701-0123456789",
        "seq": 1_751_330_000_123_456,
        "occurred": "2025-07-01T01:30:00.123456+07:00",
        "port": 5672,
        "ms": 0.123456789,
        "message_id": "body-8e3fa2c1d0b9a8f7e6d5c4b3",
    }
    with json_logging():
        structlog.get_logger().info(f"event {event_id} sent", **traced)

    [line] = json_lines(capfd.readouterr().err)
    assert {key: line[key] for key in traced} == traced
    assert line["event"] == f"event {event_id} sent"


def test_lines_at_a_terminal_are_masked_too(capfd: pytest.CaptureFixture[str]) -> None:
    with json_logging("console"):
        log = structlog.get_logger()
        log.info("refused", reason=f"id {ID_NUMBER}", name=NAME)
        try:
            raise KeyError(PHONE)
        except KeyError:
            log.exception("lookup failed")

    text = capfd.readouterr().err
    assert "0791******89" in text
    assert "KeyError: '091*****78'" in text
    assert_nothing_in_clear(text)


def test_a_password_is_never_logged_neither_in_a_url_nor_in_the_settings(
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = "amqp://h29-igate:hunter2@broker.example.vn:5671/prod"
    settings = Settings(amqp_url=SecretStr(url), portal_password=SecretStr("hunter2"))
    with json_logging():
        log = structlog.get_logger()
        log.warning(f"broker unreachable at {url}", url=url)
        log.info("settings", settings=settings, portal_password=settings.portal_password)

    lines = json_lines(capfd.readouterr().err)
    assert_nothing_in_clear(json.dumps(lines))
    assert lines[0]["url"] == "amqp://h29-igate:***@broker.example.vn:5671/prod"


def test_lines_of_the_standard_library_loggers_are_json_and_masked(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with json_logging():
        logging.getLogger("asyncio").warning("lost amqp://u:hunter2@h for %s", PHONE)
        try:
            raise RuntimeError(f"handler failed on {ID_NUMBER}")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    lost, failed = json_lines(capfd.readouterr().err)
    assert_nothing_in_clear(json.dumps([lost, failed]))
    assert lost == {
        "event": "lost amqp://u:***@h for 091*****78",
        "logger": "asyncio",
        "level": "warning",
        "timestamp": lost["timestamp"],
    }
    assert failed["level"] == "error"
    assert "RuntimeError: handler failed on 0791******89" in failed["exception"]


def test_the_message_context_is_masked_like_the_rest(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A message id comes from whoever published the message: it is not trusted either."""
    message = Message(
        body=b"{}",
        exchange="dossier.events",
        routing_key="H29.status_changed",
        headers={"x-dossier-code": ID_NUMBER},
        redelivered=False,
        delivery_tag=1,
        message_id=str(uuid4()),
        type="status_changed",
        app_id=f"sdt {PHONE}",
        timestamp=None,
    )
    token = handling.set(message)
    try:
        with json_logging():
            structlog.get_logger().info("received")
    finally:
        handling.reset(token)

    [line] = json_lines(capfd.readouterr().err)
    assert line["event_id"] == message.message_id
    assert line["dossier_code"] == "0791******89"
    assert line["connector"] == "sdt 091*****78"
