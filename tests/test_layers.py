"""The include graph, as the compiler sees it (`gcc -H`): no module includes a header of a
module above it (DESIGN.md's layering: the bottom knows nothing of the top).

Every project header a C file pulls in, directly or through another header, must rank lower
than the file's own module, or belong to the same module. A new module must be given a rank
here: an unknown one fails the test, so the map cannot silently go stale.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module -> rank; a module may include only lower ranks (and its own headers).
RANKS = {
    # below everything: UTF-8 validation (the log, the row checks and the encoders use it)
    "utf8": -1,
    # pure helpers and codecs: no I/O, no other module above them
    "bytes": 0, "clock": 0, "timer": 0, "rng": 0, "strutil": 0, "secret": 0, "log": 0,
    "metrics": 0, "copytext": 0, "netaddr": 0, "fe_stmt": 0,
    "pgwire": 1, "config": 1, "control_parse": 1, "sqlgen": 1, "scram": 1, "userlist": 1,
    "sqllex": 1, "pgbinary": 1,
    "scram_server": 2,
    "tls": 2, "ingest_proto": 2, "reload": 2, "sqlrec": 2, "sqlfit": 3,
    # I/O, bottom up
    "upstream": 3, "control": 3, "admin": 3,
    "pool": 4,
    "catalog": 5,
    "coalesce": 6,
    "ingest": 7, "frontend": 7,  # the two doors, siblings
    "gauges": 8,
    "server": 9,
    "main": 10,
}
# Files that are one module between them (an internal header and its two halves).
MODULE_OF = {"coalesce_int": "coalesce", "batch": "coalesce", "co_progress": "coalesce",
             "frontend_int": "frontend", "fe_relay": "frontend", "fe_metrics": "frontend",
             "fe_coalesce": "frontend", "fe_coalesce_int": "frontend", "fe_cotxn": "frontend",
             "fe_copyin": "frontend"}


def module(name: str) -> str:
    return MODULE_OF.get(name, name)


def violations(unit: str, headers: list[str]) -> list[str]:
    """What is wrong with unit (a .c file's stem) including headers (stems)."""
    me = module(unit)
    if me not in RANKS:
        return [f"{unit}.c: module {me!r} has no rank in tests/test_layers.py"]
    out = []
    for h in headers:
        them = module(h)
        if them not in RANKS:
            out.append(f"{unit}.c includes {h}.h, which has no rank in tests/test_layers.py")
        elif them != me and RANKS[them] >= RANKS[me]:
            out.append(f"{unit}.c ({me}, rank {RANKS[me]}) includes {h}.h "
                       f"({them}, rank {RANKS[them]})")
    return out


def project_headers(src: Path) -> list[str]:
    """Every header of ours that gcc opens for src, at any depth (gcc -H)."""
    res = subprocess.run(
        ["gcc", "-H", "-fsyntax-only", "-std=c11", "-D_GNU_SOURCE", '-DLBP_VERSION="0"',
         "-I", str(ROOT / "include"), "-I", str(ROOT / "src"), str(src)],
        capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    found = set()
    for line in res.stderr.splitlines():
        dots, _, path = line.partition(" ")
        if dots and set(dots) == {"."}:
            p = Path(path)
            if p.is_absolute() and ROOT in p.parents or not p.is_absolute():
                p = (ROOT / p) if not p.is_absolute() else p
                if p.parent in (ROOT / "include", ROOT / "src"):
                    found.add(p.stem)
    return sorted(found)


def test_the_checker_finds_a_back_edge() -> None:
    assert violations("metrics", ["ingest", "pool"]) == [
        "metrics.c (metrics, rank 0) includes ingest.h (ingest, rank 7)",
        "metrics.c (metrics, rank 0) includes pool.h (pool, rank 4)"]
    assert violations("batch", ["coalesce_int", "coalesce", "pool"]) == []
    assert violations("lexer", []) == [
        "lexer.c: module 'lexer' has no rank in tests/test_layers.py"]


@pytest.mark.parametrize("src", sorted((ROOT / "src").glob("*.c")), ids=lambda p: p.name)
def test_no_module_includes_one_above_it(src: Path) -> None:
    headers = project_headers(src)
    assert headers, f"gcc -H saw no header of ours in {src.name}"
    assert violations(src.stem, headers) == []
