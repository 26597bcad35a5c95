"""`rest_poll` against a real HTTP API: a small Starlette app served by uvicorn in a thread,
filtering its records "at or after" the cursor as local one-stop-shop APIs do."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.kinds import KINDS
from connectors.kinds.rest_poll import RestPoll, RestPollSettings
from connectors.source import Batch, SourceError

KEY = "mc-h29-0123456789abcdef"
KEY_ENV = "TEST_REST_POLL_KEY"

RECORDS = [
    {"ma_ho_so": f"H29.{n:03d}", "chu_ho_so": "Nguyễn Văn An", "cap_nhat_luc": stamp}
    for n, stamp in enumerate(
        [
            "2025-07-01T08:00:00",
            "2025-07-01T08:05:00",
            "2025-07-01T08:05:00",  # two records in one instant: "at or after" must keep both
            "2025-07-01T09:00:00",
            "2025-07-01T10:30:00",
        ],
        start=1,
    )
]


class Api:
    """The local system's API, and what it saw of each call."""

    def __init__(self) -> None:
        self.calls: list[Request] = []
        self.ports: list[int] = []

    def app(self) -> Starlette:
        async def hoso(request: Request) -> Response:
            self.calls.append(request)
            self.ports.append(request.client.port if request.client else 0)
            if request.headers.get("x-api-key") != KEY:
                return JSONResponse({"error": "invalid api key"}, status_code=401)
            since = request.query_params.get("updated_since", "")
            limit = int(request.query_params.get("limit", 100))
            page = [r for r in RECORDS if r["cap_nhat_luc"] >= since][:limit]
            return JSONResponse({"items": page, "total": len(RECORDS)})

        async def bearer(request: Request) -> Response:
            self.calls.append(request)
            return JSONResponse(RECORDS[:1])

        async def boom(request: Request) -> Response:
            return PlainTextResponse("Lỗi máy chủ:\n   cơ sở dữ liệu   bận " + "x" * 500, 500)

        async def portal_page(request: Request) -> Response:
            return Response("<html><body>Đăng nhập</body></html>", media_type="text/html")

        async def other_shape(request: Request) -> Response:
            return JSONResponse({"data": RECORDS, "count": 5})

        async def not_records(request: Request) -> Response:
            return JSONResponse({"items": [RECORDS[0], "H29.002"]})

        async def slow(request: Request) -> Response:
            await asyncio.sleep(2)
            return JSONResponse({"items": []})

        return Starlette(
            routes=[
                Route("/api/hoso", hoso),
                Route("/api/bearer", bearer),
                Route("/api/boom", boom),
                Route("/api/portal-page", portal_page),
                Route("/api/other-shape", other_shape),
                Route("/api/not-records", not_records),
                Route("/api/slow", slow),
            ]
        )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Api]]:
    api = Api()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(api.app(), log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test API did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", api
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def base(served: tuple[str, Api], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    served[1].calls.clear()
    served[1].ports.clear()
    return served[0]


@pytest.fixture
def api(served: tuple[str, Api]) -> Api:
    return served[1]


def source(url: str, **settings: Any) -> RestPoll:
    defaults: dict[str, Any] = {
        "url": url,
        "cursor_field": "cap_nhat_luc",
        "auth_header": "X-API-Key",
        "auth_env": KEY_ENV,
    }
    return RestPoll(RestPollSettings(**(defaults | settings)))


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


async def fetches(poll: RestPoll, *pages: tuple[str | None, int]) -> list[Batch]:
    await poll.open()
    try:
        return [await poll.fetch(cursor, limit) for cursor, limit in pages]
    finally:
        await poll.close()


async def failure(poll: RestPoll, cursor: str | None = None) -> str:
    with pytest.raises(SourceError) as raised:
        await fetches(poll, (cursor, 10))
    return str(raised.value)


# -- paging --------------------------------------------------------------------------------


def test_a_page_holds_the_records_in_order_with_the_last_ones_cursor(base: str) -> None:
    [batch] = run(fetches(source(f"{base}/api/hoso"), (None, 2)))
    assert [r["ma_ho_so"] for r in batch.records] == ["H29.001", "H29.002"]
    assert batch.records[0]["chu_ho_so"] == "Nguyễn Văn An"
    assert batch.cursor == "2025-07-01T08:05:00"
    assert not batch.done


def test_the_next_page_starts_at_the_cursor_so_records_sharing_it_come_again(base: str) -> None:
    first, second = run(fetches(source(f"{base}/api/hoso"), (None, 2), ("2025-07-01T08:05:00", 2)))
    assert [r["ma_ho_so"] for r in second.records] == ["H29.002", "H29.003"]
    assert second.cursor == first.cursor  # the connector skips what it sent: no record lost


def test_a_page_shorter_than_the_limit_is_done(base: str) -> None:
    [batch] = run(fetches(source(f"{base}/api/hoso"), ("2025-07-01T09:00:00", 10)))
    assert [r["ma_ho_so"] for r in batch.records] == ["H29.004", "H29.005"]
    assert batch.done
    assert batch.cursor == "2025-07-01T10:30:00"


def test_an_empty_page_is_done_and_leaves_the_cursor_where_it_was(base: str) -> None:
    [batch] = run(fetches(source(f"{base}/api/hoso"), ("2026-01-01T00:00:00", 10)))
    assert (batch.records, batch.cursor, batch.done) == ([], None, True)


def test_the_first_fetch_sends_the_initial_cursor_and_an_empty_one_is_left_out(
    base: str, api: Api
) -> None:
    run(fetches(source(f"{base}/api/hoso", initial_cursor="2025-07-01T09:00:00"), (None, 5)))
    run(fetches(source(f"{base}/api/hoso"), (None, 5)))
    with_initial, without = (dict(call.query_params) for call in api.calls)
    assert with_initial == {"updated_since": "2025-07-01T09:00:00", "limit": "5"}
    assert without == {"limit": "5"}


def test_parameter_names_are_the_apis_own_and_query_parameters_in_the_url_are_kept(
    base: str, api: Api
) -> None:
    poll = source(f"{base}/api/hoso?don_vi=H29", cursor_param="tu_ngay", limit_param="so_luong")
    run(fetches(poll, ("2025-07-01", 3)))
    assert dict(api.calls[0].query_params) == {
        "don_vi": "H29",
        "tu_ngay": "2025-07-01",
        "so_luong": "3",
    }


def test_successive_polls_reuse_one_keep_alive_connection(base: str, api: Api) -> None:
    run(fetches(source(f"{base}/api/hoso"), (None, 1), (None, 1), (None, 1)))
    assert len(set(api.ports)) == 1


def test_a_bare_list_answer_is_read_when_items_field_is_empty(base: str) -> None:
    [batch] = run(fetches(source(f"{base}/api/bearer", items_field=""), (None, 10)))
    assert [r["ma_ho_so"] for r in batch.records] == ["H29.001"]


def test_check_proves_the_api_answers_with_records(base: str, api: Api) -> None:
    async def checked() -> None:
        poll = source(f"{base}/api/hoso")
        await poll.open()
        await poll.check()
        await poll.close()

    run(checked())
    assert api.calls[0].query_params["limit"] == "1"


# -- authentication ------------------------------------------------------------------------


def test_an_api_key_header_carries_the_bare_value_of_its_environment_variable(
    base: str, api: Api
) -> None:
    run(fetches(source(f"{base}/api/hoso"), (None, 1)))
    assert api.calls[0].headers["x-api-key"] == KEY


def test_an_authorization_header_carries_a_bearer_token_unless_another_scheme_is_named(
    base: str, api: Api
) -> None:
    bearer = source(f"{base}/api/bearer", items_field="", auth_header="Authorization")
    raw = source(f"{base}/api/bearer", items_field="", auth_header="Authorization", auth_scheme="")
    token = source(
        f"{base}/api/bearer", items_field="", auth_header="Authorization", auth_scheme="Token"
    )
    for poll in (bearer, raw, token):
        run(fetches(poll, (None, 1)))
    assert [call.headers["authorization"] for call in api.calls] == [
        f"Bearer {KEY}",
        KEY,
        f"Token {KEY}",
    ]


def test_opening_without_the_keys_environment_variable_names_the_variable(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SourceError, match=f"environment variable {KEY_ENV} .* is not set"):
        run(source(f"{base}/api/hoso").open())


def test_a_refused_key_names_its_environment_variable_and_never_the_key(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "mc-h29-revoked-key")
    message = run(failure(source(f"{base}/api/hoso")))
    assert message.startswith(f"rest_poll {base}/api/hoso: HTTP 401")
    assert f"key in environment variable {KEY_ENV} was refused" in message
    assert "revoked" not in message


def test_a_key_a_header_cannot_carry_is_refused_when_opening_without_showing_it(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "khóa-bí-mật")
    with pytest.raises(SourceError, match=f"{KEY_ENV} .* cannot carry") as raised:
        run(source(f"{base}/api/hoso").open())
    assert "khóa" not in str(raised.value)


def test_settings_want_auth_header_and_auth_env_together() -> None:
    with pytest.raises(ValidationError, match="auth_header and auth_env go together"):
        RestPollSettings(url="http://h/api", cursor_field="c", auth_header="X-API-Key")


# -- failures ------------------------------------------------------------------------------


def test_a_server_error_reports_the_status_and_a_short_excerpt_of_the_body(base: str) -> None:
    message = run(failure(source(f"{base}/api/boom")))
    assert "HTTP 500: Lỗi máy chủ: cơ sở dữ liệu bận xxx" in message
    assert len(message) < 300
    assert "\n" not in message


def test_a_wrong_path_is_reported_with_its_status_and_a_hint_to_check_the_url(base: str) -> None:
    message = run(failure(source(f"{base}/api/ho-so")))
    assert message == f"rest_poll {base}/api/ho-so: HTTP 404: Not Found; check url"


def test_an_answer_that_is_not_json_says_what_it_was(base: str) -> None:
    message = run(failure(source(f"{base}/api/portal-page")))
    assert "the answer is not JSON (text/html" in message
    assert "Đăng nhập" in message


def test_an_answer_without_the_items_field_names_the_fields_it_has(base: str) -> None:
    message = run(failure(source(f"{base}/api/other-shape")))
    assert "no 'items' field (it has: data, count); check items_field" in message


def test_items_that_are_not_objects_are_a_readable_error(base: str) -> None:
    message = run(failure(source(f"{base}/api/not-records")))
    assert "'items' holds a str at 1, not a record object" in message


def test_a_record_without_the_cursor_field_is_an_error_naming_the_field(base: str) -> None:
    message = run(failure(source(f"{base}/api/hoso", cursor_field="ngay_sua")))
    assert "the last record has no 'ngay_sua' value; check cursor_field" in message


def test_a_closed_port_cannot_connect() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/hoso"
    message = run(failure(source(url, auth_header=None, auth_env=None)))
    assert message.startswith(f"rest_poll {url}: cannot connect (Connection refused)")


def test_an_api_slower_than_the_timeout_cannot_connect_and_says_how_long_it_waited(
    base: str,
) -> None:
    message = run(failure(source(f"{base}/api/slow", timeout=0.3)))
    assert "cannot connect (no answer within 0.3 s)" in message


# -- naming --------------------------------------------------------------------------------


def test_describe_names_the_url_without_a_password_written_in_it() -> None:
    poll = source("https://can_bo:mat-khau@motcua.example.vn/api/hoso")
    assert poll.describe() == "rest_poll https://motcua.example.vn/api/hoso"


def test_rest_poll_is_a_registered_kind() -> None:
    assert KINDS["rest_poll"] is RestPoll
    assert RestPoll.settings_model is RestPollSettings
