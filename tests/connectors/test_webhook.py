"""`webhook` served for real on a free local port, pushed to over HTTP with httpx; `accept`
is a fake that records what it was given, as the connector's outbox would take it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import signal
import socket
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import httpx
import orjson
import pytest

from connectors.kinds import KINDS
from connectors.kinds.webhook import Webhook, WebhookSettings
from connectors.source import Accepted, Record, SourceError

SECRET = "bí-mật-chung-của-hai-hệ-thống"
SECRET_ENV = "TEST_WEBHOOK_SECRET"
HOSO = {"ma_ho_so": "H29.001", "chu_ho_so": "Nguyễn Văn An", "trang_thai": "3"}
OTHER = {"ma_ho_so": "H29.002", "chu_ho_so": "Trần Thị Bích", "trang_thai": "1"}


class Outbox:
    """The fake `accept`: keeps every push, and answers as told."""

    def __init__(
        self, refuse: dict[int, str] | None = None, delay: float = 0, fail: bool = False
    ) -> None:
        self.pushes: list[tuple[list[Record], str]] = []
        self.refuse, self.delay, self.fail = refuse or {}, delay, fail
        self.returned = 0

    async def accept(self, records: Sequence[Record], ref: str) -> Accepted:
        self.pushes.append((list(records), ref))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the outbox database is down")
        self.returned += 1
        return Accepted(len(records) - len(self.refuse), self.refuse)


def signed(body: bytes, secret: str = SECRET, prefix: str = "") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature": prefix + digest, "Content-Type": "application/json"}


def webhook(**settings: Any) -> Webhook:
    return Webhook(WebhookSettings(**({"port": 0, "secret_env": SECRET_ENV} | settings)))


@contextlib.asynccontextmanager
async def serving(outbox: Outbox, **settings: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The webhook serving on a free port: its URL, and a client to push with."""
    source = webhook(**settings)
    await source.open()
    task = asyncio.create_task(source.serve(outbox.accept))
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            yield f"http://127.0.0.1:{source.port}{source.settings.path}", client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await source.close()


async def push(
    outbox: Outbox, body: bytes, headers: dict[str, str] | None = None, **settings: Any
) -> httpx.Response:
    async with serving(outbox, **settings) as (url, client):
        return await client.post(
            url, content=body, headers=signed(body) if headers is None else headers
        )


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


# -- accepted pushes -----------------------------------------------------------------------


def test_a_signed_array_is_answered_202_only_after_accept_has_returned() -> None:
    outbox = Outbox(delay=0.3)
    answer = run(push(outbox, orjson.dumps([HOSO, OTHER])))
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 2, "refused": {}}
    assert outbox.returned == 1
    assert answer.elapsed.total_seconds() >= 0.3
    assert [records for records, _ in outbox.pushes] == [[HOSO, OTHER]]


def test_one_object_is_one_record_and_an_items_envelope_holds_a_list_of_them() -> None:
    outbox = Outbox()
    run(push(outbox, orjson.dumps(HOSO)))
    run(push(outbox, orjson.dumps({"items": [HOSO, OTHER]})))
    assert [records for records, _ in outbox.pushes] == [[HOSO], [HOSO, OTHER]]


def test_a_record_with_an_items_field_of_its_own_is_still_one_record() -> None:
    outbox = Outbox()
    with_documents = {**HOSO, "items": [{"ten_giay_to": "Tờ khai"}]}
    run(push(outbox, orjson.dumps(with_documents)))
    assert outbox.pushes[0][0] == [with_documents]


def test_refused_records_are_answered_with_their_position_and_reason() -> None:
    outbox = Outbox(refuse={1: "thiếu trường ngay_tiep_nhan"})
    answer = run(push(outbox, orjson.dumps([HOSO, OTHER])))
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 1, "refused": {"1": "thiếu trường ngay_tiep_nhan"}}


def test_an_empty_array_is_answered_without_bothering_accept() -> None:
    outbox = Outbox()
    answer = run(push(outbox, b"[]"))
    assert (answer.status_code, answer.json()) == (202, {"accepted": 0, "refused": {}})
    assert outbox.pushes == []


def test_the_ref_names_the_pushing_client_and_the_time() -> None:
    outbox = Outbox()
    run(push(outbox, orjson.dumps(HOSO)))
    ref = outbox.pushes[0][1]
    assert ref.startswith("webhook 127.0.0.1 20")
    assert ref.endswith("+00:00")


def test_a_signature_may_be_prefixed_with_sha256_and_written_in_capitals() -> None:
    body = orjson.dumps(HOSO)
    headers = signed(body, prefix="sha256=")
    capitals = {**headers, "X-Signature": headers["X-Signature"].upper()}
    for sent in (headers, capitals):
        assert run(push(Outbox(), body, sent)).status_code == 202


def test_the_signature_header_can_be_renamed() -> None:
    body = orjson.dumps(HOSO)
    headers = {"X-Hub-Signature-256": signed(body, prefix="sha256=")["X-Signature"]}
    assert (
        run(push(Outbox(), body, headers, signature_header="X-Hub-Signature-256")).status_code
        == 202
    )


# -- refused pushes ------------------------------------------------------------------------


