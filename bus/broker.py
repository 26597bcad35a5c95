"""The one module that speaks AMQP.

pika's asyncio adapter, wrapped so that the publisher and the consumer see coroutines and the
bus's own types (`Outgoing`, `Message`). A `Connection` keeps one AMQP connection alive: when
it drops it reconnects with capped exponential backoff and calls its listeners, which reopen
their channels. Given the nodes of a cluster, it reconnects to the next one that answers.
Channels are cheap and die with errors, so nothing here tries to save one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
import structlog
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from bus.errors import BusError, TopologyMismatch
from bus.message import Message, Outgoing
from bus.settings import Settings, broker_urls
from bus.tls import BrokerTlsError, TlsFiles

log = structlog.get_logger(__name__)

# pika logs each failure it hands us too, as bare tracebacks on stderr (the bus does not
# route stdlib logging): a Connection says what failed itself, once, in structured lines.
logging.getLogger("pika").setLevel(logging.CRITICAL)

Listener = Callable[["Channel"], Awaitable[None]]
Deliver = Callable[[Message], None]
AckCallback = Callable[[int, bool, bool], None]  # delivery tag, multiple, acked (else nacked)
ReturnCallback = Callable[[Outgoing], None]


class BrokerUnavailable(BusError):
    """The broker could not be reached (yet)."""


class ChannelClosed(BusError):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>queue|exchange) '(?P<name>[^']+)'.*?"
    r"received (?:the value )?'?(?P<wanted>[^' ]*)'? .*?"
    r"current is (?:the value )?'?(?P<current>[^' ]*)'?",
)


def _mismatch(error: ChannelClosed) -> TopologyMismatch | None:
    """Turn RabbitMQ's PRECONDITION_FAILED text into a mismatch that names queue and argument."""
    found = _INEQUIVALENT.search(error.text) if error.code == 406 else None
    if found is None:
        return None
    return TopologyMismatch(
        found["kind"], found["name"], found["arg"], found["wanted"], found["current"]
    )


def properties(message: Outgoing) -> pika.BasicProperties:
    """The AMQP properties of a message: persistent, its identity, its headers."""
    return pika.BasicProperties(
        delivery_mode=2,
        content_type=message.content_type,
        headers=message.headers,
        message_id=message.message_id,
        type=message.type,
        app_id=message.app_id,
        user_id=message.user_id,
        timestamp=message.timestamp,
    )


class _AsyncioConnection(AsyncioConnection):  # type: ignore[misc]
    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        # pika hands each frame of a message (method, header, body) to the socket with a
        # send() of its own: three system calls per publish, the largest single cost of
        # publishing. One buffer per message makes it one.
        if len(marshaled_frames) > 1:
            marshaled_frames = [b"".join(marshaled_frames)]
        super()._output_marshaled_frames(marshaled_frames)


