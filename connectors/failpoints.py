"""Named points where a test can kill the connector outright, as `kill -9` would.

`BUS_FAILPOINT=after-outbox-commit` kills the process right after the first batch of events
is durable in the outbox and before any is published; `after-publish` right after the first
events are confirmed by the broker and before they leave the outbox. The crash tests prove
that a restart then loses nothing and applies nothing twice. Unset, a failpoint costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Final, Literal

ENV: Final = "BUS_FAILPOINT"
Failpoint = Literal["after-outbox-commit", "after-publish"]


def failpoint(name: Failpoint) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
