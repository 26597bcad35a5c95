"""The broker's management HTTP API: where scratch virtual hosts are made, connections cut,
and connectors' broker users made with their permissions.

`bus demo`, `bus connector check` and the benchmarks each run in a virtual host of their
own, deleted after, so that their queues never meet anyone else's; the check also cuts
connections on purpose. `bus provision` gives each connector a user of its own. The API is
found beside the broker: same host and credentials, port 15672, unless a URL says otherwise.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import httpx

from bus.settings import broker_urls, first_broker_url

MANAGEMENT_PORT: Final = 15672
EVERYTHING: Final = {"configure": ".*", "write": ".*", "read": ".*"}


class ManagementError(Exception):
    """The API did not answer, or refused; the message is for a person. `status` is the
    HTTP status of a refusal (None when the API did not answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def management_url_for(amqp_url: str) -> str:
    """The management API of the broker at `amqp_url`: its host and credentials, port 15672.
    Of a cluster's nodes (URLs separated by commas), the first one's: any node's API shows
    the whole cluster."""
    parts = urlsplit(first_broker_url(amqp_url))
    userinfo = parts.netloc.rpartition("@")[0] or "guest:guest"
    return f"http://{userinfo}@{_host(parts.hostname)}:{MANAGEMENT_PORT}"


def public_url(management_url: str) -> str:
    """The API's base URL without credentials, for people and logs."""
    parts = urlsplit(management_url)
    return f"{parts.scheme}://{_host(parts.hostname)}:{parts.port or MANAGEMENT_PORT}"


def vhost_of(amqp_url: str) -> str:
    """The virtual host an AMQP URL names ("/" when it names none); of a cluster's URLs,
    the first one's (all must name the same)."""
    return unquote(urlsplit(first_broker_url(amqp_url)).path.removeprefix("/")) or "/"


def in_vhost(amqp_url: str, vhost: str) -> str:
    """`amqp_url`, every node of it, pointing at another virtual host."""
    path = "/" + quote(vhost, safe="")
    return ",".join(urlsplit(url)._replace(path=path).geturl() for url in broker_urls(amqp_url))


class Management:
    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.base = public_url(url)
        self.user = unquote(parts.username or "guest")
        auth = (self.user, unquote(parts.password or "guest"))
        self._http = httpx.Client(base_url=self.base, auth=auth, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Management:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: object = None) -> Any:
        try:
            answer = self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ManagementError(
                f"the broker's management API at {self.base} does not answer ({error})"
            ) from None
        if answer.status_code in (401, 403):
            raise ManagementError(
                f"the broker's management API at {self.base} answered {answer.status_code} to"
                f" {method} {path}: this needs the credentials of a broker user allowed to"
                " create virtual hosts and users (tag administrator)",
                answer.status_code,
            )
        if answer.status_code >= 400:
            raise ManagementError(
                f"the broker's management API at {self.base} answered {answer.status_code} to"
                f" {method} {path}: {_reason(answer)}",
                answer.status_code,
            )
        return answer.json() if answer.content else None

    def create_vhost(self, name: str) -> None:
        """A virtual host with every permission for the API's user; none if any step fails."""
        self.call("PUT", f"/api/vhosts/{quote(name, safe='')}")
        try:
            path = f"/api/permissions/{quote(name, safe='')}/{quote(self.user, safe='')}"
            self.call("PUT", path, EVERYTHING)
        except ManagementError:
            self.delete_vhost(name)
            raise

    def delete_vhost(self, name: str) -> None:
        """Delete it; a broker that is gone took its virtual hosts with it."""
        with contextlib.suppress(ManagementError):
            self.call("DELETE", f"/api/vhosts/{quote(name, safe='')}")

    def vhost_exists(self, name: str) -> bool:
        return self._found("GET", f"/api/vhosts/{quote(name, safe='')}") is not None

    # ---- users and their permissions ----------------------------------------------------

    def find_user(self, name: str) -> dict[str, Any] | None:
        """The user as the API describes it (name, tags; never its password), or None."""
        found = self._found("GET", f"/api/users/{quote(name, safe='')}")
        return None if found is None else dict(found)

    def put_user(self, name: str, password: str, tags: str = "") -> None:
        """Create the user, or give an existing one this password and these tags."""
        self.call("PUT", f"/api/users/{quote(name, safe='')}", {"password": password, "tags": tags})

    def delete_user(self, name: str) -> None:
        """Delete it with its permissions everywhere; one that does not exist is as good."""
        self._found("DELETE", f"/api/users/{quote(name, safe='')}")

    def set_permissions(
        self, vhost: str, user: str, *, configure: str, write: str, read: str
    ) -> None:
        """The user's regular expressions on `vhost`, matched against resource names."""
        body = {"configure": configure, "write": write, "read": read}
        self.call("PUT", _in(vhost, user, "permissions"), body)

    def permissions(self, vhost: str, user: str) -> dict[str, str] | None:
        """{"configure": ..., "write": ..., "read": ...}, or None when it has none there."""
        found = self._found("GET", _in(vhost, user, "permissions"))
        if found is None:
            return None
        return {kind: str(found[kind]) for kind in ("configure", "write", "read")}

    def set_topic_permissions(
        self, vhost: str, user: str, exchange: str, *, write: str, read: str
    ) -> None:
        """The user's regular expressions on the routing keys of topic exchange `exchange`."""
        body = {"exchange": exchange, "write": write, "read": read}
        self.call("PUT", _in(vhost, user, "topic-permissions"), body)

    def topic_permissions(self, vhost: str, user: str) -> dict[str, dict[str, str]]:
        """{exchange: {"write": ..., "read": ...}} of the user on `vhost`."""
        found = self._found("GET", _in(vhost, user, "topic-permissions")) or []
        return {
            str(entry["exchange"]): {"write": str(entry["write"]), "read": str(entry["read"])}
            for entry in found
        }

    def _found(self, method: str, path: str) -> Any:
        """`call`, with None for a 404 (no such vhost, user or permission)."""
        try:
            return self.call(method, path)
        except ManagementError as error:
            if error.status == 404:
                return None
            raise

    def connections(self, vhost: str) -> list[str]:
        """The names of the connections to `vhost`."""
        found = self.call("GET", f"/api/vhosts/{quote(vhost, safe='')}/connections")
        return [str(connection["name"]) for connection in found]

    def queues(self, vhost: str) -> list[dict[str, Any]]:
        """Every queue and stream of `vhost` with its counters, as the API reports them
        (message counts lag the broker by its statistics interval, 5 s by default)."""
        found = self.call("GET", f"/api/queues/{quote(vhost, safe='')}")
        return list(found)

    def peek(self, vhost: str, queue: str, count: int) -> list[dict[str, Any]]:
        """Up to `count` messages of `queue`, requeued as they were (for reports: the
        messages come back marked redelivered)."""
        path = f"/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}/get"
        body = {"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"}
        return list(self.call("POST", path, body))

    def close_connection(self, name: str) -> None:
        """Force-close a connection, as a broker restart or a network cut would."""
        with contextlib.suppress(ManagementError):  # already gone: just as good
            self.call("DELETE", f"/api/connections/{quote(name, safe='')}")


@contextlib.contextmanager
def scratch_vhost(
    amqp_url: str, management_url: str | None = None, prefix: str = "scratch"
) -> Iterator[str]:
    """The AMQP URL of a virtual host made for the block and deleted after it."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with Management(management_url or management_url_for(amqp_url)) as api:
        api.create_vhost(name)
        try:
            yield in_vhost(amqp_url, name)
        finally:
            api.delete_vhost(name)


def _in(vhost: str, user: str, kind: str) -> str:
    return f"/api/{kind}/{quote(vhost, safe='')}/{quote(user, safe='')}"


def _reason(answer: httpx.Response) -> str:
    """The API's own explanation (a JSON {"reason": ...}), or its status line."""
    try:
        return str(answer.json().get("reason") or answer.reason_phrase)
    except (ValueError, AttributeError):
        return answer.reason_phrase


def _host(hostname: str | None) -> str:
    host = hostname or "localhost"
    return f"[{host}]" if ":" in host else host  # an IPv6 address goes back in brackets