def test_a_push_without_a_signature_is_401_with_the_reason_and_never_reaches_accept() -> None:
    outbox = Outbox()
    answer = run(push(outbox, orjson.dumps(HOSO), {}))
    assert answer.status_code == 401
    assert "no X-Signature header" in answer.json()["error"]
    assert outbox.pushes == []


@pytest.mark.parametrize(
    "headers",
    [
        signed(orjson.dumps(HOSO), secret="bí-mật-khác"),
        signed(orjson.dumps(OTHER)),  # a signature of another body
        {"X-Signature": "sha256=not-a-hex-digest"},
    ],
    ids=["other secret", "other body", "not hex"],
)
def test_a_push_whose_signature_does_not_match_is_401(headers: dict[str, str]) -> None:
    outbox = Outbox()
    answer = run(push(outbox, orjson.dumps(HOSO), headers))
    assert answer.status_code == 401
    assert "is not the HMAC-SHA256 of the body" in answer.json()["error"]
    assert outbox.pushes == []


def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_not() -> None:
    body = orjson.dumps([HOSO] * 10)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 50):
            yield body[start : start + 50]

    async def pushes() -> list[httpx.Response]:
        async with serving(Outbox(), max_body_bytes=200) as (url, client):
            declared = await client.post(url, content=body, headers=signed(body))
            streamed = await client.post(url, content=chunks(), headers=signed(body))
            return [declared, streamed]

    declared, streamed = run(pushes())
    assert "content-length" not in streamed.request.headers  # sent chunked
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json() == {"error": "the body is larger than 200 bytes"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"ma_ho_so=H29.001", "the body is not JSON"),
        ('[{"chu_ho_so": "Trân"}]'.encode("cp1258"), "the body is not UTF-8 (byte 18)"),
        (b'"H29.001"', "the body must be a record object, a list of them"),
        (b'[{"ma_ho_so": "H29.001"}, ["H29.002"]]', "item 1 is a list, not a record object"),
        (b'{"items": [1, 2]}', "item 0 is a int, not a record object"),
    ],
    ids=["form", "not utf-8", "a string", "a list in the list", "numbers as items"],
)
def test_a_body_that_is_not_records_is_400_with_the_reason(body: bytes, reason: str) -> None:
    outbox = Outbox()
    answer = run(push(outbox, body))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(reason)
    assert outbox.pushes == []


def test_when_accept_fails_the_answer_is_503_so_the_local_system_pushes_again() -> None:
    answer = run(push(Outbox(fail=True), orjson.dumps(HOSO)))
    assert answer.status_code == 503
    assert "push again" in answer.json()["error"]
    assert "database" not in answer.text  # the inside story is for our log, not theirs


def test_only_a_post_on_the_path_is_served() -> None:
    async def calls() -> tuple[int, int]:
        async with serving(Outbox()) as (url, client):
            other_path = await client.post(url + "/khac", content=b"{}", headers=signed(b"{}"))
            get = await client.get(url)
            return other_path.status_code, get.status_code

    assert run(calls()) == (404, 405)


# -- lifecycle -----------------------------------------------------------------------------


def test_opening_without_the_secret_names_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(SourceError, match=f"environment variable {SECRET_ENV} .* is not set"):
        run(webhook().open())


def test_a_port_already_in_use_is_a_readable_error_when_opening() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SourceError) as raised:
            run(webhook(port=port).open())
    assert str(raised.value) == (
        f"webhook http://127.0.0.1:{port}/hooks/dossiers: cannot listen on 127.0.0.1:{port} "
        "(Address already in use); check host and port, and that nothing else uses the port"
    )


def test_cancelling_serve_lets_a_push_in_flight_finish_then_stops_listening() -> None:
    outbox = Outbox(delay=0.5)
    body = orjson.dumps(HOSO)

    async def scenario() -> tuple[int, bool]:
        source = webhook()
        await source.open()
        port = source.port
        url = f"http://127.0.0.1:{port}/hooks/dossiers"
        serving = asyncio.create_task(source.serve(outbox.accept))
        async with httpx.AsyncClient(timeout=5) as client:
            in_flight = asyncio.create_task(client.post(url, content=body, headers=signed(body)))
            while not outbox.pushes:
                await asyncio.sleep(0.01)
            serving.cancel()
            answer = await in_flight
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            refused = True
        else:
            refused = False
        return answer.status_code, refused

    assert run(scenario()) == (202, True)


def test_serving_leaves_the_processs_signal_handlers_to_the_connector() -> None:
    def handlers() -> tuple[Any, Any]:
        return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    async def handlers_before_and_while_serving() -> tuple[Any, Any]:
        before = handlers()
        async with serving(Outbox()) as (url, client):
            await client.post(url, content=b"[]", headers=signed(b"[]"))
            return before, handlers()

    before, during = run(handlers_before_and_while_serving())
    assert during == before


def test_describe_names_the_address_and_never_the_secret() -> None:
    described = webhook(port=8640, host="0.0.0.0").describe()
    assert described == "webhook http://0.0.0.0:8640/hooks/dossiers"


def test_webhook_is_a_registered_kind() -> None:
    assert KINDS["webhook"] is Webhook
    assert Webhook.settings_model is WebhookSettings
