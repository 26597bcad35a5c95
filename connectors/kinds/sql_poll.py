"""`sql_poll`: a query on the local system's database, paged by a cursor column.

    [source]
    url_env = "MOTCUA_DB_URL"    # or url = "sqlite:///motcua.db" when it holds no password
    query = '''
        SELECT * FROM ho_so WHERE cap_nhat_luc >= :cursor
        ORDER BY cap_nhat_luc LIMIT :limit'''
    cursor_column = "cap_nhat_luc"
    initial_cursor = "1970-01-01 00:00:00"

The query is the team's own SQL, so it works on whatever schema and database the local
system has; it must use `:cursor` and `:limit`, and return rows in cursor order. "At or
after" (`>=`) is the right comparison: the rows at the last cursor come again and the
connector skips them, whereas `>` would lose rows sharing that instant across two pages.
On a timestamp column, set `initial_cursor` to a date the database accepts: an empty string
is not one.

Values stay as the database driver returns them (datetimes, Decimals): the mapping turns
them into contract values. Only the cursor becomes text, a datetime as
"YYYY-MM-DD HH:MM:SS[.ffffff]", which every database reads back as the same instant.

SQLAlchemy's engines are synchronous; every call runs in a worker thread, so a slow query
never stalls the connector's event loop.
"""

from __future__ import annotations

import asyncio
import os
from datetime import date, datetime
from typing import Any, Self

from pydantic import ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from connectors.source import Batch, PollSource, Record, SourceError, SourceSettings

_CONNECT_TIMEOUT = 10  # seconds: an unreachable PostgreSQL would otherwise hang for minutes


class SqlPollSettings(SourceSettings):
    # A refused URL may hold a password: the error names the mistake, not the value.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str | None = None  # a SQLAlchemy URL, e.g. "postgresql+psycopg://user@host/db"
    url_env: str | None = None  # or the environment variable holding it, password and all
    query: str = Field(min_length=1)  # SQL using the bind parameters :cursor and :limit
    cursor_column: str = Field(min_length=1)
    initial_cursor: str = ""

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                parsed = make_url(url)
            except ArgumentError as error:  # "Could not parse SQLAlchemy URL from ..."
                raise ValueError(str(error)) from None
            if parsed.password:
                # Config files are copied, committed and mailed; a password in one leaks.
                raise ValueError(
                    "holds a password: put the URL in an environment variable, "
                    "and name it in url_env"
                )
        return url

    @field_validator("query")
    @classmethod
    def _paged(cls, query: str) -> str:
        missing = {"cursor", "limit"} - set(text(query).compile().params)
        if missing:
            names = " and ".join(f":{name}" for name in sorted(missing))
            # Without :cursor every poll reads from the start; without :limit, the whole table.
            raise ValueError(f"the query must use {names}")
        return query

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give either url or url_env (the variable holding the URL)")
        return self


class SqlPoll(PollSource):
    kind = "sql_poll"
    settings_model = SqlPollSettings
    settings: SqlPollSettings

    def __init__(self, settings: SqlPollSettings) -> None:
        super().__init__(settings)
        self._url: URL | None = make_url(settings.url) if settings.url else None
        self._engine: Engine | None = None

    def describe(self) -> str:
        if self._url is not None:
            return f"sql_poll {self._url.render_as_string(hide_password=True)}"
        return f"sql_poll (the URL in environment variable {self.settings.url_env})"

    async def open(self) -> None:
        url = self._url or self._url_from_env()
        try:
            engine = create_engine(
                url,
                pool_pre_ping=True,  # a database restarted between two polls costs no poll
                connect_args=_connect_args(url),
            )
        except (ArgumentError, ImportError) as error:  # an unknown dialect or driver
            raise self._error(f"cannot use this URL ({error})") from None
        self._url, self._engine = url, engine
        await asyncio.to_thread(self._connect().close)

    async def close(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._engine.dispose)
            self._engine = None

    async def check(self) -> None:
        await self.fetch(None, 1)

    async def fetch(self, cursor: str | None, limit: int) -> Batch:
        rows = await asyncio.to_thread(self._query, cursor or self.settings.initial_cursor, limit)
        return Batch(
            records=rows,
            cursor=self._cursor(rows[-1]) if rows else None,
            ref=f"{self.describe()} from {cursor or self.settings.initial_cursor!r}",
            done=len(rows) < limit,
        )

    def _query(self, cursor: str, limit: int) -> list[Record]:
        with self._connect() as connection:
            try:
                result = connection.execute(
                    text(self.settings.query), {"cursor": cursor, "limit": limit}
                )
                columns = list(result.keys())
                if self.settings.cursor_column not in columns:
                    raise self._error(
                        f"the query returns no {self.settings.cursor_column!r} column "
                        f"(it returns: {', '.join(columns) or 'nothing'}); check cursor_column"
                    )
                return [dict(row._mapping) for row in result]
            except SQLAlchemyError as error:
                raise self._error(f"the query failed ({_reason(error)}); check query") from None

    def _connect(self) -> Connection:
        if self._engine is None:
            raise RuntimeError("open() the source before fetching")
        try:
            return self._engine.connect()
        except SQLAlchemyError as error:
            raise self._error(
                f"cannot connect ({_reason(error)}); check the URL and that the database is up"
            ) from None

    def _url_from_env(self) -> URL:
        variable = self.settings.url_env
        value = os.environ.get(variable or "", "")
        if not value:
            raise self._error(f"environment variable {variable} (the database URL) is not set")
        try:
            return make_url(value)
        except ArgumentError:
            # The value is not shown: it holds a password.
            raise self._error(
                f"environment variable {variable} does not hold a SQLAlchemy URL"
            ) from None

    def _cursor(self, row: Record) -> str:
        value = row[self.settings.cursor_column]
        if value is None:
            raise self._error(f"the last row's {self.settings.cursor_column!r} is NULL")
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)

    def _error(self, problem: str) -> SourceError:
        return SourceError(f"{self.describe()}: {problem}")


def _connect_args(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "postgresql":
        return {"connect_timeout": _CONNECT_TIMEOUT}
    return {}


def _reason(error: SQLAlchemyError) -> str:
    """The driver's own first line ("relation "ho_so" does not exist"), without SQLAlchemy's
    statement dump and link, which make a log line unreadable."""
    cause: object = error.orig if isinstance(error, DBAPIError) else error
    lines = str(cause).strip().splitlines()
    return lines[0].strip() if lines else type(cause).__name__
