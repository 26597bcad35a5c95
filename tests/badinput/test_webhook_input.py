"""Bad pushes to a `webhook` connector: a push that is not records is answered 4xx with its
reason and takes nothing; a refused record in a good push is named in the 202 answer and
kept in the reject store; every good record pushed alongside reaches the portal."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from badinput_support import final_rows, good_only, rejected, synced, through

from connectors.kinds import Webhook

SECRET = b"h30 bad-input webhook secret"


def signed(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest()}


async def url_of(source: object) -> str:
    assert isinstance(source, Webhook)
    for _ in range(200):
        with contextlib.suppress(RuntimeError):  # not listening yet
            return f"http://127.0.0.1:{source.port}/hooks/dossiers"
        await asyncio.sleep(0.05)
    raise AssertionError("the webhook did not start listening")


def test_bad_pushes_are_refused_with_their_reason_and_every_good_record_reaches_the_portal(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H30_WEBHOOK_SECRET", SECRET.decode())
    rows, expected = final_rows("000.00.01.H30", 20, seed=81)
    missing_fields = {"ma_ho_so": rows[5]["ma_ho_so"], "phien_ban": 3}
    unmapped = {**rows[6], "trang_thai": "CHUA_RO"}
    gone = {str(rows[5]["ma_ho_so"]), str(rows[6]["ma_ho_so"])}
    garbage = bytes(range(256)) * 4
    not_json = b"ma_ho_so=000.00.01.H30-250701-0001&trang_thai=DA_TRA"
    huge = orjson.dumps([rows[0]] * 3000)  # over the 5 MB a push may weigh

    async def scenario() -> tuple[list[str], dict[str, Any], Any]:
        answers: dict[str, Any] = {}
        async with through(vhost, tmp_path, "webhook", port=0) as pipeline:
            url = await url_of(pipeline.connector.source)
            async with httpx.AsyncClient(timeout=30) as http:

                async def push(name: str, body: bytes, headers: dict[str, str]) -> None:
                    answer = await http.post(url, content=body, headers=headers)
                    answers[name] = (answer.status_code, answer.json())

                first = orjson.dumps(rows[:5])
                await push("good", first, signed(first))
                await push("garbage", garbage, signed(garbage))
                await push("not json", not_json, signed(not_json))
                wrong = orjson.dumps(rows[10:])
                await push("wrong hmac", wrong, signed(wrong, b"another secret"))
                await push("no hmac", wrong, {})
                await push("huge", huge, signed(huge))
                mixed = orjson.dumps([missing_fields, unmapped, *rows[7:]])
                await push("mixed", mixed, signed(mixed))
            problems = await synced(pipeline.portal, "H30", good_only(expected, gone))
            await rejected(pipeline, 2)
        return problems, answers, pipeline

    problems, answers, pipeline = asyncio.run(scenario())

    assert problems == []
    assert answers["good"] == (202, {"accepted": 5, "refused": {}})
    for name, status, words in [
        ("garbage", 400, "not UTF-8"),
        ("not json", 400, "JSON"),
        ("wrong hmac", 401, "not the HMAC-SHA256"),
        ("no hmac", 401, "X-Signature"),
        ("huge", 413, "bytes"),
    ]:
        code, body = answers[name]
        assert code == status, (name, body)
        assert words in body["error"], (name, body)
    status, body = answers["mixed"]
    assert status == 202
    assert body["accepted"] == len(rows) - 7
    assert set(body["refused"]) == {"0", "1"}
    assert "CHUA_RO" in body["refused"]["1"]
    listed = {reject["dossier_code"]: reject for reject in pipeline.rejects()}
    assert set(listed) == gone
    assert "CHUA_RO" in listed[unmapped["ma_ho_so"]]["reason"]
    masked = listed[unmapped["ma_ho_so"]]["record"]
    assert (masked["so_giay_to"], masked["dien_thoai"]) != (
        unmapped["so_giay_to"],
        unmapped["dien_thoai"],
    )