class Channel:
    """One AMQP channel; every method is a coroutine or a non-blocking call."""

    def __init__(self, raw: pika.channel.Channel, generation: int) -> None:
        self._raw = raw
        self.generation = generation
        self._waiters: set[asyncio.Future[Any]] = set()
        self.closed: asyncio.Future[ChannelClosed] = asyncio.get_running_loop().create_future()
        raw.add_on_close_callback(self._on_close)

    @property
    def is_open(self) -> bool:
        return bool(self._raw.is_open)

    def _on_close(self, _channel: pika.channel.Channel, reason: Exception) -> None:
        code, text = getattr(reason, "reply_code", 0), getattr(reason, "reply_text", str(reason))
        error = ChannelClosed(code, text)
        if not self.closed.done():
            self.closed.set_result(error)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()

    async def _rpc(self, start: Callable[[Callable[[Any], None]], object]) -> Any:
        if self.closed.done():
            raise self.closed.result()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)

        def done(frame: Any) -> None:
            self._waiters.discard(waiter)
            if not waiter.done():
                waiter.set_result(frame)

        start(done)
        return await waiter

    async def declare_exchange(
        self, name: str, kind: str, arguments: dict[str, Any] | None = None
    ) -> None:
        await self._declare(
            lambda cb: self._raw.exchange_declare(
                name, kind, durable=True, arguments=arguments, callback=cb
            )
        )

    async def declare_queue(
        self, name: str, arguments: dict[str, Any] | None = None, *, passive: bool = False
    ) -> tuple[int, int]:
        """Declare (or, passively, look up) a durable queue: (messages ready, consumers)."""
        frame = await self._declare(
            lambda cb: self._raw.queue_declare(
                name, passive=passive, durable=True, arguments=arguments, callback=cb
            )
        )
        return frame.method.message_count, frame.method.consumer_count

    async def _declare(self, start: Callable[[Callable[[Any], None]], object]) -> Any:
        try:
            return await self._rpc(start)
        except ChannelClosed as error:
            raise _mismatch(error) or error from None

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._rpc(lambda cb: self._raw.queue_bind(queue, exchange, routing_key, callback=cb))

    async def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._rpc(
            lambda cb: self._raw.queue_unbind(queue, exchange, routing_key, callback=cb)
        )

    async def bind_exchange(self, destination: str, source: str, routing_key: str) -> None:
        """What `source` routes with `routing_key` goes on through `destination` too."""
        await self._rpc(
            lambda cb: self._raw.exchange_bind(destination, source, routing_key, callback=cb)
        )

    async def unbind_exchange(self, destination: str, source: str, routing_key: str) -> None:
        await self._rpc(
            lambda cb: self._raw.exchange_unbind(destination, source, routing_key, callback=cb)
        )

    async def delete_queue(self, name: str) -> None:
        await self._rpc(lambda cb: self._raw.queue_delete(name, callback=cb))

    async def delete_exchange(self, name: str) -> None:
        await self._rpc(lambda cb: self._raw.exchange_delete(name, callback=cb))

    async def purge(self, name: str) -> None:
        await self._rpc(lambda cb: self._raw.queue_purge(name, callback=cb))

    async def enable_confirms(self, on_ack: AckCallback, on_return: ReturnCallback) -> None:
        def ack_or_nack(frame: pika.frame.Method) -> None:
            method = frame.method
            on_ack(method.delivery_tag, method.multiple, isinstance(method, pika.spec.Basic.Ack))

        def returned(
            _ch: object, method: Any, properties: pika.BasicProperties, body: bytes
        ) -> None:
            on_return(
                Outgoing(
                    exchange=method.exchange,
                    routing_key=method.routing_key,
                    body=body,
                    headers=properties.headers or {},
                    message_id=properties.message_id,
                )
            )

        self._raw.add_on_return_callback(returned)
        await self._rpc(lambda cb: self._raw.confirm_delivery(ack_or_nack, callback=cb))

    def publish(self, message: Outgoing) -> None:
        """Hand a message to the connection's buffer; confirms arrive through `on_ack`.

        Raises ChannelClosed when the channel (or its connection) is already closed."""
        if not self._raw.is_open or self.closed.done():
            raise ChannelClosed(0, "the channel is closed")
        self._raw.basic_publish(
            message.exchange, message.routing_key, message.body, properties(message), mandatory=True
        )

    async def consume(
        self,
        queue: str,
        deliver: Deliver,
        *,
        prefetch: int,
        arguments: dict[str, Any] | None,
        internal: Collection[str] = (),
    ) -> str:
        """Deliver the queue's messages. `internal`: exchanges only the bus publishes to (no
        connector may write them), whose deliveries are the bus's own copies: they are handed
        on as if through the default exchange, which `Message` trusts with the bus's headers."""
        await self._rpc(lambda cb: self._raw.basic_qos(prefetch_count=prefetch, callback=cb))
        generation = self.generation

        def on_message(
            _ch: object, method: Any, properties: pika.BasicProperties, body: bytes
        ) -> None:
            deliver(
                Message(
                    body=body,
                    exchange="" if method.exchange in internal else method.exchange,
                    routing_key=method.routing_key,
                    headers=properties.headers or {},
                    redelivered=method.redelivered,
                    delivery_tag=method.delivery_tag,
                    message_id=properties.message_id,
                    content_type=properties.content_type,
                    type=properties.type,
                    app_id=properties.app_id,
                    user_id=properties.user_id,
                    timestamp=properties.timestamp,
                    generation=generation,
                )
            )

        frame = await self._rpc(
            lambda cb: self._raw.basic_consume(queue, on_message, arguments=arguments, callback=cb)
        )
        return str(frame.method.consumer_tag)

    async def cancel(self, consumer_tag: str) -> None:
        if self.is_open:
            await self._rpc(lambda cb: self._raw.basic_cancel(consumer_tag, callback=cb))

    def ack(self, delivery_tag: int, *, multiple: bool = False) -> None:
        self._raw.basic_ack(delivery_tag, multiple=multiple)

    def nack(self, delivery_tag: int, *, requeue: bool = True) -> None:
        self._raw.basic_nack(delivery_tag, requeue=requeue)

    async def close(self) -> None:
        if self.is_open:
            self._raw.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.closed), 5)


