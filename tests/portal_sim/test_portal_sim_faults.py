"""Fault injection, seen from an httpx client as the sync service will see it."""

from __future__ import annotations

import time

import httpx
import pytest
from portal_sim_support import PortalClient, codes, dossier_code, dossier_item


def auth_statuses(client: PortalClient, calls: int) -> list[int]:
    body = {"username": "igate-hcm", "password": "dossier-bus"}
    return [client.http.post("/auth", json=body).status_code for _ in range(calls)]


def test_a_share_of_calls_answers_503_roughly_that_share(client: PortalClient) -> None:
    client.faults(error_rate=0.25, seed=7)
    statuses = auth_statuses(client, 400)
    assert set(statuses) == {200, 503}
    assert 60 <= statuses.count(503) <= 140  # 100 expected; ±4 standard deviations


def test_the_next_calls_answer_429_with_retry_after_then_calls_go_through(
    client: PortalClient,
) -> None:
    client.faults(throttle_next=3, retry_after=7)
    answers = [client.http.post("/integration", json={}) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert {a.headers["retry-after"] for a in answers[:3]} == {"7"}
    assert client.faults()["throttle_next"] == 0


def test_a_throttled_or_failed_call_changes_nothing(client: PortalClient) -> None:
    client.faults(throttle_next=1, error_next=1)
    for expected in (429, 503):
        body = client.envelope("DongBoHoSoMC", [dossier_item(1)], isUpdating="False")
        assert client.http.post("/integration", json=body).status_code == expected
    assert client.http.get(f"/_sim/dossiers/{dossier_code(1)}").status_code == 404


def test_a_stall_outlasts_the_client_timeout_yet_the_call_was_applied(
    client: PortalClient,
) -> None:
    client.faults(stall_next=1, stall_seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.sync([dossier_item(1)], timeout=0.3)
    assert client.record(dossier_code(1))["version"] == 1
    assert codes(client.sync([dossier_item(1)])) == [2]  # the retry learns it exists


def test_a_stall_before_applying_applies_the_call_only_when_it_ends(
    client: PortalClient,
) -> None:
    client.faults(stall_next=1, stall_seconds=1.0, stall_after_apply=False)
    with pytest.raises(httpx.ReadTimeout):
        client.sync([dossier_item(1)], timeout=0.2)
    record = f"/_sim/dossiers/{dossier_code(1)}"
    assert client.http.get(record).status_code == 404
    deadline = time.monotonic() + 5
    while client.http.get(record).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.record(dossier_code(1))["version"] == 1


def test_a_reset_cuts_the_connection_and_surfaces_as_a_transport_error(
    client: PortalClient,
) -> None:
    client.faults(reset_next=1)
    with pytest.raises(httpx.TransportError):  # RemoteProtocolError: the body never came
        client.sync([dossier_item(1)])
    assert client.record(dossier_code(1))["version"] == 1  # applied before the cut
    assert codes(client.sync([dossier_item(2)])) == [0]  # the client reconnects


def test_a_reset_before_applying_leaves_the_portal_unchanged(client: PortalClient) -> None:
    client.faults(reset_next=1, reset_after_apply=False)
    with pytest.raises(httpx.TransportError):
        client.sync([dossier_item(1)])
    assert client.http.get(f"/_sim/dossiers/{dossier_code(1)}").status_code == 404


def test_a_portal_that_is_down_answers_503_to_every_call_until_it_is_back(
    client: PortalClient,
) -> None:
    client.faults(down=True)
    assert set(auth_statuses(client, 5)) == {503}
    assert client.http.get("/healthz").json() == {"status": "ok", "down": True}
    client.faults(down=False)
    assert set(auth_statuses(client, 2)) == {200}


def test_added_latency_delays_every_portal_call(client: PortalClient) -> None:
    client.faults(latency_ms=150)
    started = time.perf_counter()
    client.login()
    assert time.perf_counter() - started >= 0.15


def test_faults_never_touch_the_operator_endpoints(client: PortalClient) -> None:
    client.faults(down=True)
    assert client.http.get("/_sim/stats").status_code == 200
    assert client.http.get("/_sim/units").status_code == 200


def test_stats_count_each_injected_fault_by_kind(client: PortalClient) -> None:
    client.faults(throttle_next=2, error_next=1, reset_next=1, latency_ms=1)
    auth_statuses(client, 3)
    with pytest.raises(httpx.TransportError):
        client.login()
    client.faults(down=True)
    auth_statuses(client, 2)
    faults = client.stats()["faults"]
    assert faults == {"latency": 6, "throttle": 2, "error": 1, "reset": 1, "down": 2, "total": 12}
    assert client.stats()["calls"]["auth"] == 7


def test_setting_an_unknown_or_impossible_fault_is_refused_and_changes_nothing(
    client: PortalClient,
) -> None:
    for body in ({"error_rte": 0.1}, {"error_rate": 2}, {"down": True, "session_ttl": -1}):
        answer = client.http.put("/_sim/faults", json=body)
        assert answer.status_code == 400
        assert answer.json()["error"]
    assert client.http.get("/_sim/faults").json()["down"] is False


def test_clear_removes_every_fault_at_once(client: PortalClient) -> None:
    client.faults(down=True, latency_ms=5, throttle_rate=0.5)
    settings = client.faults(clear=True)
    assert (settings["down"], settings["latency_ms"], settings["throttle_rate"]) == (False, 0, 0)
