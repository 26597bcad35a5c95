"""No log line, error message, dead-letter view, reject list or console page shows a sample
person's identity number, phone number or e-mail address in clear.

The whole pipeline runs on the sample data (`bus demo` as a child process: three sample local
systems, their connectors, the sync service, the portal simulator and the console) with its
most verbose JSON logs. Then come the two kinds of bad input that carry a person's number into
error messages: records an H31 export puts the wrong values in (the connector refuses them,
and the refused value is quoted in the reason) and a signed H29 event the contract refuses
(the sync service dead-letters it, and the contract's error quotes the value). Every line the
demo and the operator commands print, and the console's dead-letter pages, are scanned for
every identity number and phone number of the sample, read from the sample systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pika
import pytest

from broker import Broker
from bus.demo.sites import EXAMPLES, SAMPLES, START
from bus.headers import ERROR, ORIGINAL_ROUTING_KEY, REASON
from bus.message import Message
from bus.ops.deadletter import DeadLetter
from bus.ops.store import OpsStore
from bus.publisher import stored_event_message
from bus.signing import KeyRing, Signer
from bus.topology import DEAD_LETTER_QUEUE
from connectors.config import load_config
from connectors.mapping import MappingError, RecordMapping
from connectors.sample.files import export
from connectors.sample.lifecycle import lifecycles
from connectors.sample.local import LocalSystem
from schemas import ApplicantType, Personal, encode_event

DOSSIERS = 10
CITIZEN = int(ApplicantType.CITIZEN)


@dataclass(frozen=True)
class Person:
    unit: str
    name: str
    id_number: str
    phone: str
    email: str | None


@dataclass(frozen=True)
class SamplePeople:
    """What the demo's sample systems hold about people, as the demo generates it."""

    records: dict[str, list[dict[str, Any]]]  # unit → every version of every record

    @classmethod
    def of_demo(cls, dossiers: int) -> SamplePeople:
        records = {}
        for sample in SAMPLES:
            system = LocalSystem(sample.agency, dossiers, seed=sample.seed, start=START)
            records[system.unit] = system.advance(10**9)
        return cls(records)

    def _all(self) -> Iterable[dict[str, Any]]:
        return (record for records in self.records.values() for record in records)

    @property
    def id_numbers(self) -> set[str]:
        # A citizen's căn cước. An enterprise's id is its registration code, public by law.
        return {r["so_giay_to"] for r in self._all() if r["loai_doi_tuong"] == CITIZEN}

    @property
    def phones(self) -> set[str]:
        return {r["dien_thoai"] for r in self._all() if r["dien_thoai"]}

    @property
    def emails(self) -> set[str]:
        return {r["email"] for r in self._all() if r["email"]}

    def citizen(self, unit: str) -> Person:
        record = next(
            r for r in self.records[unit] if r["loai_doi_tuong"] == CITIZEN and r["dien_thoai"]
        )
        return Person(
            unit, record["chu_ho_so"], record["so_giay_to"], record["dien_thoai"], record["email"]
        )

    def a_record(self, unit: str, person: Person) -> dict[str, Any]:
        return next(r for r in self.records[unit] if r["so_giay_to"] == person.id_number)


