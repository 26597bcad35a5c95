"""What the portal answers: its error codes, its messages, and the JSON they travel in.

Every answer of the portal is HTTP 200 carrying an `error_code` (docs/portal-api.md); only the
injected faults (`faults.py`) answer with another HTTP status. Messages are the portal's own,
in Vietnamese. Where the real portal would only say "invalid", the simulator adds the field and
the rule, so that a developer can fix the call from the message alone.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

import orjson
from starlette.responses import Response


class ItemCode(IntEnum):
    """The verdict on one item of a `/integration` call."""

    APPLIED = 0
    INVALID = 1  # the message names the field and the rule
    EXISTS = 2  # a creation ("isUpdating": "False") of a dossier the portal has
    MISSING = 3  # an update, or a progress step, of a dossier the portal does not have


ITEM_MESSAGES: Final = {
    ItemCode.APPLIED: "Thành công",
    ItemCode.EXISTS: "Hồ sơ đã tồn tại",
    ItemCode.MISSING: "Hồ sơ không tồn tại",
}

# Envelope errors: the whole call is refused and the answer has no `result`.
BAD_REQUEST: Final = 400
UNAUTHORIZED: Final = 401

WRONG_CREDENTIALS: Final = "Sai tên đăng nhập hoặc mật khẩu"
BAD_SESSION: Final = "Phiên làm việc không hợp lệ hoặc đã hết hạn"
MALFORMED: Final = "Yêu cầu không hợp lệ"  # followed by what is wrong, in English
NOT_FOUND: Final = ITEM_MESSAGES[ItemCode.MISSING]


class EnvelopeError(Exception):
    """The call itself is wrong: it is answered with `error_code` and `message` only."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message

    @classmethod
    def malformed(cls, detail: str) -> EnvelopeError:
        return cls(BAD_REQUEST, f"{MALFORMED}: {detail}")


def json_response(body: Any, status_code: int = 200) -> Response:
    """orjson rather than the stdlib: answers to 100-item batches are the hot path."""
    return Response(orjson.dumps(body), status_code, media_type="application/json")


def refused(error: EnvelopeError) -> Response:
    return json_response({"error_code": error.error_code, "message": error.message})
