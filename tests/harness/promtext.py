"""Reads the proxy's /metrics (Prometheus text format 0.0.4) for the tests and the demo."""

from __future__ import annotations

import math
import re

Samples = dict[tuple[str, frozenset], float]

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(v: str) -> str:
    return re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), v)


def parse(text: str) -> Samples:
    """{(name, labels): value} for every sample line; a line that is neither is an error."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = frozenset((k, _unescape(v)) for k, v in _LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when absent (a counter not yet seen)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of name whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def buckets(samples: Samples, name: str) -> list[tuple[float, float]]:
    """[(upper bound, cumulative count)] of histogram name, ascending, +Inf last."""
    out = [(float(dict(ls)["le"]), v) for (n, ls), v in samples.items()
           if n == f"{name}_bucket"]
    return sorted(out)


def quantile(q: float, now: Samples, before: Samples | None, name: str) -> float:
    """Like PromQL's histogram_quantile over the increase from before to now: linear within
    the bucket; NaN with no observations in between."""
    cur = buckets(now, name)
    old = dict(buckets(before, name)) if before else {}
    inc = [(le, c - old.get(le, 0.0)) for le, c in cur]
    if not inc or inc[-1][1] <= 0:
        return math.nan
    rank = q * inc[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in inc:
        if c >= rank:
            if math.isinf(le):
                return prev_le  # in +Inf: the largest finite bound is all we know
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c or 1)
        prev_le, prev_c = le, c
    return prev_le
