"""Session cookies: signed, expiring, each with its own CSRF token."""

from __future__ import annotations

import time

from bus.console.sessions import Session, SessionSigner


def test_a_signed_session_reads_back_as_it_was() -> None:
    signer = SessionSigner(b"secret")
    session = Session.new("hanoi")
    assert signer.loads(signer.dumps(session)) == session


def test_a_session_changed_by_its_holder_or_signed_with_another_secret_is_refused() -> None:
    cookie = SessionSigner(b"secret").dumps(Session.new("hanoi"))
    _data, signature = cookie.rsplit(".", 1)
    forged = SessionSigner(b"secret").dumps(Session.new("national")).rsplit(".", 1)[0]
    assert SessionSigner(b"secret").loads(f"{forged}.{signature}") is None
    assert SessionSigner(b"other").loads(cookie) is None
    assert SessionSigner(b"secret").loads("garbage") is None


def test_a_session_older_than_its_max_age_is_refused() -> None:
    signer = SessionSigner(b"secret", max_age=60)
    old = Session("hanoi", "token", time.time() - 61)
    assert signer.loads(signer.dumps(old)) is None


def test_each_session_has_its_own_csrf_token_and_only_it_matches() -> None:
    first, second = Session.new("hanoi"), Session.new("hanoi")
    assert first.csrf != second.csrf
    assert first.csrf_matches(first.csrf)
    assert not first.csrf_matches(second.csrf)
    assert not first.csrf_matches(None)
