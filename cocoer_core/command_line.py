"""How every command line of ours ends: its exit code, and Ctrl+C as one line (exit 130), not a traceback.

What a command was writing when it was interrupted is left whole or not at
all by the code that writes it (`whole_files`, the downloads' scratch
files): nothing is left to say but that it stopped.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

#: The shell's code for a process ended by SIGINT (128 + 2), as run_stream.py and training exit.
INTERRUPTED = 130


def exit_with(main: Callable[[], int]) -> NoReturn:
    """`sys.exit(main())`, with Ctrl+C (or SIGINT) printing "interrupted" and exiting 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = INTERRUPTED
    sys.exit(code)


# Argument types for numbers with a range: argparse's `type=float` takes nan, inf and -3 for a scale or a count.
def whole_number_from(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}; got {value}")
        return value

    return parse


def number_within(low: float, high: float = math.inf, low_inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number from `low` (inclusive or not) to `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number; got {text}")
        if value < low or (value == low and not low_inclusive) or value > high:
            above = f">= {low:g}" if low_inclusive else f"> {low:g}"
            within = f"must be {above}" + (f" and <= {high:g}" if high < math.inf else "")
            raise argparse.ArgumentTypeError(f"{within}; got {text}")
        return value

    return parse
