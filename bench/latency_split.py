"""process()->commit taken apart, for bench/rtm and bench/writer_latency.

`TimedSink` wraps the sink a LakebaseForeachWriter's Batcher flushes into and records, for each
write(), when it began and returned and the first and last row's id and partition (the
table's first two columns). `split()` then gives each committed row its flush and cuts the
row's process()->commit time into:

    wait    process() -> its flush's write() begins   (batch_interval_ms, the flush hand-off,
                                                       a write still holding the Batcher)
    write   write() begins -> returns                 (encoding and send; direct: and commit)
    commit  write() returns -> commit                 (proxy: its queue, linger, the server;
                                                       direct: about 0, the commit is inside)

Times are wall-clock seconds (time.time(), the clock of processed_at and of the server on
this machine).
"""

from __future__ import annotations

import bisect
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

# began, returned, partition, first id, last id, the writer's open() time
Flush = Tuple[float, float, int, int, int, float]


class TimedSink:
    """Delegates to the sink; times write()."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.flushes: List[Flush] = []
        self.opened = time.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)

    def write(self, rows: Any) -> None:
        began = time.time()
        self._sink.write(rows)
        returned = time.time()
        if rows:
            self.flushes.append((began, returned, int(rows[0].fields[1]),
                                 int(rows[0].fields[0]), int(rows[-1].fields[0]), self.opened))


def wrap(writer: Any) -> TimedSink:
    """Puts a TimedSink between an opened writer's Batcher and its sink."""
    batcher = writer._batcher
    timed = TimedSink(batcher._sink)
    batcher._sink = timed
    return timed


def save(path: Path, timed: TimedSink) -> None:
    path.write_text(json.dumps(timed.flushes))


def load(paths: Iterable[Path]) -> List[Flush]:
    return [tuple(f) for p in paths for f in json.loads(p.read_text())]  # type: ignore[misc]


def committed_rows(db: Any, table: str) -> List[Tuple[int, int, float, float]]:
    """(id, partition, processed_at, commit time) of every row of a bench table (psycopg)."""
    rows = db.execute(f'SELECT id, part, extract(epoch FROM processed_at), '
                      f'extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM "{table}"'
                      ).fetchall()
    return [(i, p, float(a), float(c)) for i, p, a, c in rows]


def percentiles(values: Sequence[float]) -> Dict[str, Any]:
    s = sorted(values)
    if not s:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(s[len(s) // 2], 1), "p99": round(s[min(len(s) - 1, int(0.99 * len(s)))], 1),
            "max": round(s[-1], 1)}


def split(rows: Iterable[Tuple[int, int, float, float]], flushes: List[Flush]
          ) -> Dict[str, Any]:
    """rows: (id, partition, processed_at, committed_at); ids ascend within a partition."""
    per_part: Dict[int, List[Flush]] = {}
    for f in sorted(flushes, key=lambda f: (f[2], f[3])):
        per_part.setdefault(f[2], []).append(f)
    firsts = {p: [f[3] for f in fs] for p, fs in per_part.items()}
    wait: List[float] = []
    write: List[float] = []
    commit: List[float] = []
    slowest: Dict[Tuple[int, int], Tuple[float, float, float, int]] = {}
    missing = 0
    for row_id, part, processed, committed in rows:
        fs = per_part.get(part, [])
        k = bisect.bisect_right(firsts.get(part, []), row_id) - 1
        if k < 0 or fs[k][4] < row_id:
            missing += 1
            continue
        began, returned = fs[k][0], fs[k][1]
        wait.append((began - processed) * 1000)
        write.append((returned - began) * 1000)
        commit.append((committed - returned) * 1000)
        slowest[(part, fs[k][3])] = (round(commit[-1], 1), round(returned, 3),
                                     round((began - fs[k][5]) * 1000, 1), fs[k][4] - fs[k][3] + 1)
    rows_per_flush = round(len(wait) / len(flushes), 1) if flushes else None
    return {"flushes": len(flushes), "rows_per_flush": rows_per_flush, "unmatched": missing,
            "wait": percentiles(wait), "write": percentiles(write),
            "commit": percentiles(commit),
            # the flushes whose commit came latest after write() returned: (commit ms, when
            # write() returned, ms since the task's open(), id span)
            "slowest_commits": sorted(slowest.values(), reverse=True)[:12]}
