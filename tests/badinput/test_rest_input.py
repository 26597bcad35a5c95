"""Bad pages and bad records from a local system's REST API, read by `rest_poll`: a refused
record lands in the reject store with its reason while the good records of its page and of
the pages after it reach the portal; a page that cannot be read holds the cursor where it
was, says so (a log line, and 503 on the connector's /readyz), and once the API serves good
pages again every dossier is applied."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from badinput_support import Rows, final_rows, free_port, good_only, rejected, synced, through
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from connectors.sample.local import UPDATED_AT
from connectors.sample.rest import SampleServer

AGENCY = "000.00.01.H29"
KEY = "h29 bad-input key"
PAGE = 4  # records a page holds at most, whatever the connector asks


class Api:
    """The local system's API, serving `rows[:shown]` in pages of PAGE from an inclusive
    cursor, or the `fault` named instead of any page."""

    FAULTS: ClassVar[dict[str, Response]] = {
        "not JSON": PlainTextResponse("<html>Hệ thống đang bảo trì</html>", 200),
        "HTTP 500": PlainTextResponse("Lỗi máy chủ: cơ sở dữ liệu bận", 500),
        "no 'items' field": JSONResponse({"data": [], "trang": 1}),
        "not a record object": JSONResponse({"items": ["000.00.01.H29-250701-0001"]}),
    }

    def __init__(self, rows: Rows, shown: int) -> None:
        self.rows, self.shown = rows, shown
        self.fault: str | None = None

    def app(self) -> Starlette:
        async def pages(request: Request) -> Response:
            if request.headers.get("x-api-key") != KEY:
                return JSONResponse({"error": "invalid API key"}, status_code=401)
            if self.fault is not None:
                return self.FAULTS[self.fault]
            since = request.query_params.get("cap_nhat_tu", "")
            page = [row for row in self.rows[: self.shown] if str(row[UPDATED_AT]) >= since]
            return JSONResponse({"items": page[:PAGE]})

        return Starlette(routes=[Route("/api/v1/ho-so", pages)])


def test_bad_records_are_rejected_with_their_reasons_and_every_good_record_of_every_page_is_applied(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H29_API_KEY", KEY)
    rows, expected = final_rows(AGENCY, 22, seed=61)
    # (position, change, words of the reason), each inside a page: pages start at 0, 3, 6...,
    # the last record of one coming again first in the next (the cursor is inclusive)
    spoilers: list[tuple[int, dict[str, Any], str]] = [
        (1, {"trang_thai": "KHONG_CO_MA"}, "KHONG_CO_MA"),
        (5, {"ma_ho_so": "H29/2025/HS-0005"}, "code"),
        (8, {"ngay_nop": "31/02/2025 9h"}, "ngay_nop"),
        (10, {"trang_thai": "CHUA_RO"}, "CHUA_RO"),
    ]
    gone = {str(rows[at]["ma_ho_so"]) for at, _, _ in spoilers}
    spoiled = {}
    for at, change, _ in spoilers:
        rows[at] = {**rows[at], **change}
        spoiled[str(rows[at]["ma_ho_so"])] = rows[at]
    api = Api(rows, shown=len(rows))

    async def scenario() -> tuple[list[str], str | None, Any]:
        with SampleServer(api.app()) as url:
            async with through(vhost, tmp_path, "rest_poll", url=f"{url}/api/v1/ho-so") as pipeline:
                problems = await synced(pipeline.portal, "H29", good_only(expected, gone), gone)
                await rejected(pipeline, len(spoilers))
                await asyncio.sleep(1)  # a few polls more: nothing is refused twice
                cursor = pipeline.connector.outbox.cursor()
        return problems, cursor, pipeline

    problems, cursor, pipeline = asyncio.run(scenario())

    assert problems == []
    assert cursor == rows[-1][UPDATED_AT]
    listed = pipeline.rejects()
    assert sorted(reject["dossier_code"] for reject in listed) == sorted(spoiled)
    by_code = {reject["dossier_code"]: reject for reject in listed}
    for (at, _, words), (code, row) in zip(spoilers, spoiled.items(), strict=True):
        assert words in by_code[code]["reason"], (at, by_code[code]["reason"])
        for personal in ("so_giay_to", "dien_thoai"):  # masked
            assert by_code[code]["record"][personal] != row[personal], personal


def test_a_bad_record_read_again_at_the_head_of_the_next_page_is_rejected_only_once(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H29_API_KEY", KEY)
    rows, expected = final_rows(AGENCY, 8, seed=63)
    rows[3] = {**rows[3], "trang_thai": "KHONG_CO_MA"}  # last of the first page
    rows[7] = {**rows[7], "trang_thai": "CHUA_RO"}  # last of all, read again at every poll
    gone = {str(rows[3]["ma_ho_so"]), str(rows[7]["ma_ho_so"])}
    api = Api(rows, shown=len(rows))

    async def scenario() -> tuple[list[str], Any]:
        with SampleServer(api.app()) as url:
            async with through(vhost, tmp_path, "rest_poll", url=f"{url}/api/v1/ho-so") as pipeline:
                problems = await synced(pipeline.portal, "H29", good_only(expected, gone), gone)
                await rejected(pipeline, 2)
                await asyncio.sleep(1.5)  # polls at 0.2 s: the last page is read again
        return problems, pipeline

    problems, pipeline = asyncio.run(scenario())

    assert problems == []
    assert sorted(reject["dossier_code"] for reject in pipeline.rejects()) == sorted(gone)


def test_a_page_that_cannot_be_read_holds_the_cursor_and_is_reported_and_then_nothing_is_lost(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H29_API_KEY", KEY)
    rows, expected = final_rows(AGENCY, 20, seed=62)
    first = {str(row["ma_ho_so"]): expected[str(row["ma_ho_so"])] for row in rows[:8]}
    api = Api(rows, shown=8)
    port = free_port()
    readyz = f"http://127.0.0.1:{port}/readyz"

    def readiness() -> tuple[int, str]:
        with httpx.Client(timeout=5) as http:
            answer = http.get(readyz)
        return answer.status_code, str(answer.json()["checks"]["source"])

    async def scenario() -> tuple[list[str], list[str], dict[str, tuple[int, str]], Any]:
        reported: dict[str, tuple[int, str]] = {}
        with SampleServer(api.app()) as url:
            async with through(
                vhost, tmp_path, "rest_poll", metrics_port=port, url=f"{url}/api/v1/ho-so"
            ) as pipeline:
                before = await synced(pipeline.portal, "H29", first)
                cursor = pipeline.connector.outbox.cursor()
                api.shown = len(rows)  # the system moved on while its API broke
                for fault in Api.FAULTS:
                    api.fault = fault
                    seen: list[tuple[int, str]] = []

                    async def says_it(
                        fault: str = fault, seen: list[tuple[int, str]] = seen
                    ) -> bool:
                        seen.append(await asyncio.to_thread(readiness))
                        return seen[-1][0] == 503 and fault in seen[-1][1]

                    await eventually_async(says_it, f"/readyz names {fault!r}")
                    reported[fault] = seen[-1]
                    assert pipeline.connector.outbox.cursor() == cursor, fault
                api.fault = None
                after = await synced(pipeline.portal, "H29", expected)
                reported["read again"] = await asyncio.to_thread(readiness)
        return before, after, reported, pipeline

    with capture_logs() as logs:
        before, after, reported, pipeline = asyncio.run(scenario())

    assert before == []
    assert after == []
    assert reported["read again"] == (200, "ok")
    assert pipeline.rejects() == []
    warned = [entry["error"] for entry in logs if entry["event"] == "source not readable"]
    for fault in Api.FAULTS:
        assert any(fault in error for error in warned), fault


async def eventually_async(check: Any, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)
