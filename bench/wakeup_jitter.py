"""A wake-up latency meter for bench/rtm: how late a process that sleeps 1 ms wakes up.

Run as its own process (and session): `python3 bench/wakeup_jitter.py OUT`. It sleeps 1 ms in
a loop and keeps how much later than asked it woke, in ms; on SIGUSR1 it appends one JSON line
to OUT with the count, p50, p99 and max since the previous SIGUSR1 and the worst 100 ms window
(its start, time.time()), then starts over. A stall of the machine shows as a late wake-up here
whatever the benchmark's processes are doing.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import List


def main() -> None:
    out = open(sys.argv[1], "a", buffering=1)
    late: List[float] = []
    worst = [0.0, 0.0]  # the largest delay, when

    def dump(_sig: int, _frame: object) -> None:
        s = sorted(late)
        n = len(s)
        out.write(json.dumps({
            "samples": n, "p50_ms": round(s[n // 2], 2) if n else None,
            "p99_ms": round(s[min(n - 1, int(0.99 * n))], 2) if n else None,
            "max_ms": round(s[-1], 1) if n else None, "max_at": worst[1]}) + "\n")
        late.clear()
        worst[:] = [0.0, 0.0]

    signal.signal(signal.SIGUSR1, dump)
    while True:
        t = time.monotonic()
        time.sleep(0.001)
        d = (time.monotonic() - t - 0.001) * 1000
        late.append(d)
        if d > worst[0]:
            worst[:] = [d, time.time()]


if __name__ == "__main__":
    main()
