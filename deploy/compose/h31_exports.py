"""The compose stack's sample local system: province H31's one-stop system, which exports its
changed dossiers as files into the folder the sample connector reads
(connectors/examples/file_drop.toml), as `bus demo` does in one process.

    python h31_exports.py FOLDER [--dossiers 60] [--steps 25] [--every 2]

Every few seconds it plays the next steps of its dossiers' seeded lives and writes the rows
they changed as one file, in CSV, JSON and XML in turn, then exits once every life is over.
Started again it writes the same versions again, which the connector skips as already sent.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from bus.demo.sites import START
from connectors.sample.files import FORMATS, export
from connectors.sample.local import LocalSystem

AGENCY = "000.00.01.H31"  # the agency of connectors/examples/file_drop.toml
SEED = 31  # the seed `bus demo` plays H31 with


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the connector's drop folder")
    parser.add_argument("--dossiers", type=int, default=60, help="dossiers to play (60)")
    parser.add_argument("--steps", type=int, default=25, help="steps per export (25)")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between exports (2)")
    args = parser.parse_args(argv)

    system = LocalSystem(AGENCY, args.dossiers, seed=SEED, start=START)
    formats = itertools.cycle(FORMATS)
    files = 0
    while not system.finished:
        if export(system.advance(args.steps), args.folder, next(formats)) is not None:
            files += 1
        time.sleep(args.every)
    print(f"{AGENCY}: {args.dossiers} dossiers played, {files} files exported to {args.folder}")


if __name__ == "__main__":
    main()
