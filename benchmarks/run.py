"""Run the benchmarks of this folder: `python benchmarks/run.py [NAME ...] [-- ARGS]`.

NAME is a module of this folder without `.py` (default: all of them, in order); ARGS go
to each. Every benchmark prints its figures with the peers and the machine's limits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = ["server_rates", "decode", "api_calls", "upload", "download", "bulk"]


def main(argv: list[str]) -> int:
    names, args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        names, args = argv[:cut], argv[cut + 1 :]
    for name in names or BENCHMARKS:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *args])
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
