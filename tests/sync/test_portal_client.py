"""The portal client, against the portal simulator over real HTTP; against httpx's mock
transport only for answers the simulator never gives (a proxy's page, a result out of step)."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog

from bus.errors import PermanentError, PortalUnavailable, TransientError
from bus.portal_sim import InProcessServer, Options
from bus.sync.breaker import BreakerState, CircuitBreaker
from bus.sync.portal import (
    ItemCode,
    ItemResult,
    PortalClient,
    PortalLoginRejected,
    PortalProtocolError,
)
from bus.sync.ratelimit import TokenBucket
from factories import AGENCY, a_dossier
from schemas import Dossier
from schemas.wire import to_dossier_item, to_progress_item

PASSWORD = "dossier-bus"  # the simulator's
CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass
class Simulator:
    url: str
    http: httpx.Client

    def faults(self, **changes: Any) -> None:
        self.http.put("/_sim/faults", json=changes).raise_for_status()

    def calls(self, endpoint: str) -> int:
        calls: dict[str, int] = self.http.get("/_sim/stats").json()["calls"]
        return calls.get(endpoint, 0)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Simulator]:
    with (
        InProcessServer(Options(db=tmp_path / "portal.sqlite3")) as url,
        httpx.Client(base_url=url) as http,
    ):
        yield Simulator(url, http)


def a_client(
    url: str,
    *,
    password: str = PASSWORD,
    timeout: float = 5.0,
    breaker: CircuitBreaker | None = None,
    bucket: TokenBucket | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int = 4,
    max_throttled: int = 10,
) -> PortalClient:
    return PortalClient(
        url,
        "igate-hcm",
        password,
        timeout=timeout,
        concurrency=concurrency,
        max_throttled=max_throttled,
        bucket=bucket or TokenBucket(1000),
        breaker=breaker or CircuitBreaker(threshold=3, cooldown=0.2),
        transport=transport,
    )


def dossier(n: int) -> Dossier:
    return a_dossier(code=f"{AGENCY}-240115-{n:04d}")


def item(n: int) -> dict[str, Any]:
    return dict(to_dossier_item(dossier(n)))


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(scenario())


# -- the calls -----------------------------------------------------------------------------


def test_created_dossiers_and_their_steps_come_back_from_a_lookup(portal: Simulator) -> None:
    one = dossier(1)

    async def scenario() -> tuple[Any, ...]:
        async with a_client(portal.url) as client:
            created = await client.upsert_dossiers(AGENCY, [item(1), item(2)], updating=False)
            steps = [to_progress_item(one.code, step) for step in one.progress]
            recorded = await client.record_progress(AGENCY, steps)
            return created, recorded, await client.lookup(AGENCY, one.code)

    created, recorded, found = run(scenario)
    assert created == [
        ItemResult(one.code, ItemCode.APPLIED, "Thành công"),
        ItemResult(dossier(2).code, ItemCode.APPLIED, "Thành công"),
    ]
    assert [result.code for result in recorded] == [ItemCode.APPLIED]
    assert (found["MaHoSo"], found["TrangThaiHoSo"]) == (one.code, item(1)["TrangThaiHoSo"])
    assert [step["MaHoSo"] for step in found["CapNhatTienDoHoSoMC"]] == [one.code]


def test_each_item_gets_its_own_verdict_exists_missing_or_invalid(portal: Simulator) -> None:
    invalid = {**item(3), "TrangThaiHoSo": "42"}

    async def scenario() -> tuple[list[ItemResult], list[ItemResult]]:
        async with a_client(portal.url) as client:
            await client.upsert_dossiers(AGENCY, [item(1)], updating=False)
            creations = await client.upsert_dossiers(AGENCY, [item(1), invalid], updating=False)
            updates = await client.upsert_dossiers(AGENCY, [item(2)], updating=True)
            return creations, updates

    creations, updates = run(scenario)
    assert [r.code for r in creations] == [ItemCode.EXISTS, ItemCode.INVALID]
    assert "TrangThaiHoSo" in creations[1].message
    assert creations[1].dossier_code == dossier(3).code
    assert [r.code for r in updates] == [ItemCode.MISSING]


def test_a_lookup_of_a_dossier_the_portal_lacks_is_none(portal: Simulator) -> None:
    async def scenario() -> Any:
        async with a_client(portal.url) as client:
            return await client.lookup(AGENCY, dossier(9).code)

    assert run(scenario) is None


def test_nothing_to_send_makes_no_call(portal: Simulator) -> None:
    async def scenario() -> list[ItemResult]:
        async with a_client(portal.url) as client:
            return await client.upsert_dossiers(AGENCY, [], updating=False)

    assert run(scenario) == []
    assert portal.calls("total") == 0


def test_a_call_the_portal_refuses_whole_is_a_permanent_protocol_error_not_a_breaker_failure(
    portal: Simulator,
) -> None:
    async def scenario() -> BreakerState:
        breaker = CircuitBreaker(threshold=1)
        async with a_client(portal.url, breaker=breaker) as client:
            await client.lookup(AGENCY, dossier(1).code)
            with pytest.raises(PortalProtocolError, match="error_code 400") as raised:
                await client.upsert_dossiers("H29", [item(1)], updating=False)  # not an agency
            assert isinstance(raised.value, PermanentError)
            return breaker.state

    assert run(scenario) is CLOSED
    assert portal.calls("integration") == 1


# -- sessions ------------------------------------------------------------------------------


def test_the_client_logs_in_on_its_first_call_and_keeps_the_session(portal: Simulator) -> None:
    async def scenario() -> None:
        async with a_client(portal.url) as client:
            for n in range(3):
                await client.lookup(AGENCY, dossier(n).code)

    run(scenario)
    assert (portal.calls("auth"), portal.calls("share")) == (1, 3)


def test_a_dropped_session_is_renewed_and_the_call_repeated_once_for_all_callers(
    portal: Simulator,
) -> None:
    async def scenario() -> list[Any]:
        async with a_client(portal.url) as client:
            await client.upsert_dossiers(AGENCY, [item(1)], updating=False)
            portal.faults(drop_sessions=True)
            return await asyncio.gather(*(client.lookup(AGENCY, dossier(1).code) for _ in range(8)))

    found = run(scenario)
    assert [f["MaHoSo"] for f in found] == [dossier(1).code] * 8
    assert portal.calls("auth") == 2  # one login for the eight callers that met the drop


def test_a_session_about_to_expire_is_renewed_before_the_portal_refuses_it(
    portal: Simulator,
) -> None:
    portal.faults(session_ttl=1)

    async def scenario() -> None:
        async with a_client(portal.url) as client:
            await client.lookup(AGENCY, dossier(1).code)
            await asyncio.sleep(1)
            await client.lookup(AGENCY, dossier(1).code)

    run(scenario)
    assert portal.calls("auth") == 2
    assert portal.calls("share") == 2  # no call was lost to an expired session


def test_credentials_the_portal_refuses_are_a_transient_breaker_failure(portal: Simulator) -> None:
    async def scenario() -> BreakerState:
        breaker = CircuitBreaker(threshold=1)
        async with a_client(portal.url, password="wrong", breaker=breaker) as client:
            with pytest.raises(PortalLoginRejected, match="igate-hcm") as raised:
                await client.lookup(AGENCY, dossier(1).code)
            assert isinstance(raised.value, TransientError)
            return breaker.state

    assert run(scenario) is OPEN


class SessionSpy(httpx.AsyncHTTPTransport):
    """httpx's own transport, noting the session every portal call carries."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/auth":
            self.sessions.add(orjson.loads(request.content)["session"])
        return await super().handle_async_request(request)


