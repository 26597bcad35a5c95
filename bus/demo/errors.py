"""`DemoError`: raised by any part of the demo, shown by `bus demo` as it is."""

from __future__ import annotations


class DemoError(Exception):
    """The demo cannot run here; the message says what to do about it."""
