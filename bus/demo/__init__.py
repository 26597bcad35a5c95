"""`bus demo`: the whole pipeline on this machine, in one process, from embedded defaults.

    H29 one-stop system (REST API)    ─┐
    G01 ministry system (SQL table)   ─┼─▶ connectors ─▶ RabbitMQ ─▶ sync service ─▶ portal
    H31 one-stop system (file drops)  ─┘   (connectors/examples/*.toml)          (simulator)

Every part is the real one, run as in production, only side by side on one asyncio loop:
a first look at the project wants one command, one exit code and one summary. The sample
local systems play their dossiers' lives over about ten seconds; then the demo waits until
the simulator holds every dossier's final state, exactly, and says how long each took.

Nothing outside the demo is touched: its broker work happens in a scratch virtual host and
its files in a temporary directory, both deleted at the end (the directory is kept with
--keep-running, for `bus connector rejects`).

Modules, in the order the demo uses them:
- `pipeline`: `run` and the `Demo` itself, from set-up to the summary table;
- `broker`: which RabbitMQ, its management API, the scratch virtual host, queue depths;
- `sites`: the sample local systems, their connectors' configs and keys, the work directory;
- `portal`: what the simulator holds, watched until it holds every dossier's final state;
- `progress`: the progress bars; `errors`: `DemoError`.
"""

from bus.demo.errors import DemoError
from bus.demo.pipeline import DemoOptions, run

__all__ = ["DemoError", "DemoOptions", "run"]