def test_after_a_demo_run_with_bad_input_no_line_or_view_shows_a_sample_number_in_clear(
    rabbitmq: Broker, tmp_path: Path
) -> None:
    sample = SamplePeople.of_demo(DOSSIERS)
    refused_person, dead_person = sample.citizen("H31"), sample.citizen("H29")
    refused_codes = [f"{_agency('H31')}-251231-{n}" for n in (9001, 9002)]
    env = {
        **os.environ,
        "BUS_AMQP_URL": rabbitmq.amqp_url,
        "BUS_MANAGEMENT_URL": rabbitmq.management_url,
        "BUS_LOG_FORMAT": "json",
        "BUS_LOG_LEVEL": "debug",
    }
    seen: dict[str, str] = {}  # what was scanned: where → its text
    with running_demo(env, tmp_path / "demo-stderr.log") as demo:
        printed = _until(demo, "Everything keeps running")
        workdir = Path(_found(r"(?m)^  work directory +(\S+)", printed))
        amqp_url, ops_url = _found(r"BUS_AMQP_URL='([^']+)' BUS_OPS_URL='([^']+)'", printed)
        console = _found(r"(?m)^  operator console +(\S+)", printed)
        password = _found(r"log in as operator / (\S+) ", printed)
        h31_config = _found(r"(?m)^  refused records +bus connector rejects (\S+h31\S+)", printed)

        _drop_refused_records(workdir / "h31-drop", sample, refused_person, refused_codes)
        event_id = _publish_refused_event(amqp_url, workdir / "keys.json", dead_person)
        _wait_for_lines(demo.log, {"record rejected": 2, "message dead-lettered": 1})

        operator = {**env, "BUS_AMQP_URL": amqp_url, "BUS_OPS_URL": ops_url}
        seen["bus dlq show"] = _bus(operator, "dlq", "show", event_id)
        seen["bus dlq show --json"] = _bus(operator, "dlq", "show", event_id, "--json")
        seen["bus dlq list"] = _bus(operator, "dlq", "list")
        seen["bus connector rejects"] = _bus(operator, "connector", "rejects", h31_config)
        seen["rejects --json"] = _bus(operator, "connector", "rejects", h31_config, "--json")
        seen.update(_console_pages(console, password, event_id))
        with OpsStore(ops_url) as store:
            letter = store.get(event_id)
    seen["demo stdout"] = printed + demo.rest
    seen["demo stderr"] = demo.log.read_text(encoding="utf-8")

    # The scan saw what it had to see: every stage, every unit, the bad input's own lines.
    lines, other = _log_lines(seen["demo stderr"])
    assert not other, f"log lines that are not JSON: {other[:5]}"
    assert len(lines) > 100, seen["demo stderr"]
    assert {line["level"] for line in lines} >= {"debug", "info", "warning", "error"}
    for unit in ("H29", "G01", "H31"):
        assert any(unit in str(line.get("madonvi", "")) for line in lines), unit
    reasons = " ".join(line["reason"] for line in lines if line["event"] == "record rejected")
    assert Personal.PHONE.mask(refused_person.phone) in reasons
    assert Personal.ID_NUMBER.mask(refused_person.id_number) in reasons
    [dead] = [line for line in lines if line["event"] == "message dead-lettered"]
    assert dead["reason"] == "contract"
    assert Personal.ID_NUMBER.mask(dead_person.id_number) in dead["error"]
    assert dead["event_id"] == event_id
    # The dead-letter copy was written masked; the views mask it again anyway.
    assert letter is not None
    assert Personal.ID_NUMBER.mask(dead_person.id_number) in letter.headers[ERROR]
    assert dead_person.id_number in letter.body.decode()  # kept intact, for a replay
    assert event_id in seen["bus dlq show"]
    assert all(code in seen["bus connector rejects"] for code in refused_codes)

    in_clear = sample.id_numbers | sample.phones | sample.emails
    assert {refused_person.id_number, refused_person.phone, dead_person.id_number} <= in_clear
    for where, text in seen.items():
        leaked = sorted(value for value in in_clear if value in text)
        assert not leaked, f"{where} shows {leaked} in clear"
    for where in ("bus dlq show", "bus connector rejects", "rejects --json", "console letter"):
        for person in (refused_person, dead_person):
            assert person.name not in seen[where], f"{where} names {person.name}"


def test_a_dead_letter_copied_by_another_producer_is_shown_masked_in_every_view() -> None:
    """The Retries middleware masks the error it writes; a copy from elsewhere (a shovel, an
    older bus) is masked when it is read: error, history, headers and a body that is not an
    event."""
    person = SamplePeople.of_demo(1).citizen("H29")
    error = f"the portal refused SoGiayToChuHoSo {person.id_number}, SoDienThoai {person.phone}"
    body = orjson.dumps({"applicant": {"name": person.name, "so_giay_to": person.id_number}})
    message = Message(
        body=body, exchange="", routing_key=DEAD_LETTER_QUEUE, redelivered=False,
        delivery_tag=1, message_id=str(uuid.uuid4()), type="dossier_upserted",
        headers={ERROR: error, REASON: "portal_rejected", ORIGINAL_ROUTING_KEY: "H29.x"},
    )  # fmt: skip
    letter = DeadLetter.from_message(message)

    errors = [letter.error, *(failure.error for failure in letter.history)]
    shown = orjson.dumps([errors, letter.masked_headers(), letter.masked_body()]).decode()
    for value in (person.id_number, person.phone, person.name):
        assert value not in shown
    assert Personal.ID_NUMBER.mask(person.id_number) in letter.error
    assert letter.body == body  # kept intact, for a replay


def test_a_refused_record_is_kept_with_its_reason_and_values_masked() -> None:
    """What `bus connector rejects` and `bus connector validate` show: the refusal quotes the
    value it refused, and the record is kept for operators, an identity number in the wrong
    column included."""
    sample = SamplePeople.of_demo(1)
    person = sample.citizen("H31")
    record = {**sample.a_record("H31", person), "ma_tthc": person.id_number}
    mapping = RecordMapping(load_config(EXAMPLES / "file_drop.toml"))

    with pytest.raises(MappingError) as refused:
        mapping.event(record, None)
    kept = json.dumps([str(refused.value), mapping.masked(record)], ensure_ascii=False)

    for value in (person.id_number, person.phone, person.name):
        assert value not in kept
    assert f"'{Personal.ID_NUMBER.mask(person.id_number)}'" in str(refused.value)