def test_no_log_line_or_error_carries_a_password_or_a_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret, typo = "a-password-nobody-may-see", "a-password-nobody-may-sea"
    spy = SessionSpy()

    async def scenario(url: str, control: Simulator) -> None:
        async with a_client(url, password=typo) as client:
            with pytest.raises(PortalLoginRejected) as raised:
                await client.lookup(AGENCY, dossier(1).code)
            assert typo not in str(raised.value)
        async with a_client(url, password=secret, transport=spy) as client:
            await client.lookup(AGENCY, dossier(1).code)
            control.faults(drop_sessions=True)
            await client.lookup(AGENCY, dossier(1).code)
            assert secret not in repr(client)

    caplog.set_level(logging.DEBUG)
    options = Options(db=tmp_path / "portal.sqlite3", password=secret)
    with (
        InProcessServer(options) as url,
        httpx.Client(base_url=url) as http,
        structlog.testing.capture_logs() as lines,
    ):
        asyncio.run(scenario(url, Simulator(url, http)))
    assert len(spy.sessions) == 2
    assert [line["event"] for line in lines].count("logged in to the portal") == 2
    text = repr(lines) + caplog.text
    for hidden in [secret, typo, *spy.sessions]:
        assert hidden not in text


# -- load and faults -----------------------------------------------------------------------


