"""Names of the AMQP headers the bus writes and reads.

The event's identity travels in standard AMQP properties: message_id is the event id, type the
event type, app_id the connector, timestamp when it occurred (seconds). Headers carry only what
has no property, because every header is encoded and decoded again on every message.
"""

# Set by the publisher: enough to log, route and browse a message without parsing its body.
DOSSIER_CODE = "x-dossier-code"
SEQ = "x-seq"
KEY_ID = "x-key-id"
SIGNATURE = "x-signature"

# Written by the consumer when a message is retried or dead-lettered.
ATTEMPT = "x-bus-attempt"
FIRST_FAILURE = "x-bus-first-failure"
LAST_FAILURE = "x-bus-last-failure"
REASON = "x-bus-reason"
ERROR_CLASS = "x-bus-error-class"
ERROR = "x-bus-error"
ORIGINAL_EXCHANGE = "x-bus-original-exchange"
ORIGINAL_ROUTING_KEY = "x-bus-original-routing-key"
# Set by `bus reconcile` on an event it re-queues: apply it even though its seq was applied.
RESYNC = "x-bus-resync"
# Set by an operator's replay (`bus dlq replay`, `bus replay`, the console): who sent it back,
# and how many times this event has been replayed from the dead-letter store.
REPLAYED_BY = "x-bus-replayed-by"
REPLAYS = "x-bus-replays"
# Set on every copy the bus re-publishes (retry, dead letter): the broker user who published
# the event first. The copy's own user_id is the bus's, so the signature check reads this.
PUBLISHED_BY = "x-bus-published-by"

# Only the bus writes these: a connector's message that carries any loses them on arrival.
BUS_OWNED = frozenset(
    {
        ATTEMPT,
        FIRST_FAILURE,
        LAST_FAILURE,
        REASON,
        ERROR_CLASS,
        ERROR,
        ORIGINAL_EXCHANGE,
        ORIGINAL_ROUTING_KEY,
        RESYNC,
        REPLAYED_BY,
        REPLAYS,
        PUBLISHED_BY,
    }
)
