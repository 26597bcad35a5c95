"""Every error the bus raises, and what the consumer does with the message that caused it.

The class alone decides: nothing inspects messages or strings to choose.

    BusError
    ├── MessageError                 the message itself is at fault
    │   ├── TransientError           retry: next retry tier, dead-letter when attempts run out
    │   │   ├── PortalUnavailable    5xx, timeout, dropped connection, still 429 after retries
    │   │   │   └── PortalLoginRejected   the portal refused the bus's credentials
    │   │   ├── StoreUnavailable     the state store cannot be reached or is locked
    │   │   ├── Withdrawn            a sync worker lost the channel the message came on
    │   │   └── (unknown exceptions from a handler are treated as transient)
    │   └── PermanentError           dead-letter at once, with `reason`
    │       ├── InvalidMessage       not UTF-8, not JSON, too large, not the contract
    │       ├── UnknownEventType
    │       ├── SignatureError       unsigned, unknown key, or the signature does not match
    │       ├── PortalRejected       the portal refused the item (its message says why)
    │       └── PortalProtocolError  the portal answered outside docs/portal-api.md
    ├── PublishError                 the broker did not take a published message
    │   ├── Unroutable               returned: no queue is bound for its routing key
    │   └── Nacked                   the broker refused it (e.g. a queue at its length limit)
    ├── TopologyMismatch             a queue exists with other arguments than the topology's
    └── OperatorError                an operator's action cannot be done (never about a message)
        ├── Forbidden                the action touches a unit the operator does not own (403)
        └── NotFound                 no dead letter has that id (404)
"""

from __future__ import annotations

from enum import Enum


class Disposition(Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class BusError(Exception):
    """Root of the bus's errors."""


class MessageError(BusError):
    disposition: Disposition = Disposition.RETRY
    reason: str = "error"


class TransientError(MessageError):
    """Worth trying again later: the portal is down, a timeout, a dropped connection."""

    disposition = Disposition.RETRY
    reason = "transient"


class PermanentError(MessageError):
    """Retrying cannot help; an operator must look."""

    disposition = Disposition.DEAD_LETTER
    reason = "permanent"


class InvalidMessage(PermanentError):
    reason = "invalid"

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownEventType(PermanentError):
    reason = "unknown_type"


class SignatureError(PermanentError):
    reason = "signature"


class PortalUnavailable(TransientError):
    """The portal did not answer usefully: down, overloaded, unreachable, too slow."""

    reason = "portal_unavailable"


class PortalLoginRejected(PortalUnavailable):
    """The portal refused the bus's credentials. Transient, and a breaker failure, so that
    wrong credentials open the breaker and the backlog waits in RabbitMQ for an operator
    instead of flooding the dead-letter queue."""

    reason = "portal_login"


class StoreUnavailable(TransientError):
    """The state store cannot be read or written right now (connection lost, database
    locked): the message is retried, never applied without its guard."""

    reason = "store_unavailable"


class PortalRejected(PermanentError):
    """The portal judged the item invalid: sending it again cannot help."""

    reason = "portal_rejected"


class PortalProtocolError(PermanentError):
    """The portal answered, but not as docs/portal-api.md says it does."""

    reason = "portal_protocol"


class PublishError(BusError):
    """A publish the broker did not confirm; the caller must keep the message."""


class Unroutable(PublishError):
    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(f"no queue is bound for {routing_key!r} on exchange {exchange!r}")
        self.exchange = exchange
        self.routing_key = routing_key


class Nacked(PublishError):
    pass


class TopologyMismatch(BusError):
    def __init__(self, kind: str, name: str, argument: str, wanted: str, current: str) -> None:
        super().__init__(
            f"{kind} {name!r} already exists with {argument}={current}, but the topology "
            f"wants {argument}={wanted}: delete and re-declare it, or change the settings back"
        )
        self.name = name
        self.argument = argument


class OperatorError(BusError):
    """An operator's request that cannot be carried out; the message is for that person."""


class Forbidden(OperatorError):
    """The operator does not own the unit the action touches."""

    def __init__(self, operator: str, unit: str) -> None:
        super().__init__(f"operator {operator!r} may not act on unit {unit!r}")
        self.operator = operator
        self.unit = unit


class NotFound(OperatorError):
    """No dead letter has this id."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no dead letter {what!r}")
        self.what = what


def disposition_of(error: BaseException) -> tuple[Disposition, str]:
    """What to do with a message whose handling raised `error`, and the reason to record."""
    if isinstance(error, MessageError):
        return error.disposition, error.reason
    return Disposition.RETRY, "error"


class Withdrawn(TransientError):
    """A portal call stopped before it left: the messages behind it are no longer the
    caller's to send (they came on a channel since closed, and the broker gives them again,
    maybe to another sync worker). Retried, as any transient failure."""

    reason = "withdrawn"
