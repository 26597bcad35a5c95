"""`bus connector check`: the conformance run a team does before going live.

The team's real source meets a scratch everything else. A sample of its records is read (and
nothing more: no cursor moves, no file is taken); the rest is made for the run and thrown
away after it, whatever happens: a virtual host of its own on the broker (through the
management API) holding the topology, the portal simulator on a temporary file, the sync
service in this process trusting a fresh random key, and the connector built from the config
with that key and a temporary state folder. So the check is safe on a system already live.

Each step is one line, PASS, FAIL or SKIP, with its reason and numbers:

    records map     every sample record maps; refused ones are listed by reason, and fail
                    the step (the steps below still run on the records that map)
    delivered       the mapped records reach the simulator exactly as mapped
    duplicates      read again they are skipped; published again none is applied twice
    out-of-order    an older version published after a newer one leaves the newer one
    bad records     broken records end in the reject store; a valid one beside them arrives
    broker outage   every connection is cut while relaying; everything still arrives

A push source (webhook) cannot be sampled: its records come in a file (`records`) instead.

Modules, in the order a check uses them:
- `run`: `check` itself, from the records to the report, one step after another;
- `records`: the records to run on, a sample of the source's or a `--records` file's;
- `scratch`: the scratch environment, made for the run and thrown away after it;
- `management`: the broker's management API, for the scratch vhost and the outage;
- `steps`: the six steps (`STEPS`): the mapping's, then the pipeline's;
- `portal`: what the portal simulator holds, compared with the events sent;
- `report`: each step's line and the verdict; `errors`: what stops a check short.
"""

from connectors.conformance.management import management_url_for
from connectors.conformance.records import SAMPLE_SIZE, RecordsFileError, read_records
from connectors.conformance.report import Outcome, Report, Step
from connectors.conformance.run import check
from connectors.conformance.steps import STEPS

__all__ = [
    "SAMPLE_SIZE",
    "STEPS",
    "Outcome",
    "RecordsFileError",
    "Report",
    "Step",
    "check",
    "management_url_for",
    "read_records",
]
