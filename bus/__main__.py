"""`python -m bus` runs the `bus` command."""

from bus.cli import main

main()
