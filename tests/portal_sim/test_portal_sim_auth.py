"""`/auth` and sessions: a session opens with the password, lives its TTL, and a call with a
dead one answers error_code 401 until the client logs in again."""

from __future__ import annotations

import time

from portal_sim_support import PortalClient, codes, dossier_item


def test_login_with_the_password_opens_a_session_that_says_how_long_it_lives(
    portal_url: str,
) -> None:
    client = PortalClient(portal_url)
    answer = client.login()
    assert answer["error_code"] == 0
    assert answer["session"]
    assert answer["expires_in"] == 1800


def test_login_with_a_wrong_password_answers_401_with_the_portals_message(
    portal_url: str,
) -> None:
    answer = PortalClient(portal_url).login(password="wrong")
    assert answer == {"error_code": 401, "message": "Sai tên đăng nhập hoặc mật khẩu"}


def test_login_without_the_dstcode_header_is_a_malformed_call(portal_url: str) -> None:
    client = PortalClient(portal_url)
    del client.http.headers["dstcode"]
    answer = client.login()
    assert answer["error_code"] == 400
    assert "dstcode" in answer["message"]


def test_a_call_with_an_unknown_session_answers_401_and_no_result(client: PortalClient) -> None:
    client.session = "not-a-session"
    answer = client.sync([dossier_item()])
    assert answer == {"error_code": 401, "message": "Phiên làm việc không hợp lệ hoặc đã hết hạn"}


def test_a_session_expires_after_its_ttl_and_logging_in_again_lets_the_call_through(
    client: PortalClient,
) -> None:
    client.faults(session_ttl=0.3)
    assert client.login()["expires_in"] == 0.3
    time.sleep(0.4)
    assert client.sync([dossier_item()])["error_code"] == 401
    client.login()
    assert codes(client.sync([dossier_item()])) == [0]


def test_a_ttl_changed_at_run_time_applies_to_sessions_opened_after(
    client: PortalClient,
) -> None:
    client.faults(session_ttl=0.2)
    time.sleep(0.3)
    assert client.sync([dossier_item()])["error_code"] == 0  # opened with the 1800 s TTL


def test_dropping_all_sessions_ends_every_open_session_at_once(portal_url: str) -> None:
    first, second = PortalClient(portal_url), PortalClient(portal_url)
    first.login()
    second.login()
    assert first.faults(drop_sessions=True)["sessions_live"] == 0
    assert first.sync([dossier_item(1)])["error_code"] == 401
    assert second.sync([dossier_item(2)])["error_code"] == 401
    assert first.stats()["faults"]["sessions_dropped"] == 2
