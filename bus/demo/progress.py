"""The demo's progress bars."""

from __future__ import annotations

import time
from typing import Final, TextIO


class Bar:
    """`[#####.....] 123/180 dossiers synced`: redrawn in place at a terminal, else a line
    every few seconds (a CI log or a file wants no carriage returns)."""

    WIDTH: Final = 30

    def __init__(self, out: TextIO, label: str, total: int, what: str) -> None:
        self.out, self.label, self.total, self.what = out, label, total, what
        self.tty = out.isatty()
        self.every = 0.1 if self.tty else 3.0
        self.started = self.drawn = time.monotonic()
        self.width = 0
        self.shown: tuple[int, str] | None = None

    def show(self, done: int, note: str = "") -> None:
        if time.monotonic() - self.drawn >= self.every:
            self._draw(done, note, last=False)

    def finish(self, done: int, note: str = "") -> None:
        if self.tty or self.shown != (done, note):  # a log needs no line saying it again
            self._draw(done, note, last=True)

    def _draw(self, done: int, note: str, *, last: bool) -> None:
        self.drawn, self.shown = time.monotonic(), (done, note)
        filled = self.WIDTH * done // self.total if self.total else self.WIDTH
        line = (
            f"  {self.label:<14}[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{done}/{self.total} {self.what}{note}  {self.drawn - self.started:4.1f} s"
        )
        if self.tty:
            self.out.write("\r" + line.ljust(self.width) + ("\n" if last else ""))
            self.width = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()
