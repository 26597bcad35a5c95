"""`rest_poll`: a paged REST API, asked for the records changed at or after a cursor.

    [source]
    url = "https://motcua.example.gov.vn/api/hoso"
    cursor_field = "cap_nhat_luc"
    auth_header = "X-API-Key"
    auth_env = "MOTCUA_API_KEY"

Each fetch is one `GET url?updated_since=<cursor>&limit=<n>`; the answer is a JSON object
holding the records in `items` (or a bare list, with `items_field = ""`), oldest first. The
next cursor is the last record's `cursor_field`. Local APIs filter with "at or after", so
the last records come again on the next page; the connector recognises and skips them,
which is what makes records sharing one timestamp across a page boundary safe.

The key or token lives in an environment variable, never in the config file, and never in
an error message.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Final, Self

import httpx
import orjson
from pydantic import Field, field_validator, model_validator

from connectors.source import Batch, PollSource, Record, SourceError, SourceSettings

_SHOWN: Final = 200  # characters of an unexpected answer kept in an error message


class RestPollSettings(SourceSettings):
    url: str
    cursor_field: str = Field(min_length=1)
    cursor_param: str = Field("updated_since", min_length=1)
    limit_param: str = Field("limit", min_length=1)
    items_field: str = "items"  # "": the answer is the list itself
    auth_header: str | None = None  # "Authorization", "X-API-Key", ...
    auth_env: str | None = None  # the environment variable holding the token or key
    # None: "Bearer" in an Authorization header, the bare value in any other header.
    auth_scheme: str | None = None
    timeout: float = Field(10.0, gt=0)  # seconds, for connecting and for each read
    initial_cursor: str = ""  # the cursor of the very first fetch ("": send no cursor)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if httpx.URL(url).scheme not in {"http", "https"}:
            raise ValueError("must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _auth_complete(self) -> Self:
        if (self.auth_header is None) != (self.auth_env is None):
            raise ValueError("auth_header and auth_env go together: set both, or neither")
        return self


class RestPoll(PollSource):
    kind = "rest_poll"
    settings_model = RestPollSettings
    settings: RestPollSettings

    def __init__(self, settings: RestPollSettings) -> None:
        super().__init__(settings)
        self._http: httpx.AsyncClient | None = None

    def describe(self) -> str:
        return f"rest_poll {_shown(self.settings.url)}"

    async def open(self) -> None:
        headers = {"Accept": "application/json"}
        if (header := self.settings.auth_header) and self.settings.auth_env:
            headers[header] = self._credential(header, self.settings.auth_env)
        # One client for the source's life: its pool keeps the connection alive between polls.
        self._http = httpx.AsyncClient(headers=headers, timeout=self.settings.timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def check(self) -> None:
        await self.fetch(None, 1)

    async def fetch(self, cursor: str | None, limit: int) -> Batch:
        if self._http is None:
            raise RuntimeError("open() the source before fetching")
        settings = self.settings
        params = {settings.limit_param: str(limit)}
        # An empty cursor is left out: APIs tend to refuse an empty date, and treat a missing
        # one as "from the beginning".
        if since := cursor or settings.initial_cursor:
            params[settings.cursor_param] = since
        # Merged, so that query parameters written in the configured URL are kept.
        url = httpx.URL(settings.url).copy_merge_params(params)
        try:
            response = await self._http.get(url)
        except httpx.TimeoutException as error:
            raise self._error(
                f"cannot connect (no answer within {settings.timeout:g} s)"
            ) from error
        except httpx.TransportError as error:
            raise self._error(f"cannot connect ({_reason(error)})") from error
        records = self._records(response)
        return Batch(
            records=records,
            cursor=self._cursor(records[-1]) if records else None,
            ref=_shown(str(url)),
            done=len(records) < limit,
        )

    def _credential(self, header: str, variable: str) -> str:
        value = os.environ.get(variable, "")
        if not value:
            raise self._error(f"environment variable {variable} (the API key) is not set")
        if not (value.isascii() and value.isprintable()):
            # httpx would fail on every fetch with an encoding error naming no variable.
            raise self._error(
                f"environment variable {variable} (the API key) holds characters an HTTP "
                "header cannot carry; check it was copied whole and alone"
            )
        scheme = self.settings.auth_scheme
        if scheme is None:
            scheme = "Bearer" if header.lower() == "authorization" else ""
        return f"{scheme} {value}" if scheme else value

    def _records(self, response: httpx.Response) -> list[Record]:
        status = response.status_code
        if status in {401, 403}:
            if self.settings.auth_env:
                raise self._error(
                    f"HTTP {status}: the key in environment variable {self.settings.auth_env} "
                    "was refused; check it is current and allowed to read"
                )
            raise self._error(f"HTTP {status}: the API wants a key; set auth_header and auth_env")
        if not response.is_success:
            hint = "; check url" if status == 404 else ""
            raise self._error(f"HTTP {status}: {_excerpt(response.text) or 'no body'}{hint}")
        try:
            answer: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            kind = response.headers.get("content-type", "no content type")
            raise self._error(
                f"the answer is not JSON ({kind}): {_excerpt(response.text)}"
            ) from None
        field = self.settings.items_field
        if field:
            if not isinstance(answer, dict):
                raise self._error(f"the answer is not a JSON object holding {field!r}")
            if field not in answer:
                raise self._error(
                    f"the answer has no {field!r} field (it has: {_names(answer)}); "
                    "check items_field"
                )
            answer = answer[field]
        where = repr(field) if field else "the answer"
        if not isinstance(answer, list):
            raise self._error(f"{where} is not a list of records")
        for position, record in enumerate(answer):
            if not isinstance(record, dict):
                raise self._error(
                    f"{where} holds a {type(record).__name__} at {position}, not a record object"
                )
        return answer

    def _cursor(self, record: Record) -> str:
        value = record.get(self.settings.cursor_field)
        if value is None or value == "":
            raise self._error(
                f"the last record has no {self.settings.cursor_field!r} value; check cursor_field"
            )
        return str(value)

    def _error(self, problem: str) -> SourceError:
        return SourceError(f"{self.describe()}: {problem}")


def _shown(url: str) -> str:
    """The URL without a user and password, should someone have written them in it."""
    return str(httpx.URL(url).copy_with(userinfo=b""))


def _reason(error: httpx.TransportError) -> str:
    """The socket's own words ("Connection refused", "Name or service not known"), found at
    the bottom of the chain httpx and httpcore wrap around them; httpx's own text is vaguer
    ("All connection attempts failed"). None of it holds a header, so none holds the key."""
    cause: BaseException = error
    while (deeper := cause.__cause__ or cause.__context__) is not None:
        cause = deeper
    if isinstance(cause, socket.gaierror) and cause.strerror:
        return cause.strerror
    if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
        return os.strerror(cause.errno)
    return str(error).strip() or type(error).__name__


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN else flat[: _SHOWN - 1] + "…"


def _names(answer: dict[str, Any]) -> str:
    return ", ".join(map(str, list(answer)[:10])) or "nothing"