def test_a_429_pauses_for_retry_after_halves_the_rate_and_the_same_call_goes_through(
    portal: Simulator,
) -> None:
    async def scenario() -> tuple[list[ItemResult], float, float, BreakerState]:
        bucket, breaker = TokenBucket(100), CircuitBreaker(threshold=1)
        async with a_client(portal.url, bucket=bucket, breaker=breaker) as client:
            await client.lookup(AGENCY, dossier(1).code)  # logged in
            portal.faults(throttle_next=1, retry_after=1)
            started = time.monotonic()
            results = await client.upsert_dossiers(AGENCY, [item(1)], updating=False)
            return results, time.monotonic() - started, bucket.rate, breaker.state

    results, elapsed, rate, state = run(scenario)
    assert [r.code for r in results] == [ItemCode.APPLIED]
    assert elapsed >= 1.0
    assert rate == 50
    assert state is CLOSED  # a 429 is no failure
    assert portal.calls("integration") == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"error_next": 1},
        {"error_next": 1, "error_status": 502},
        {"stall_next": 1, "stall_seconds": 1.0},
        {"reset_next": 1},
    ],
    ids=["503", "502", "stall", "reset"],
)
def test_a_5xx_a_stall_or_a_cut_connection_is_portal_unavailable_and_a_breaker_failure(
    portal: Simulator, fault: dict[str, Any]
) -> None:
    async def scenario() -> list[BreakerState]:
        breaker = CircuitBreaker(threshold=2)
        async with a_client(portal.url, timeout=0.5, breaker=breaker) as client:
            await client.lookup(AGENCY, dossier(1).code)
            portal.faults(**fault)
            with pytest.raises(PortalUnavailable) as raised:
                await client.upsert_dossiers(AGENCY, [item(1)], updating=False)
            assert isinstance(raised.value, TransientError)
            after_one = breaker.state
            portal.faults(**fault)
            with pytest.raises(PortalUnavailable):
                await client.upsert_dossiers(AGENCY, [item(1)], updating=True)
            return [after_one, breaker.state]

    assert run(scenario) == [CLOSED, OPEN]


