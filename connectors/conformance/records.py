"""The records a check runs on: a sample of the source's, or those of a `--records` file."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import orjson

from connectors.source import PollSource, Record

SAMPLE_SIZE: Final = 50


class RecordsFileError(Exception):
    """A `--records` file that is not a JSON array of records."""


def read_records(path: str | Path) -> list[Record]:
    """The records of a JSON file holding an array of objects, as the local system pushes
    them to a webhook."""
    try:
        records = orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise RecordsFileError(f"{path}: {error.strerror or error}") from None
    except orjson.JSONDecodeError as error:
        raise RecordsFileError(f"{path}: not JSON ({error})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise RecordsFileError(f"{path}: must hold a JSON array of records (objects)")
    return records


async def read_sample(source: PollSource, limit: int) -> list[Record]:
    """Up to `limit` records of a poll source, opened for them and closed after."""
    await source.open()
    try:
        return await source.sample(limit)
    finally:
        await source.close()
