"""How every command line of ours ends: its exit code, and Ctrl+C as one line (exit 130), not a traceback.

What a command was writing when it was interrupted is left whole or not at
all by the code that writes it (`whole_files`, the downloads' scratch
files): nothing is left to say but that it stopped.
"""

from __future__ import annotations

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