def test_a_portal_nobody_answers_at_is_unavailable(unused_port: int) -> None:
    async def scenario() -> None:
        async with a_client(f"http://127.0.0.1:{unused_port}") as client:
            await client.lookup(AGENCY, dossier(1).code)

    with pytest.raises(PortalUnavailable, match="ConnectError"):
        run(scenario)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_portal_that_is_down_opens_the_breaker_then_a_probe_closes_it_once_it_is_back(
    portal: Simulator,
) -> None:
    changes: list[tuple[BreakerState, BreakerState]] = []

    def portal_calls() -> int:
        return portal.calls("share") + portal.calls("integration")

    async def scenario() -> list[Any]:
        probe_failed = asyncio.Event()

        def hear(old: BreakerState, new: BreakerState) -> None:
            changes.append((old, new))
            if (old, new) == (HALF_OPEN, OPEN):
                probe_failed.set()

        breaker = CircuitBreaker(threshold=2, cooldown=0.2, on_change=hear)
        async with a_client(portal.url, breaker=breaker) as client:
            await client.lookup(AGENCY, dossier(1).code)
            portal.faults(down=True)
            for _ in range(2):
                with pytest.raises(PortalUnavailable):
                    await client.lookup(AGENCY, dossier(1).code)
            calls_when_opened = portal_calls()
            # Callers now wait instead of failing; the first probe still finds it down.
            waiting = [
                asyncio.ensure_future(client.upsert_dossiers(AGENCY, [item(n)], updating=False))
                for n in range(1, 6)
            ]
            await probe_failed.wait()
            assert sum(task.done() for task in waiting) == 1  # the probe, failed
            assert portal_calls() == calls_when_opened + 1
            portal.faults(down=False)
            return await asyncio.gather(*waiting, return_exceptions=True)

    outcomes = run(scenario)
    assert sum(isinstance(outcome, PortalUnavailable) for outcome in outcomes) == 1
    applied = [o for o in outcomes if isinstance(o, list)]
    assert [[r.code for r in result] for result in applied] == [[ItemCode.APPLIED]] * 4
    assert changes == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


class InFlight(httpx.AsyncHTTPTransport):
    """httpx's own transport, noting the most requests it ever had in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await super().handle_async_request(request)
        finally:
            self.now -= 1


def test_no_more_than_concurrency_calls_are_ever_in_flight(portal: Simulator) -> None:
    in_flight = InFlight()

    async def scenario() -> None:
        async with a_client(portal.url, concurrency=2, transport=in_flight) as client:
            await client.lookup(AGENCY, dossier(1).code)
            portal.faults(latency_ms=50)
            await asyncio.gather(*(client.lookup(AGENCY, dossier(n).code) for n in range(8)))

    run(scenario)
    assert in_flight.most == 2


class Tokens(TokenBucket):
    """A bucket that counts the tokens taken from it."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.taken = 0

    async def acquire(self) -> None:
        self.taken += 1
        await super().acquire()


def test_every_request_to_the_portal_takes_a_token_first_the_login_and_retries_too(
    portal: Simulator,
) -> None:
    bucket = Tokens()

    async def scenario() -> None:
        async with a_client(portal.url, bucket=bucket) as client:
            for n in range(3):
                await client.lookup(AGENCY, dossier(n).code)
            portal.faults(throttle_next=1, retry_after=0)
            await client.lookup(AGENCY, dossier(1).code)

    run(scenario)
    assert bucket.taken == portal.calls("total") == 1 + 3 + 2


# -- answers the simulator never gives -----------------------------------------------------


