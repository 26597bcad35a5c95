"""A running connector: its source, mapping, outbox, relay and heartbeats, on one event loop.

    source ──records──▶ mapping ──events──▶ outbox (+ cursor, one commit) ──relay──▶ broker
                            └──refused──▶ rejects

Reading never waits for the broker: while it is away the outbox grows, and the relay drains
it when the connection is back. A record whose version (seq) is not newer than the last one
put in the outbox for its dossier is skipped, which makes re-reading a page, a file or a
pushed batch harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from bus import runtime
from bus.broker import Connection
from bus.metrics import CONNECTOR_LAST_POLL, CONNECTOR_OUTBOX, CONNECTOR_RECORDS, labelled
from bus.probes import NotReady, ProbeServer
from bus.publisher import Publisher
from bus.settings import Settings
from bus.signing import Signer
from connectors.config import ConnectorConfig, make_source
from connectors.failpoints import failpoint
from connectors.heartbeat import Health, heartbeat
from connectors.mapping import MappingError, RecordMapping
from connectors.outbox import Outbox, Pending, Reject, Sent
from connectors.relay import Relay
from connectors.source import Accepted, Batch, PollSource, PushSource, Record, Source
from schemas import Event, encode_event
from schemas.personal import mask_text

log = structlog.get_logger(__name__)


class SigningKeyMissing(Exception):
    """A connector signs every event: running without a key must be said out loud."""


def signer_for(config: ConnectorConfig, settings: Settings) -> Signer | None:
    """The connector's signing key: BUS_SIGNING_KEY or BUS_SIGNING_KEY_FILE, with the key id
    of the config (or BUS_SIGNING_KEY_ID). None only when unsigned runs are allowed."""
    key_id = config.connector.signing_key_id or settings.signing_key_id
    text = None
    if settings.signing_key is not None:
        text = settings.signing_key.get_secret_value()
    elif settings.signing_key_file is not None:
        text = Path(settings.signing_key_file).read_text().strip()
    if text is None or key_id is None:
        if settings.allow_unsigned:
            return None
        raise SigningKeyMissing(
            f"{config.connector.name}: set BUS_SIGNING_KEY (or BUS_SIGNING_KEY_FILE) and the key"
            " id (signing_key_id in [connector], or BUS_SIGNING_KEY_ID); BUS_ALLOW_UNSIGNED=true"
            " runs unsigned, for development only"
        )
    return Signer.from_text(key_id, text)


class Connector:
    def __init__(
        self, config: ConnectorConfig, settings: Settings, source: Source | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.name = config.connector.name
        self.mapping = RecordMapping(config)
        self.source = source if source is not None else make_source(config)
        self.outbox = Outbox(config.connector.state_dir)
        self.signer = signer_for(config, settings)
        self.read = 0  # records read from the source
        self.committed = 0  # events put in the outbox
        self.skipped = 0  # versions already sent
        self.rejected = 0  # records refused by the mapping
        self._relay: Relay | None = None
        self._started_at = datetime.now(UTC)
        self._last_activity = time.monotonic()
        self._source_done = False
        self._source_error: str | None = None  # why the last read failed, for /readyz
        unit = config.unit
        self._stored, self._skipped, self._rejected = (
            labelled(CONNECTOR_RECORDS, unit, self.name, outcome)
            for outcome in ("stored", "skipped", "rejected")
        )
        self._outbox_size = labelled(CONNECTOR_OUTBOX, unit, self.name)
        self._outbox_size.set(self.outbox.size())
        self._last_poll = labelled(CONNECTOR_LAST_POLL, unit, self.name)

    # ---- records to the outbox

    def ingest(
        self,
        records: Sequence[Record],
        ref: str,
        refs: Sequence[str] = (),
        cursor: str | None = None,
    ) -> Accepted:
        """Map the records and commit their events, rejects and the cursor together."""
        sent = self.outbox.sent(self.mapping.dossier_code(r) for r in records)
        events: list[tuple[Pending, int | None]] = []
        rejects: list[Reject] = []
        refused: dict[int, str] = {}
        for index, record in enumerate(records):
            code = self.mapping.dossier_code(record)
            where = refs[index] if index < len(refs) else f"{ref}#{index + 1}"
            try:
                seq = self.mapping.seq(record)
                last = sent.get(code)
                if last is not None and seq <= last.seq:
                    self.skipped += 1
                    continue
                event = self.mapping.event(record, last.status if last else None)
            except MappingError as error:
                refused[index] = str(error)
                shown = self.mapping.masked(record)  # the reason comes masked
                rejects.append(Reject(where, mask_text(code), str(error), shown))
                continue
            status = int(event.payload.dossier.status)
            events.append((_pending(event), status))
            sent[code] = Sent(seq, status)
        rejects = self.outbox.commit(events, rejects, cursor)  # the ones it had not refused
        self.read += len(records)
        self.committed += len(events)
        self.rejected += len(rejects)
        self._stored.inc(len(events))
        self._skipped.inc(len(records) - len(events) - len(rejects))
        self._rejected.inc(len(rejects))
        self._outbox_size.inc(len(events))
        if events:
            self._last_activity = time.monotonic()
            failpoint("after-outbox-commit")
            if self._relay is not None:
                self._relay.wake()
        for reject in rejects:
            log.warning("record rejected", ref=reject.ref, reason=reject.reason)
        return Accepted(len(events), refused)

    async def accept(self, records: Sequence[Record], ref: str) -> Accepted:
        """For push sources: returns once the records are durable."""
        accepted = self.ingest(records, ref)
        self._last_poll.set_to_current_time()
        return accepted

    async def poll_once(self) -> Batch:
        """Read one batch from a poll source into the outbox."""
        assert isinstance(self.source, PollSource)
        batch = await self.source.fetch(self.outbox.cursor(), self.config.connector.batch_size)
        if batch.problem is not None:
            problem = mask_text(batch.problem)
            self.outbox.commit([], [Reject(batch.ref, "", problem, {})], None)
            self._rejected.inc()
            log.warning("input rejected", ref=batch.ref, reason=problem)
        elif batch.records or batch.cursor is not None:
            self.ingest(batch.records, batch.ref, batch.refs, batch.cursor)
        await self.source.committed(batch)
        self._last_poll.set_to_current_time()
        return batch

    # ---- running

    async def run(self, *, until_idle: float | None = None) -> None:
        """Run until cancelled or SIGTERM; with `until_idle`, stop once the source has had
        nothing new and the outbox has been empty for that many seconds."""
        connection = Connection.from_settings(self.settings, name=f"connector-{self.name}")
        publisher = Publisher(connection, window=self.settings.publish_window)
        self._relay = Relay(self.outbox, publisher, self.signer, self.name, self.config.unit)
        await self.source.open()
        probes = self._probes(connection)
        if probes is not None:
            try:
                await probes.start()
            except OSError:  # the port is taken: say so, having let go of the source
                await self.source.close()
                raise
        log.info("connector started", connector=self.name, source=self.source.describe())
        runtime.settle()
        tasks = [
            asyncio.create_task(connection.start(), name="amqp"),
            asyncio.create_task(self._relay.run(), name="relay"),
            asyncio.create_task(self._heartbeats(publisher, connection), name="heartbeats"),
            asyncio.create_task(self._read(), name="source"),
        ]
        try:
            if until_idle is None:
                await asyncio.gather(*tasks)
            else:
                await self._until_idle(until_idle, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if probes is not None:
                await probes.stop()
            await self.source.close()
            await connection.close()
            self.outbox.close()

    def _probes(self, connection: Connection) -> ProbeServer | None:
        """/metrics, /healthz and /readyz on BUS_METRICS_PORT, if set: ready while the broker
        connection is open, the outbox answers and the last read of the source succeeded."""
        if self.settings.metrics_port is None:
            return None

        async def broker() -> None:
            if not connection.is_open:
                raise NotReady("the connection to the broker is not open")

        async def outbox() -> None:
            self.outbox.cursor()  # one indexed read of the outbox's database

        async def source() -> None:
            if self._source_error is not None:
                raise NotReady(self._source_error)

        checks = {"broker": broker, "outbox": outbox, "source": source}
        return ProbeServer(checks, self.settings.metrics_host, self.settings.metrics_port)

    async def _read(self) -> None:
        if isinstance(self.source, PushSource):
            self._source_done = True  # pushes come when they come
            await self.source.serve(self.accept)
            return
        interval = self.config.connector.poll_interval
        while True:
            try:
                batch = await self.poll_once()
            except Exception as error:  # SourceError, or a database hiccup: try again later
                log.warning("source not readable", source=self.source.describe(), error=str(error))
                self._source_done = False
                # Shown by /readyz: the source's answer it quotes may name a person.
                self._source_error = mask_text(f"{self.source.describe()}: {error}")
                await asyncio.sleep(interval)
                continue
            self._source_error = None
            self._source_done = batch.done or not (batch.records or batch.problem)
            if self._source_done:
                await asyncio.sleep(interval)

    async def _until_idle(self, idle: float, tasks: list[asyncio.Task[None]]) -> None:
        while True:
            await asyncio.sleep(min(idle, 0.2))
            for task in tasks[1:]:
                if task.done() and not task.cancelled():
                    task.result()  # a relay, heartbeat or source that died: say why
            if self._source_done and self.outbox.size() == 0:
                if time.monotonic() - self._last_activity >= idle:
                    return
            else:
                self._last_activity = time.monotonic()

    async def _heartbeats(self, publisher: Publisher, connection: Connection) -> None:
        while True:
            # The first beat as soon as the broker can take it, and the first after an outage
            # too: operators see a connector that came (back) up without waiting an interval.
            await connection.wait_open()
            # A lost heartbeat is only a missed beat; the next one says the same.
            with contextlib.suppress(Exception):
                await (await publisher.send(heartbeat(self.health())))
            await asyncio.sleep(self.config.connector.heartbeat_interval)

    def health(self) -> Health:
        return Health(
            connector=self.name,
            agency=str(self.config.connector.agency),
            unit=self.config.unit,
            kind=self.config.connector.kind,
            outbox=self.outbox.size(),
            rejects=self.outbox.reject_count(),
            published=self._relay.published if self._relay else 0,
            cursor=self.outbox.cursor(),
            started_at=self._started_at,
        )


def _pending(event: Event) -> Pending:
    return Pending(
        id=0,
        event_id=str(event.event_id),
        event_type=event.event_type,
        dossier_code=str(event.dossier_code),
        seq=event.seq,
        occurred_at=int(event.occurred_at.timestamp()),
        body=encode_event(event),
    )
