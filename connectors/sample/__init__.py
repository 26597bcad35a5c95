"""A sample local one-stop system: realistic dossiers and their whole lifecycles, from a seed.

The demo, the sample local systems and the tests all need dossiers that look like the ones a
province really handles: Vietnamese applicants, real-looking identity numbers and addresses,
the national catalogue's kind of procedures, fees, supplements, results, and statuses that
move only as DOMAIN.md's usual moves allow. The same seed always gives the same dossiers and
events, so a run can be repeated and its outcome compared with what was generated.

- `people`: applicants (names, identity numbers, phones, e-mails, addresses) and officers;
- `procedures`: a small catalogue of procedures with their papers, fees and results;
- `dossier`: one dossier as the local system keeps it, publishing an event at every step;
- `lifecycle`: `lifecycles(...)`, each dossier's life and its contract events in `seq` order.

The sample local systems, one for each connector kind, all speaking a vendor's own dialect:

- `local`: that dialect (`to_local`) and `LocalSystem`, the rows of a system moving in time;
- `rest`: the system as a paged REST API (`create_app`, `SampleServer`);
- `database`: the system as a SQL table `ho_so` (`LocalDatabase`), SQLite or PostgreSQL;
- `files`: the system's exports into a folder as CSV, JSON or XML (`export`).

`connectors/examples/*.toml` configure a connector of each kind for them.
"""

from connectors.sample.lifecycle import lifecycles

__all__ = ["lifecycles"]
