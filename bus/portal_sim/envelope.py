"""Reading what surrounds the items of a call: body, `dstcode` header, session, `madonvi`,
`service`, `isUpdating`, `data`.

Whatever is wrong here refuses the whole call (`error_code` 400, or 401 for the session),
unlike a bad item, which refuses only itself. Each refusal says which part is wrong and why.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import orjson
from starlette.requests import Request

from bus.portal_sim.answers import BAD_SESSION, UNAUTHORIZED, EnvelopeError
from schemas.errors import ContractError
from schemas.identifiers import AgencyCode

# isUpdating is "True"/"False" on the wire (DOMAIN.md); vendors also send the flag spellings
# and, now and then, a JSON boolean. All of them mean the same, so all are accepted.
_TRUTHS: Final[dict[str, bool]] = {
    "True": True,
    "true": True,
    "1": True,
    "False": False,
    "false": False,
    "0": False,
}


async def read_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError.malformed("the body is not JSON") from None
    if not isinstance(envelope, dict):
        # Some vendors post a bare array to a provincial gateway; the national portal takes
        # the session envelope only, and saying so is more useful than guessing the rest.
        raise EnvelopeError.malformed(
            'the body must be a JSON object {"session", "madonvi", "service", ...}'
        )
    return envelope


def caller(request: Request) -> AgencyCode:
    """The `dstcode` header every call carries: the caller's agency code."""
    return _agency(request.headers.get("dstcode"), "the dstcode header")


def agency(envelope: dict[str, Any]) -> AgencyCode:
    return _agency(envelope.get("madonvi"), "madonvi")


def _agency(value: object, where: str) -> AgencyCode:
    if value is None or value == "":
        raise EnvelopeError.malformed(f"{where} is required: the caller's agency code")
    try:
        return AgencyCode.parse(value)
    except ContractError as error:
        shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "the value"
        raise EnvelopeError.malformed(f"{where} {shown}: {error.problems[0].rule}") from None


def session_token(envelope: dict[str, Any]) -> str:
    token = envelope.get("session")
    if not isinstance(token, str) or not token:
        raise EnvelopeError(UNAUTHORIZED, BAD_SESSION)
    return token


def service(envelope: dict[str, Any], known: Collection[str]) -> str:
    name = envelope.get("service")
    if name not in known:
        shown = repr(name) if isinstance(name, str) and len(name) <= 60 else "missing or not text"
        raise EnvelopeError.malformed(
            f"service {shown} is unknown here; this endpoint knows {', '.join(sorted(known))}"
        )
    return str(name)


def is_updating(envelope: dict[str, Any]) -> bool:
    flag = envelope.get("isUpdating")
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, str) and flag in _TRUTHS:
        return _TRUTHS[flag]
    raise EnvelopeError.malformed('isUpdating must be "True" (update) or "False" (creation)')


def items(envelope: dict[str, Any]) -> list[Any]:
    data = envelope.get("data")
    if not isinstance(data, list):
        raise EnvelopeError.malformed("data must be a JSON array of items")
    return data


def text(envelope: dict[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str) or not value:
        raise EnvelopeError.malformed(f"{name} is required, as a JSON string")
    return value
