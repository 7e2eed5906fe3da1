"""Wall-clock timing of a call, as `timeit` does it: warm-up calls first (allocator, caches,
oneDNN's kernel choice), then repeats of `number` calls each, `number` grown until one repeat
lasts at least `MIN_REPEAT_S` so the clock's resolution and a call's jitter stay small beside
it. The median is the figure; the quartiles say how much it moved."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_REPEAT_S = 2e-4  # 0.2 ms: far above perf_counter's resolution, short enough for 20 repeats
MAX_NUMBER = 1000  # calls in one repeat, however fast the call


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median of the repeats and their lower and upper quartiles."""

    median: float
    low: float
    high: float
    repeats: int

    @property
    def spread(self) -> float:
        """The interquartile range relative to the median (0.05: the middle half within 5%)."""
        return (self.high - self.low) / self.median if self.median > 0 else 0.0


def measure(
    call: Callable[[], object],
    repeats: int = 20,
    warmup: int = 3,
    sync: Callable[[], None] = lambda: None,
) -> Timing:
    """Time `call`; `sync` waits for queued device work (torch.cuda.synchronize) so a repeat
    ends when the work does, not when it was queued."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    for _ in range(warmup):
        call()
    sync()
    number = _calls_per_repeat(call, sync)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call()
        sync()
        samples.append((time.perf_counter() - start) / number)
    return summarise(samples)


def summarise(samples: list[float]) -> Timing:
    low, _, high = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return Timing(statistics.median(samples), low, high, len(samples))


def _calls_per_repeat(call: Callable[[], object], sync: Callable[[], None]) -> int:
    number = 1
    while number < MAX_NUMBER:
        start = time.perf_counter()
        for _ in range(number):
            call()
        sync()
        if time.perf_counter() - start >= MIN_REPEAT_S:
            break
        number *= 2
    return min(number, MAX_NUMBER)