class Connection:
    """An AMQP connection that comes back by itself.

    Listeners run after every (re)connect with a fresh channel opener; a dropped connection
    is retried with exponential backoff up to `max_delay` seconds, forever, until `close()`.

    `url` may name several nodes of a cluster (a list, or a `BUS_AMQP_URL` with commas): a
    connection is made to the first that answers, and when it drops, to the next one in
    turn, the lost node last; the backoff sleeps only once all of them have failed. They
    must all log in as the same user: the broker checks `user_id` against it.

    An `amqps://` URL speaks TLS, with `tls`'s files (by default: the system's CAs, no
    client certificate). A TLS failure before the first open ends `start()` with a
    BrokerTlsError that says what failed; after it, it is logged and retried like any other.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        name: str,
        max_delay: float = 5.0,
        tls: TlsFiles | None = None,
    ) -> None:
        self._tls = tls or TlsFiles()
        urls = broker_urls(url) if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("no broker URL given")
        self._nodes = [self._node(one, name) for one in urls]
        self._current = 0  # the node connected to, or being tried
        users = {str(node.credentials.username) for node in self._nodes}
        if len(users) > 1:
            raise ValueError(
                f"the broker URLs log in as different users: {', '.join(sorted(users))}"
            )
        self._name = name
        self._max_delay = max_delay
        self._raw: AsyncioConnection | None = None
        self._listeners: list[Listener] = []
        self._opened = asyncio.Event()
        self._closing = False
        self._generation = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._lost: asyncio.Future[Exception] | None = None
        self._late: set[asyncio.Task[None]] = set()
        self._doubt: str | None = None  # the last failure that may be about TLS, or not

    def _node(self, url: str, name: str) -> pika.URLParameters:
        parameters = pika.URLParameters(url)
        parameters.client_properties = {"connection_name": name}
        # Our own context: not pika's default for amqps://, nor one from the URL's query.
        tls = parameters.ssl_options is not None
        context = self._tls.context_for(tls, _address(parameters))
        parameters.ssl_options = context and pika.SSLOptions(context, str(parameters.host))
        return parameters

    @classmethod
    def from_settings(
        cls, settings: Settings, *, name: str, max_delay: float | None = None
    ) -> Connection:
        """The connection to the broker (or the cluster's nodes) of `BUS_AMQP_URL`, with its
        TLS files and `BUS_AMQP_PASSWORD_FILE`'s password in each URL; backoff up to
        `BUS_RECONNECT_MAX_DELAY` unless `max_delay` says otherwise."""
        return cls(
            settings.broker_url(),
            name=name,
            max_delay=settings.reconnect_max_delay if max_delay is None else max_delay,
            tls=TlsFiles.from_settings(settings),
        )

    @property
    def _parameters(self) -> pika.URLParameters:
        return self._nodes[self._current]

    @property
    def _hostname(self) -> str:
        """The name the broker's certificate must hold: the host of the URL."""
        return str(self._parameters.host)

    @property
    def address(self) -> str:
        """host:port of the broker (the node connected to, or being tried), for messages
        (the URL would show the password)."""
        return _address(self._parameters)

    @property
    def addresses(self) -> list[str]:
        """host:port of every node, in the order they are tried."""
        return [_address(node) for node in self._nodes]

    @property
    def username(self) -> str:
        """The broker user this connection logs in as: what the broker accepts as `user_id`."""
        return str(self._parameters.credentials.username)

    @property
    def is_open(self) -> bool:
        # The event lags behind pika: a lost connection is only noticed by the supervisor
        # later, while channel-close callbacks already run.
        return self._opened.is_set() and self._raw is not None and self._raw.is_open

    def on_open(self, listener: Listener) -> None:
        """Call `listener` with a new channel now (if open) and after every reconnect."""
        self._listeners.append(listener)
        if self.is_open:
            task = asyncio.get_running_loop().create_task(self._open_one(listener))
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def _open_one(self, listener: Listener) -> None:
        try:
            await listener(await self.channel())
        except (BusError, pika.exceptions.AMQPError, OSError, TimeoutError) as error:
            # The connection dropped meanwhile: the reconnect calls the listener again.
            log.warning("could not set up a channel", connection=self._name, error=str(error))

    async def start(self, *, timeout: float | None = None) -> None:
        """Connect, retrying until `timeout` (None: forever), then keep the connection up."""
        self._supervisor = asyncio.create_task(self._supervise(), name=f"amqp:{self._name}")
        opened = asyncio.create_task(self._opened.wait())
        done, _ = await asyncio.wait(
            {opened, self._supervisor}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if opened not in done:
            opened.cancel()
            failed = self._supervisor in done and self._supervisor.exception()
            await self.close()
            if isinstance(failed, BrokerTlsError):
                raise failed
            if self._doubt is not None:
                raise BrokerUnavailable(f"{self._doubt} (still so after {timeout} s)")
            where = " or ".join(self.addresses)
            raise BrokerUnavailable(
                f"could not connect to the broker at {where} within {timeout} s (is"
                " RabbitMQ running? set BUS_AMQP_URL, or run `make services`)"
            )

    async def wait_open(self) -> None:
        await self._opened.wait()

    async def channel(self) -> Channel:
        if self._raw is None or not self._raw.is_open:
            raise BrokerUnavailable("the connection is not open")
        waiter: asyncio.Future[pika.channel.Channel] = asyncio.get_running_loop().create_future()
        self._raw.channel(on_open_callback=waiter.set_result)
        raw = await asyncio.wait_for(waiter, 10)
        return Channel(raw, self._generation)

    async def close(self) -> None:
        self._closing = True
        self._opened.clear()
        if self._raw is not None and not (self._raw.is_closed or self._raw.is_closing):
            self._raw.close()
        if self._lost is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._lost), 5)
        if self._supervisor is not None:
            self._supervisor.cancel()
            # Its TLS failure, if it ended with one, was start()'s to raise.
            with contextlib.suppress(asyncio.CancelledError, BrokerTlsError):
                await self._supervisor

    async def _supervise(self) -> None:
        delay = 0.1
        failed = 0  # attempts in a row that found no node
        while not self._closing:
            try:
                await self._connect()
            # pika raises a failed TLS set-up as its own AMQPConnectorException.
            except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as error:
                refused = self._tls_failure(error)
                if refused is not None and refused.certain and self._generation == 0:
                    # Never connected: a setting or a certificate is wrong, and waiting will
                    # not fix it; start() raises it. Once connected, a certificate may be
                    # being rotated on the broker: retry.
                    raise refused from None
                self._doubt = None if refused is None else str(refused)
                failed += 1
                broker = self.address
                self._next_node()
                if failed % len(self._nodes):  # a node not tried yet this round: at once
                    log.warning(
                        "broker unreachable",
                        connection=self._name,
                        broker=broker,
                        error=self._doubt or repr(error),
                        trying=self.address,
                    )
                    continue
                log.warning(
                    "broker unreachable",
                    connection=self._name,
                    broker=broker,
                    error=self._doubt or repr(error),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            failed = 0
            if self._generation > 1:
                log.info("broker connected again", connection=self._name, broker=self.address)
            assert self._lost is not None
            try:
                for listener in self._listeners:
                    await listener(await self.channel())
            except (BusError, pika.exceptions.AMQPError, OSError, TimeoutError) as error:
                # e.g. a queue that does not exist yet: say so, and try again later.
                log.error(
                    "could not set up channels",
                    connection=self._name,
                    broker=self.address,
                    error=str(error),
                    retry_in=delay,
                )
                if self._raw is not None and self._raw.is_open:
                    self._raw.close()
                await self._lost
                self._next_node()  # another node may be in a better state (one booting)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            delay = 0.1
            self._opened.set()
            reason = await self._lost
            self._opened.clear()
            if not self._closing:
                log.warning(
                    "broker connection lost",
                    connection=self._name,
                    broker=self.address,
                    error=str(reason),
                )
                # The node may be going down: the others first, it last.
                self._next_node()

    def _next_node(self) -> None:
        self._current = (self._current + 1) % len(self._nodes)

    def _tls_failure(self, error: Exception) -> BrokerTlsError | None:
        if self._parameters.ssl_options is None:
            return None
        return self._tls.failure(error, self.address, self._hostname)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._lost = loop.create_future()
        lost = self._lost

        def on_open(_connection: object) -> None:
            opened.set_result(None)

        def on_open_error(_connection: object, error: BaseException | str) -> None:
            failed = error if isinstance(error, Exception) else pika.exceptions.AMQPError(error)
            if not opened.done():
                opened.set_exception(failed)
            if not lost.done():  # never open, so no close to wait for
                lost.set_result(failed)

        def on_close(_connection: object, reason: Exception) -> None:
            if not lost.done():
                lost.set_result(reason)

        self._raw = _AsyncioConnection(
            self._parameters,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        await opened
        self._generation += 1


def _address(parameters: pika.ConnectionParameters) -> str:
    host = str(parameters.host)
    return f"{f'[{host}]' if ':' in host else host}:{parameters.port}"
