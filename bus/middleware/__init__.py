"""Cross-cutting steps a message passes through before its handler, outermost first.

Each middleware wraps the next: it may act before and after, stop the message early (a
duplicate), or turn an exception into an outcome (retries). The default order:

    LogContext → Metrics → Retries → BodyLimit → SignatureCheck → Decode → Dedup → handler
"""

from bus.middleware.base import Handler, Middleware, chain
from bus.middleware.decode import BodyLimit, Decode
from bus.middleware.dedup import Dedup
from bus.middleware.log_context import LogContext
from bus.middleware.metrics import Metrics
from bus.middleware.retries import Retries
from bus.middleware.signature import SignatureCheck
from bus.publisher import Publisher
from bus.settings import Settings
from bus.signing import KeyRing

__all__ = [
    "BodyLimit",
    "Decode",
    "Dedup",
    "Handler",
    "LogContext",
    "Metrics",
    "Middleware",
    "Retries",
    "SignatureCheck",
    "chain",
    "standard",
]


def standard(
    queue: str, publisher: Publisher, settings: Settings, keys: KeyRing | None
) -> list[Middleware]:
    """The chain every event consumer runs; `keys` None skips signature checks (tests,
    benchmarks of the raw path), which production never does."""
    steps: list[Middleware] = [
        LogContext(),
        Metrics(queue),
        Retries(publisher, settings),
        BodyLimit(settings.max_body_bytes),
    ]
    if keys is not None:
        steps.append(SignatureCheck(keys))
    steps += [Decode(), Dedup(settings.dedup_window)]
    return steps
