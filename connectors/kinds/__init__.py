"""The built-in connector kinds: where a connector reads its local system's dossiers.

- `rest_poll`: a paged REST API asked for what changed since a cursor, with a key or token;
- `sql_poll`: a query on the local system's database (any SQLAlchemy URL);
- `webhook`: an HTTP endpoint the local system pushes records to, signed with HMAC;
- `file_drop`: CSV, JSON and XML exports dropped in a folder, moved aside once read.

A connector's config file names its kind (`kind = "rest_poll"`) and gives the kind's settings
in its `[source]` table; `KINDS` finds the class, and its `settings_model` checks the table.
"""

from __future__ import annotations

from typing import Final

from connectors.kinds.file_drop import FileDrop, FileDropSettings
from connectors.kinds.rest_poll import RestPoll, RestPollSettings
from connectors.kinds.sql_poll import SqlPoll, SqlPollSettings
from connectors.kinds.webhook import Webhook, WebhookSettings
from connectors.source import Source

KINDS: Final[dict[str, type[Source]]] = {
    source.kind: source for source in (RestPoll, SqlPoll, Webhook, FileDrop)
}

__all__ = [
    "KINDS",
    "FileDrop",
    "FileDropSettings",
    "RestPoll",
    "RestPollSettings",
    "SqlPoll",
    "SqlPollSettings",
    "Webhook",
    "WebhookSettings",
]