def mock_portal(answer: Callable[[httpx.Request, dict[str, Any]], httpx.Response]) -> Any:
    """A transport playing a portal that logs anyone in and answers the rest with `answer`."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if request.url.path == "/auth":
            return httpx.Response(200, json={"error_code": 0, "session": "s1", "expires_in": 60})
        return answer(request, body)

    return httpx.MockTransport(handle)


def call_mock(answer: Callable[[httpx.Request, dict[str, Any]], httpx.Response]) -> Any:
    async def scenario() -> Any:
        async with a_client("http://portal.test", transport=mock_portal(answer)) as client:
            return await client.upsert_dossiers(AGENCY, [item(1), item(2)], updating=True)

    return run(scenario)


def test_a_200_that_is_not_json_is_a_proxy_page_and_the_portal_unavailable() -> None:
    with pytest.raises(PortalUnavailable, match="not JSON"):
        call_mock(lambda request, body: httpx.Response(200, text="<html>Bảo trì</html>"))


def test_results_that_do_not_match_the_items_are_a_protocol_error() -> None:
    def one_result(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(200, json={"error_code": 0, "result": [{"error_code": 0}]})

    with pytest.raises(PortalProtocolError, match="1 results for 2 items"):
        call_mock(one_result)


def test_results_out_of_step_with_the_items_are_a_protocol_error() -> None:
    def swapped(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        lines = [{"MaHoSo": i["MaHoSo"], "error_code": 0} for i in reversed(body["data"])]
        return httpx.Response(200, json={"error_code": 0, "result": lines})

    with pytest.raises(PortalProtocolError, match=r"answered .* where .* was sent"):
        call_mock(swapped)


def test_the_older_portals_string_codes_are_understood() -> None:
    def old_style(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        lines = [{"MaHoSo": i["MaHoSo"], "error_code": "00", "message": "OK"} for i in body["data"]]
        return httpx.Response(200, json={"error_code": "00", "result": lines})

    assert [r.code for r in call_mock(old_style)] == [0, 0]


def test_an_http_401_from_a_gateway_renews_the_session_like_the_portals_own() -> None:
    sessions: list[str] = []

    def gateway(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        sessions.append(body["session"])
        if len(sessions) == 1:
            return httpx.Response(401, text="Unauthorized")
        lines = [{"MaHoSo": i["MaHoSo"], "error_code": 0} for i in body["data"]]
        return httpx.Response(200, json={"error_code": 0, "result": lines})

    assert [r.code for r in call_mock(gateway)] == [0, 0]
    assert len(sessions) == 2


def test_another_4xx_is_a_protocol_error() -> None:
    with pytest.raises(PortalProtocolError, match="HTTP 413"):
        call_mock(lambda request, body: httpx.Response(413, text="too large"))


class PauseSpy(TokenBucket):
    """A bucket that notes each pause asked of it, and pauses not at all."""

    def __init__(self) -> None:
        super().__init__(1000)
        self.pauses: list[float] = []

    def slow_down(self, retry_after: float) -> None:
        self.pauses.append(retry_after)
        super().slow_down(0)


@pytest.mark.parametrize(
    ("retry_after", "paused"),
    [("2", 2.0), ("0.5", 0.5), ("nonsense", 1.0), (None, 1.0), ("86400", 300.0), ("-3", 0.0)],
)
def test_retry_after_is_read_in_seconds_with_a_default_and_a_cap(
    retry_after: str | None, paused: float
) -> None:
    answers = iter([429, 200])

    def throttling(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if next(answers) == 429:
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            return httpx.Response(429, headers=headers)
        lines = [{"MaHoSo": i["MaHoSo"], "error_code": 0} for i in body["data"]]
        return httpx.Response(200, json={"error_code": 0, "result": lines})

    bucket = PauseSpy()

    async def scenario() -> None:
        client = a_client("http://portal.test", transport=mock_portal(throttling), bucket=bucket)
        async with client:
            await client.upsert_dossiers(AGENCY, [item(1)], updating=True)

    run(scenario)
    assert bucket.pauses == [paused]


def test_a_call_still_throttled_after_max_throttled_retries_gives_up_as_unavailable() -> None:
    bucket = PauseSpy()

    async def scenario() -> None:
        transport = mock_portal(lambda request, body: httpx.Response(429))
        client = a_client("http://x.test", transport=transport, bucket=bucket, max_throttled=3)
        async with client:
            await client.upsert_dossiers(AGENCY, [item(1)], updating=True)

    with pytest.raises(PortalUnavailable, match=r"still throttled \(429\) after 3 retries"):
        run(scenario)
    assert len(bucket.pauses) == 4  # the last 429 still pauses the other callers


def test_a_retry_after_given_as_a_date_is_the_seconds_until_then() -> None:
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    answers = iter([429, 200])

    def throttling(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if next(answers) == 429:
            return httpx.Response(429, headers={"Retry-After": soon})
        lines = [{"MaHoSo": i["MaHoSo"], "error_code": 0} for i in body["data"]]
        return httpx.Response(200, json={"error_code": 0, "result": lines})

    bucket = PauseSpy()

    async def scenario() -> None:
        client = a_client("http://portal.test", transport=mock_portal(throttling), bucket=bucket)
        async with client:
            await client.upsert_dossiers(AGENCY, [item(1)], updating=True)

    run(scenario)
    assert bucket.pauses == [pytest.approx(30, abs=2)]
