"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench NAME ...``.

Each benchmark prints its figures next to its target; none of them fails a build.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = {
    "delivery": "bench.delivery_bench",
    "quality": "bench.detect_quality",
    "detect-speed": "bench.detect_speed",
    "daemon": "bench.daemon_bench",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark {unknown}; choose from: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in names:
        print(f"\n=== {name} ({BENCHES[name]}) ===", flush=True)
        started = time.monotonic()
        module = importlib.import_module(BENCHES[name])
        module.main()
        print(f"=== {name}: {time.monotonic() - started:.0f} s ===", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