# ---- the demo, and the bad input


@dataclass
class Demo:
    process: subprocess.Popen[str]
    log: Path  # its stderr: every log line
    rest: str = ""  # what it printed after the part the test read


@contextlib.contextmanager
def running_demo(env: dict[str, str], log: Path) -> Iterator[Demo]:
    """`bus demo --keep-running`, its stderr in `log`; stopped with Ctrl-C at the end."""
    with log.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bus", "demo", "--dossiers", str(DOSSIERS),
             "--timeout", "45", "--keep-running"],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        demo = Demo(process, log)
        try:
            yield demo
        finally:
            process.send_signal(signal.SIGINT)
            demo.rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0, demo.rest


def _until(demo: Demo, line: str, timeout: float = 60) -> str:
    """What the demo printed up to and including `line`."""
    assert demo.process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = demo.process.stdout.readline()
        if not text:
            break
        seen.append(text)
        if line in text:
            return "".join(seen)
    raise AssertionError(f"the demo never printed {line!r}:\n{''.join(seen)}")


def _found(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return match.groups() if len(match.groups()) > 1 else match[1]


def _agency(unit: str) -> str:
    return next(s.agency for s in SAMPLES if s.agency.endswith(unit))


def _drop_refused_records(
    folder: Path, sample: SamplePeople, person: Person, codes: list[str]
) -> None:
    """An export with two records the connector must refuse, each with a person's number
    where it does not belong, so that the refusal quotes it: a phone number as the time of
    submission, an identity number as the procedure code."""
    record = sample.a_record("H31", person)
    wrong_time = {**record, "ma_ho_so": codes[0], "ngay_nop": person.phone}
    wrong_code = {**record, "ma_ho_so": codes[1], "ma_tthc": person.id_number}
    export([wrong_time, wrong_code], folder, "json", prefix="refused")


def _publish_refused_event(amqp_url: str, keys: Path, person: Person) -> str:
    """H29's first sample event with the person's identity number as its procedure code,
    signed with H29's key: it passes the signature check and fails the contract."""
    sample = next(s for s in SAMPLES if s.agency == _agency(person.unit))
    connector = load_config(EXAMPLES / f"{sample.example}.toml").connector.name
    event = lifecycles(sample.agency, 1, seed=sample.seed, start=START, connector=connector)[0][0]
    data = orjson.loads(encode_event(event))
    data["event_id"] = event_id = str(uuid.uuid4())
    data["payload"]["dossier"]["procedure_code"] = person.id_number
    data["payload"]["dossier"]["applicant"].update(
        name=person.name, id_number=person.id_number, phone=person.phone
    )
    [key] = KeyRing.load(keys).of_connector(connector)
    message = stored_event_message(
        orjson.dumps(data),
        event_id=event_id,
        event_type=event.event_type,
        connector=connector,
        dossier_code=str(event.dossier_code),
        seq=event.seq,
        timestamp=int(event.occurred_at.timestamp()),
        signer=Signer(key.key_id, key.algorithm, key.material),
    )
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            message.exchange,
            message.routing_key,
            message.body,
            pika.BasicProperties(
                message_id=message.message_id, type=message.type, app_id=message.app_id,
                timestamp=message.timestamp, headers=message.headers,
                content_type=message.content_type, delivery_mode=2,
            ),
            mandatory=True,
        )  # fmt: skip
    finally:
        connection.close()
    return event_id


def _log_lines(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON log lines of a whole text (a line still being written is left out), and the
    lines that are not JSON."""
    lines, other = [], []
    for line in text[: text.rfind("\n") + 1].splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            other.append(line)
    return lines, other


def _wait_for_lines(log: Path, wanted: dict[str, int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        events = [line.get("event") for line in _log_lines(log.read_text(encoding="utf-8"))[0]]
        counts = {name: events.count(name) for name in wanted}
        if all(counts[name] >= count for name, count in wanted.items()):
            return
        time.sleep(0.2)
    raise AssertionError(f"expected log lines {wanted}, saw {counts}")


# ---- what operators see


def _bus(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bus", *arguments], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _console_pages(console: str, password: str, event_id: str) -> dict[str, str]:
    with httpx.Client(base_url=console.rstrip("/"), timeout=10) as client:
        form = client.get("/login").text
        csrf = _found(r'name="csrf" value="([^"]+)"', form)
        logged_in = client.post(
            "/login", data={"name": "operator", "password": password, "csrf": csrf}
        )
        assert logged_in.status_code == 303, logged_in.text
        letters = client.get("/deadletters")
        letter = client.get(f"/deadletters/{event_id}")
    assert letters.status_code == letter.status_code == 200
    assert event_id in letter.text
    return {"console letters": letters.text, "console letter": letter.text}
