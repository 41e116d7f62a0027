"""One overall progress line for parallel work: how many tasks are done, failed and left, and the time.

On a terminal the line is rewritten in place; anywhere else (a log, CI) one line is printed per
finished task. ``enabled=False`` (``--json``) prints nothing.
"""

from __future__ import annotations

import sys
import time

from charlab.experiments.tasks import TaskResult


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class ProgressLine:
    """``label: 3/8 done (1 failed, 2 skipped), 2 running, 0:01:23``; ``update`` after each task."""

    def __init__(self, label: str, total: int, skipped: int = 0, enabled: bool = True, stream=None):
        self.label, self.total, self.skipped, self.enabled = label, total, skipped, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.terminal = is_terminal(self.stream)

    def text(self, running: int) -> str:
        notes = [f"{n} {what}" for n, what in ((self.failed, "failed"), (self.skipped, "done before")) if n]
        extra = f" ({', '.join(notes)})" if notes else ""
        return (f"{self.label}: {self.done + self.skipped}/{self.total} done{extra}, {running} running, "
                f"{clock(time.monotonic() - self.started)}")

    def show(self, running: int) -> None:
        if not self.enabled:
            return
        end = "" if self.terminal else "\n"
        self.stream.write(("\r\033[K" if self.terminal else "") + self.text(running) + end)
        self.stream.flush()

    def update(self, result: TaskResult, running: int) -> None:
        self.done += 1
        self.failed += not result.ok
        self.show(running)

    def close(self) -> None:
        if self.enabled and self.terminal:
            self.stream.write("\n")
            self.stream.flush()
