"""Console sessions: a signed cookie saying who logged in, and that session's CSRF token.

The cookie holds `base64(json).base64(hmac)`: the server keeps no session table, and a
cookie changed by its holder fails the HMAC. It is HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it) and Secure when the console is served over
https. Each session carries a random CSRF token that every form embeds and every POST must
send back: a page of another origin cannot read it, so it cannot forge the console's forms.

The secret comes from `BUS_CONSOLE_SECRET`; without one, a random secret is made when the
process starts, and every session ends with the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

import orjson

COOKIE: Final = "bus_console"
MAX_AGE: Final = 12 * 3600  # seconds: an operator logs in once per shift


@dataclass(frozen=True)
class Session:
    operator: str
    csrf: str
    issued: float  # epoch seconds

    @classmethod
    def new(cls, operator: str) -> Session:
        return cls(operator, secrets.token_urlsafe(32), time.time())

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class SessionSigner:
    def __init__(self, secret: bytes, max_age: float = MAX_AGE) -> None:
        # Derived, so that the configured secret itself never signs anything directly.
        self._key = hashlib.sha256(b"bus-console-session\x00" + secret).digest()
        self.max_age = max_age

    def dumps(self, session: Session) -> str:
        payload = orjson.dumps([session.operator, session.csrf, session.issued])
        data = base64.urlsafe_b64encode(payload).decode("ascii")
        return f"{data}.{self._sign(data)}"

    def loads(self, cookie: str | None) -> Session | None:
        """The session the cookie holds, or None when it is missing, forged or too old."""
        if not cookie or "." not in cookie:
            return None
        data, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature.encode(), self._sign(data).encode()):
            return None
        try:
            operator, csrf, issued = orjson.loads(base64.urlsafe_b64decode(data))
        except (ValueError, TypeError):
            return None
        if not isinstance(issued, float | int) or time.time() - issued > self.max_age:
            return None
        return Session(str(operator), str(csrf), float(issued))

    def _sign(self, data: str) -> str:
        digest = hmac.new(self._key, data.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
