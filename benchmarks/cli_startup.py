"""How long the command line takes to answer: help, a sub-command's help, and bad usage.

    .venv/bin/python benchmarks/cli_startup.py [RUNS]

Each case runs ``RUNS`` times (default 15) as a whole process, as a user types it, and
prints the median and the worst in milliseconds against the 300 ms goal. The runtimes
(ONNX Runtime, OpenVINO, onnx, PyTorch) and pydantic load only when a command runs, so
none of these should touch them; ``-X importtime`` shows what does if one regresses.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

GOAL_MS = 300.0
CASES = {
    "inspector --help": ["--help"],
    "inspector run --help": ["run", "--help"],
    "inspector replay --help": ["replay", "--help"],
    "inspector run --bogus (bad usage)": ["run", "--bogus"],
}


def time_once(arguments: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "inspector", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return (time.perf_counter() - started) * 1e3


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    worst_median = 0.0
    for name, arguments in CASES.items():
        times = [time_once(arguments) for _ in range(runs)]
        median = statistics.median(times)
        worst_median = max(worst_median, median)
        print(f"{name:38} median {median:6.0f} ms   max {max(times):6.0f} ms")
    verdict = "within" if worst_median <= GOAL_MS else "OVER"
    print(f"slowest median {worst_median:.0f} ms: {verdict} the {GOAL_MS:.0f} ms goal")
    return 0 if worst_median <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
