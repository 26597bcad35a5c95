"""Run one benchmark: `python -m bench NAME [--json] [its options]`.

Only the chosen benchmark's module is imported, so a benchmark that needs a broker client or
a web stack costs nothing to the others.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser, Namespace
from collections.abc import Sequence
from importlib import import_module
from typing import Any, Protocol, cast

BENCHMARKS = {
    "contract": "bench.contract",
    "publish": "bench.publish",
    "consume": "bench.consume",
    "sync": "bench.sync",
    "connector": "bench.connector",
    "chaos": "bench.chaos",
    "scale": "bench.scale",
}


class Benchmark(Protocol):
    """What a benchmark module provides."""

    __doc__: str | None

    def add_arguments(self, parser: ArgumentParser) -> None: ...

    def run(self, options: Namespace) -> dict[str, Any]: ...

    def describe(self, result: dict[str, Any]) -> str:
        """The result as one line for a person."""
        ...


_JSON_HELP = "print the result as one JSON object on stdout"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in BENCHMARKS:
        chooser = ArgumentParser(prog="python -m bench", description=__doc__)
        chooser.add_argument("name", choices=BENCHMARKS, help="the benchmark to run")
        chooser.add_argument("--json", action="store_true", help=_JSON_HELP)
        chooser.parse_args(args)  # prints help or the error naming the choices, and exits
        chooser.error("name the benchmark first: python -m bench NAME [options]")
    name, options = args[0], args[1:]
    bench = cast(Benchmark, import_module(BENCHMARKS[name]))
    parser = ArgumentParser(prog=f"python -m bench {name}", description=bench.__doc__)
    parser.add_argument("--json", action="store_true", help=_JSON_HELP)
    bench.add_arguments(parser)
    parsed = parser.parse_args(options)
    result = bench.run(parsed)
    print(json.dumps(result, ensure_ascii=False) if parsed.json else bench.describe(result))


if __name__ == "__main__":
    main()
