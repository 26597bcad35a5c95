"""What stops a check short: the scratch environment, or a service of it, failing."""

from __future__ import annotations


class ScratchError(Exception):
    """The scratch environment could not be made (broker, management API)."""


class Stopped(Exception):
    """The sync service or the relay ended before the check did."""
