"""`webhook`: an HTTP endpoint the local system pushes its records to.

    [source]
    port = 8640
    secret_env = "MOTCUA_WEBHOOK_SECRET"

The local system POSTs to `path` a JSON object (one record), a JSON array of records, or
`{"items": [...]}`, with the hex HMAC-SHA256 of the raw body under the shared secret in
`signature_header` ("sha256=" in front is allowed, as GitHub and others send it).

The answer waits until the records are committed to the outbox: 202 means they are safe,
and says which were refused and why (`{"accepted": 2, "refused": {"2": "..."}}`, by
position). Anything else means nothing was taken: 401 a bad signature, 413 too large a
body, 400 a body that is not records (the reason is in the answer), 503 the outbox could not
take them now, so the local system should push them again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import structlog
import uvicorn
from pydantic import Field, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.source import Accept, PushSource, Record, SourceError, SourceSettings

log = structlog.get_logger(__name__)

_SHUTDOWN_GRACE: Final = 10  # seconds for pushes in flight to be answered when stopping
_PREFIX: Final = "sha256="


class WebhookSettings(SourceSettings):
    port: int = Field(ge=0, le=65535)  # 0: any free port (tests)
    host: str = "127.0.0.1"  # where the local system reaches us; "0.0.0.0" for any address
    path: str = "/hooks/dossiers"
    secret_env: str = Field(min_length=1)  # the environment variable holding the HMAC secret
    signature_header: str = Field("X-Signature", min_length=1)
    max_body_bytes: int = Field(5 * 1024 * 1024, gt=0)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with /")
        return path


class _Refused(Exception):
    """A push answered without calling `accept`: its status and the reason shown."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The connector's runtime owns SIGINT and SIGTERM, and stops the webhook by
        # cancelling `serve`; uvicorn's own handlers would take the signals from it.
        yield


class Webhook(PushSource):
    kind = "webhook"
    settings_model = WebhookSettings
    settings: WebhookSettings

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__(settings)
        self._secret = b""
        self._socket: socket.socket | None = None

    def describe(self) -> str:
        return f"webhook http://{self.settings.host}:{self.settings.port}{self.settings.path}"

    @property
    def port(self) -> int:
        """The port listened on, once open: the one chosen for `port = 0`."""
        if self._socket is None:
            raise RuntimeError("open() the source first")
        return int(self._socket.getsockname()[1])

    async def open(self) -> None:
        """Read the secret and bind the port, so that both mistakes show before serving.

        Binding here rather than letting uvicorn do it: uvicorn ends the whole process when
        it cannot bind, where a SourceError lets the connector say why. Pushes arriving
        before `serve` wait in the socket's backlog."""
        variable = self.settings.secret_env
        if not (secret := os.environ.get(variable, "")):
            raise self._error(f"environment variable {variable} (the shared secret) is not set")
        self._secret = secret.encode()
        if self._socket is None:
            self._socket = self._bind()

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def serve(self, accept: Accept) -> None:
        if self._socket is None:
            await self.open()
        assert self._socket is not None
        config = uvicorn.Config(
            self._app(accept),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_SHUTDOWN_GRACE,
        )
        server = _Server(config)
        # uvicorn stops cleanly only when asked to; a cancellation landing inside it would
        # leave connections open. So it runs apart, and a cancellation becomes a request.
        running = asyncio.ensure_future(server.serve(sockets=[self._socket]))
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            server.should_exit = True
            await running
            raise
        finally:
            self._socket = None  # closed by uvicorn's shutdown
        raise self._error("the HTTP server stopped by itself")

    def _app(self, accept: Accept) -> Starlette:
        async def push(request: Request) -> Response:
            client = request.client.host if request.client else "unknown"
            try:
                body = await self._body(request)
                self._verify(request, body)
                records = _records(body)
            except _Refused as refused:
                log.warning(
                    "push refused", client=client, status=refused.status, reason=refused.reason
                )
                return _json(refused.status, {"error": refused.reason})
            if not records:
                return _json(202, {"accepted": 0, "refused": {}})
            ref = f"webhook {client} {datetime.now(UTC).isoformat(timespec='milliseconds')}"
            try:
                accepted = await accept(records, ref)
            except Exception:
                log.exception("push not stored: answered 503", ref=ref, records=len(records))
                return _json(503, {"error": "the records could not be stored now; push again"})
            reasons = {str(position): reason for position, reason in accepted.refused.items()}
            return _json(202, {"accepted": accepted.committed, "refused": reasons})

        return Starlette(routes=[Route(self.settings.path, push, methods=["POST"])])

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = _Refused(413, f"the body is larger than {limit} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        # Counted as it arrives: a sender without Content-Length cannot fill our memory.
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    def _verify(self, request: Request, body: bytes) -> None:
        header = self.settings.signature_header
        given = request.headers.get(header, "").strip()
        if not given:
            raise _Refused(401, f"no {header} header: sign the body with the shared secret")
        if given[: len(_PREFIX)].lower() == _PREFIX:
            given = given[len(_PREFIX) :]
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.lower().encode(), expected.encode()):
            raise _Refused(
                401, f"the {header} header is not the HMAC-SHA256 of the body with the secret"
            )

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError as error:
            sock.close()
            raise self._error(
                f"cannot listen on {host}:{port} ({error.strerror or error}); "
                "check host and port, and that nothing else uses the port"
            ) from None
        return sock

    def _error(self, problem: str) -> SourceError:
        return SourceError(f"{self.describe()}: {problem}")


def _records(body: bytes) -> Sequence[Record]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Refused(400, f"the body is not UTF-8 (byte {error.start})") from None
    try:
        pushed: Any = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise _Refused(400, f"the body is not JSON ({error})") from None
    # {"items": [...]} is the envelope only when "items" is its one key: a record may have
    # an "items" field of its own (its documents, say).
    if isinstance(pushed, dict) and list(pushed) == ["items"] and isinstance(pushed["items"], list):
        pushed = pushed["items"]
    if isinstance(pushed, dict):
        return [pushed]
    if not isinstance(pushed, list):
        raise _Refused(400, 'the body must be a record object, a list of them, or {"items": [...]}')
    for position, record in enumerate(pushed):
        if not isinstance(record, dict):
            raise _Refused(
                400, f"item {position} is a {type(record).__name__}, not a record object"
            )
    return pushed


def _json(status: int, content: dict[str, Any]) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")
