"""Which training steps the recorder samples: every step at the start (where the lecture's plots
change fastest), then every ``every`` steps, and always the last step."""

from __future__ import annotations

from dataclasses import dataclass

DENSE_STEPS = 20  # record steps 0..19: the first steps show the init problems and the fastest change
EVERY = 1000  # then one step in 1000: ~200 records over 200k steps (cost: benchmarks/diagnose_overhead.py)


@dataclass(frozen=True)
class SampleSchedule:
    """Which steps the diagnostics record (not text sampling): ``sampled(step, total)`` is True for
    steps < ``dense``, multiples of ``every`` and the last step."""

    every: int = EVERY
    dense: int = DENSE_STEPS

    def __post_init__(self):
        if self.every < 1 or self.dense < 0:
            raise ValueError(f"SampleSchedule needs every >= 1 and dense >= 0, got {self.every}, {self.dense}")

    def sampled(self, step: int, total: int | None = None) -> bool:
        return step < self.dense or step % self.every == 0 or (total is not None and step == total - 1)

    def steps(self, total: int) -> list[int]:
        """The sampled steps of a run of ``total`` steps."""
        return [s for s in range(total) if self.sampled(s, total)]


DEFAULT_SCHEDULE = SampleSchedule()
EVERY_STEP = SampleSchedule(every=1, dense=0)
