"""INSERT coalescing on the front door (docs/frontend.md, Coalescing): unmodified
PostgreSQL clients (psycopg, psql, pgbench) through the proxy to a real PostgreSQL with
TLS + SCRAM-SHA-256, asserting on what landed in the table, what each client was told,
and how many server transactions it took."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from test_frontend import FrontDoor, promtext  # noqa: F401  (the harness of the front door)
from pgharness import PgServer  # noqa: E402


@pytest.fixture
def front(pg: PgServer, tmp_path: Path) -> Iterator[FrontDoor]:
    f = FrontDoor(pg, tmp_path, env={"LAKEBASE_PROXY_LOG_LEVEL": "debug"})
    yield f
    rc = f.stop()
    Path("/tmp/co.log").write_text(f.proxy.log)
    assert rc == 0, f.proxy.log[-6000:]


def fresh_table(pg: PgServer, name: str, columns: str) -> None:
    pg.admin_sql(f"DROP TABLE IF EXISTS {name} CASCADE; CREATE TABLE {name} ({columns});"
                 f"GRANT ALL ON {name} TO {pg.user}")


def events(front: FrontDoor) -> dict[str, float]:
    status, body, _ = front.proxy.admin_get("/metrics")
    assert status == 200
    m = promtext.parse(body)
    return {e: promtext.value(m, "lbp_frontend_events_total", event=e) or 0.0
            for e in ("coalesced", "coalesced_rows", "coalesce_failed", "coalesce_forwarded",
                      "transactions")}


def xact_commits(pg: PgServer) -> int:
    pg.admin_sql("SELECT pg_stat_force_next_flush()")
    return int(pg.admin_sql(
        f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{pg.dbname}'")[0][0])


def run_clients(n: int, fn) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(k: int) -> None:
        try:
            fn(k)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_many_autocommit_inserts_become_few_transactions(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_ev", "id int PRIMARY KEY, who text, v double precision, note text")
    before = xact_commits(pg)
    per_client, clients = 150, 16

    def client(k: int) -> None:
        with front.connect() as c:
            for i in range(per_client):
                cur = c.execute("INSERT INTO co_ev (id, who, v, note) VALUES (%s, %s, %s, %s)",
                                (k * 1000 + i, f"client {k}", i / 3, None if i % 7 else "a\tb\\c\nd"))
                assert cur.rowcount == 1 and cur.statusmessage == "INSERT 0 1"

    assert run_clients(clients, client) == []
    total = per_client * clients
    rows = pg.admin_sql("SELECT count(*), count(DISTINCT id), sum(v)::numeric(20,6)::text, "
                        "count(*) FILTER (WHERE note = E'a\\tb\\\\c\\nd') FROM co_ev")
    expected_sum = sum(i / 3 for i in range(per_client)) * clients
    assert rows[0][0] == str(total) and rows[0][1] == str(total)
    assert abs(float(rows[0][2]) - expected_sum) < 1e-6
    assert rows[0][3] == str(clients * len([i for i in range(per_client) if i % 7 == 0]))
    ev = events(front)
    assert ev["coalesced_rows"] == total
    # far fewer server transactions than statements: the rows shared commits
    assert xact_commits(pg) - before < total / 2
