"""The fine-tuning learning rate: a linear warm-up, then a cosine to 0 when fine-tuning stops."""

from __future__ import annotations

import math

# Adam's first steps are near sign(gradient) x rate for every weight at once, whatever
# the gradient's size; from a converged probe that jolts the whole body. A linear
# warm-up over the first half epoch lets the moment estimates settle first.
WARMUP_EPOCHS = 0.5


def schedule_progress(
    step: int, total: int, started: float, stop: float | None, now: float
) -> float:
    """How far along the cosine schedule is, 0 to 1: by steps of all ``--epochs``, or by
    the wall time from ``started`` to ``stop`` (the budget's end), whichever is further.
    So the rate reaches 0 when fine-tuning stops, neither cut off high by the budget nor
    left at 0 for epochs that an estimate made before the first step said would not fit
    (measured: a 300 px ELPV run planned 1 epoch from such an estimate, ran 4, 3 at rate 0)."""
    by_steps = step / max(total, 1)
    if stop is None:
        return min(1.0, by_steps)
    by_time = (now - started) / max(stop - started, 1e-9)
    return min(1.0, max(by_steps, by_time))


def rate_factor(progress: float, step: int, warmup: int) -> float:
    """The learning rate relative to its peak: linear warm-up over ``warmup`` steps,
    times a cosine that reaches 0 at ``progress`` 1."""
    return 0.5 * (1 + math.cos(math.pi * progress)) * min(1.0, (step + 1) / max(warmup, 1))
