"""The national portal simulator (`bus portal-sim`): a faithful, fast HTTP peer of DVCQG.

It answers the API of docs/portal-api.md as the sync service will meet it: sessions that
expire, per-item verdicts read with `schemas.wire` (so it is exactly as strict as the contract),
"already exists" and "does not exist", and the faults of a real portal and of the networks on
the way (latency, 5xx, 429 with Retry-After, stalls, cut connections, outages). Its state is a
SQLite file that keeps every version of every dossier, so that tests and checkers can prove
what reached the portal, in which order, and that nothing went back.

Modules, outside in:
- `server`: uvicorn, in a background thread for tests or in the foreground for the CLI;
- `app`: the ASGI app; `faults`: the fault injection around it;
- `portal`: `/auth`, `/integration`, `/share`; `envelope`: what surrounds the items;
  `judge`: the verdict on one item; `answers`: the portal's codes and messages;
- `control`: `/_sim/...` for operators and tests, and `/healthz`;
- `simulator`: the shared state; `store`: SQLite; `sessions`; `stats`.
"""

from bus.portal_sim.app import create_app
from bus.portal_sim.server import InProcessServer
from bus.portal_sim.simulator import Options

__all__ = ["InProcessServer", "Options", "create_app"]
