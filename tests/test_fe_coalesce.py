"""INSERT coalescing on the front door (docs/frontend.md, Coalescing): unmodified
PostgreSQL clients (psycopg, psql, pgbench) through the proxy to a real PostgreSQL with
TLS + SCRAM-SHA-256, asserting on what landed in the table, what each client was told,
and how many server transactions it took."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from test_frontend import FrontDoor, promtext  # noqa: F401  (the harness of the front door)
from pgharness import PgServer  # noqa: E402


@pytest.fixture
def front(pg: PgServer, tmp_path: Path) -> Iterator[FrontDoor]:
    f = FrontDoor(pg, tmp_path)
    yield f
    rc = f.stop()
    assert rc == 0, f.proxy.log[-6000:]


@pytest.fixture
def front_linger(pg: PgServer, tmp_path: Path) -> Iterator[FrontDoor]:
    """A batch waits up to 50 ms for more rows, so that concurrent clients' statements
    share commits whatever the machine's speed (what the tests count)."""
    f = FrontDoor(pg, tmp_path, env={"LAKEBASE_PROXY_BATCH_MAX_DELAY_MS": "50"})
    yield f
    rc = f.stop()
    assert rc == 0, f.proxy.log[-6000:]


def fresh_table(pg: PgServer, name: str, columns: str) -> None:
    pg.admin_sql(f"DROP TABLE IF EXISTS {name} CASCADE; CREATE TABLE {name} ({columns});"
                 f"GRANT ALL ON {name} TO {pg.user};"
                 f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {pg.user}")


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


def test_many_autocommit_inserts_become_few_transactions(front_linger: FrontDoor,
                                                         pg: PgServer) -> None:
    front = front_linger
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


def test_executemany_and_multi_row_values_in_pipelines(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_many", "id bigint PRIMARY KEY, s smallint, b boolean, n numeric(12,3), "
                "t timestamptz, d date, u uuid, j jsonb, raw bytea, f4 real")
    import datetime as dt
    import decimal
    import uuid
    from psycopg.types.json import Jsonb
    from psycopg.types.numeric import Float4

    rows = [(i, i % 300, i % 2 == 0, decimal.Decimal(i) / 7, dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
             + dt.timedelta(seconds=i), dt.date(2000, 2, 29) + dt.timedelta(days=i),
             uuid.UUID(int=i * 7919), Jsonb({"i": i, "s": "é\"\\"}), bytes([i % 256, 0, 255]), Float4(i / 4))
            for i in range(400)]
    before = events(front)
    with front.connect() as c:
        with c.cursor() as cur:
            cur.executemany("INSERT INTO co_many VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            rows[:200])
        # the same in text format
        with c.cursor() as cur:
            cur.executemany("INSERT INTO co_many VALUES (%t, %t, %t, %t, %t, %t, %t, %t, %t, %t)",
                            rows[200:300])
        # 100-row VALUES statements, literals and parameters mixed
        values = ", ".join(f"({i}, {i % 300}, {'TRUE' if i % 2 == 0 else 'false'}, %s, %s, "
                           f"'{(dt.date(2000, 2, 29) + dt.timedelta(days=i)).isoformat()}', %s, %s, %s, %s)"
                           for i in range(300, 400))
        params: list[object] = []
        for r in rows[300:]:
            params += [r[3], r[4], r[6], r[7], r[8], r[9]]
        c.execute("INSERT INTO co_many VALUES " + values, params)
    after = events(front)
    assert after["coalesced_rows"] - before["coalesced_rows"] == 400
    with psycopg.connect(pg.dsn(), autocommit=True) as direct:
        got = direct.execute("SELECT id, s, b, n, t, d, u, j, raw, f4 FROM co_many ORDER BY id").fetchall()
    expected = [(r[0], r[1], r[2], round(r[3], 3), r[4], r[5], r[6], r[7].obj, r[8], r[9]) for r in rows]
    assert got == expected


def test_psql_literals_and_every_string_syntax(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_lit", "k int PRIMARY KEY, s text, v numeric, when_ timestamp")
    sql = ("INSERT INTO co_lit (k, s, v, when_) VALUES "
           "(1, 'plain ''quoted''', 1.50, '2024-02-29 23:59:59.123456'), "
           "(2, E'tab\\there\\nnewline \\\\ back', -0, NULL), "
           "(3, U&'d\\0061t\\+000061', 12345678901234567890, timestamp '2000-01-01'), "
           "(4, $$dollar $ 'quoted'$$, 1e3, '2000-01-01'::timestamp)")
    out = front.psql(sql, client_encoding="UTF8")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "INSERT 0 4"
    assert pg.admin_sql("SELECT k, s, v::text, when_::text FROM co_lit ORDER BY k") == [
        ["1", "plain 'quoted'", "1.50", "2024-02-29 23:59:59.123456"],
        ["2", "tab\there\nnewline \\ back", "0", ""],
        ["3", "data", "12345678901234567890", "2000-01-01 00:00:00"],
        ["4", "dollar $ 'quoted'", "1000", "2000-01-01 00:00:00"]]
    assert events(front)["coalesced_rows"] == 4


def test_one_bad_row_fails_only_its_statement_among_busy_clients(front: FrontDoor,
                                                                 pg: PgServer) -> None:
    fresh_table(pg, "co_bad", "id int PRIMARY KEY, v int CHECK (v >= 0)")
    pg.admin_sql("INSERT INTO co_bad VALUES (999999, 0)")
    told: dict[int, list[str]] = {}

    def client(k: int) -> None:
        mine: list[str] = []
        with front.connect() as c:
            for i in range(40):
                ident, v = k * 100 + i, 1
                if k == 7 and i == 20:
                    ident = 999999  # a duplicate of a stored key
                if k == 9 and i == 10:
                    v = -1  # violates the CHECK
                try:
                    c.execute("INSERT INTO co_bad VALUES (%s, %s)", (ident, v))
                    mine.append("ok")
                except psycopg.Error as e:
                    d = e.diag
                    mine.append(f"{d.sqlstate} {d.constraint_name} {d.message_detail}")
        told[k] = mine

    assert run_clients(64, client) == []
    for k in range(64):
        bad = {7: 20, 9: 10}.get(k)
        for i, answer in enumerate(told[k]):
            if i == bad and k == 7:
                assert answer == "23505 co_bad_pkey Key (id)=(999999) already exists."
            elif i == bad and k == 9:
                assert answer.startswith("23514 co_bad_v_check Failing row contains (910, -1)")
            else:
                assert answer == "ok", (k, i, answer)
    assert pg.admin_sql("SELECT count(*) FROM co_bad") == [[str(64 * 40 - 2 + 1)]]
    assert events(front)["coalesce_failed"] == 2


def test_upserts_from_many_clients_end_in_each_keys_last_value(front: FrontDoor,
                                                               pg: PgServer) -> None:
    fresh_table(pg, "co_up", "k int PRIMARY KEY, v int, who text")

    def client(k: int) -> None:
        with front.connect() as c:
            for i in range(60):
                key = (k * 7 + i) % 25 if i < 59 else 100 + k
                c.execute("INSERT INTO co_up AS t (k, v, who) VALUES (%s, %s, %s) "
                          "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, who = excluded.who",
                          (key, i, f"c{k}"))

    assert run_clients(16, client) == []
    # every client's own key holds its last value; the shared keys hold some client's row
    own = pg.admin_sql("SELECT k, v, who FROM co_up WHERE k >= 100 ORDER BY k")
    assert own == [[str(100 + k), "59", f"c{k}"] for k in range(16)]
    assert pg.admin_sql("SELECT count(*) FROM co_up WHERE k < 25") == [["25"]]
    assert events(front)["coalesced_rows"] == 16 * 60


def test_a_client_reads_its_own_write_at_once(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_ryw", "id int PRIMARY KEY, v text")
    with front.connect() as c:
        for i in range(50):
            c.execute("INSERT INTO co_ryw VALUES (%s, %s)", (i, f"v{i}"))
            assert c.execute("SELECT v FROM co_ryw WHERE id = %s", (i,)).fetchone() == (f"v{i}",)
            c.execute("UPDATE co_ryw SET v = v || '!' WHERE id = %s", (i,))
    assert pg.admin_sql("SELECT count(*) FROM co_ryw WHERE v LIKE '%!'") == [["50"]]
    ev = events(front)
    assert ev["coalesced_rows"] == 50 and ev["coalesce_forwarded"] >= 100


def test_statements_that_must_be_forwarded_behave_as_direct(front: FrontDoor,
                                                            pg: PgServer) -> None:
    fresh_table(pg, "co_fw", "id serial PRIMARY KEY, v text, at timestamptz DEFAULT now()")
    with front.connect() as c:
        assert c.execute("INSERT INTO co_fw (v) VALUES ('r') RETURNING id").fetchone() == (1,)
        c.execute("INSERT INTO co_fw (v, at) VALUES ('n', now())")
        c.execute("INSERT INTO co_fw (v) VALUES (DEFAULT)")
        c.execute("INSERT INTO co_fw (v) SELECT 'sel'")
        with c.transaction():
            c.execute("INSERT INTO co_fw (v) VALUES ('in txn')")
            assert c.execute("SELECT count(*) FROM co_fw").fetchone() == (5,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("INSERT INTO co_nosuch VALUES (1)")
        with pytest.raises(psycopg.errors.UndefinedColumn):
            c.execute("INSERT INTO co_fw (nosuch) VALUES (1)")
        with pytest.raises(psycopg.errors.DatatypeMismatch):
            c.execute("INSERT INTO co_fw (id) VALUES (%s::text)", ("5",))
    assert pg.admin_sql("SELECT id, v FROM co_fw ORDER BY id") == [
        ["1", "r"], ["2", "n"], ["3", ""], ["4", "sel"], ["5", "in txn"]]
    ev = events(front)
    # looked at and relayed (the transaction's BEGIN took its statements along)
    assert ev["coalesced_rows"] == 0 and ev["coalesce_forwarded"] >= 7


def test_named_prepared_inserts_coalesce_and_still_work_in_a_transaction(
        front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_prep", "id int PRIMARY KEY, v text")
    with front.connect() as c:
        c.prepare_threshold = 0  # a named statement from the first execute
        for i in range(20):
            c.execute("INSERT INTO co_prep VALUES (%s, %s)", (i, "auto"))
        with c.transaction():  # forwarded: the server must get the statement
            for i in range(20, 30):
                c.execute("INSERT INTO co_prep VALUES (%s, %s)", (i, "txn"))
    assert pg.admin_sql("SELECT v, count(*) FROM co_prep GROUP BY v ORDER BY v") == [
        ["auto", "20"], ["txn", "10"]]
    assert events(front)["coalesced_rows"] == 20


@pytest.mark.parametrize("protocol", ["simple", "prepared"])
def test_pgbench_one_row_inserts(front_linger: FrontDoor, pg: PgServer, tmp_path: Path,
                                 protocol: str) -> None:
    front = front_linger
    fresh_table(pg, "co_bench", "id bigint, c int, v text")
    script = tmp_path / "insert.sql"
    script.write_text("\\set id random(1, 1000000000)\n"
                      "INSERT INTO co_bench (id, c, v) VALUES (:id, :client_id, 'pgbench');\n")
    before = xact_commits(pg)
    env = {"PGPASSWORD": "app-Secret-1", "PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(pg.ca_file)}
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(front.port), "-U", "app", "-n",
                          "-c", "16", "-j", "2", "-t", "100", "-M", protocol, "-f", str(script),
                          pg.dbname], capture_output=True, text=True, timeout=180,
                         env={**__import__("os").environ, **env})
    assert out.returncode == 0, out.stderr
    assert "number of failed transactions: 0" in out.stdout
    assert pg.admin_sql("SELECT count(*), count(DISTINCT c) FROM co_bench") == [["1600", "16"]]
    assert events(front)["coalesced_rows"] == 1600
    assert xact_commits(pg) - before < 800


@pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK (scripts/setup.sh installs one)")
@pytest.mark.parametrize("rewrite,txn", [(False, False), (True, False), (False, True)])
def test_pgjdbc_batches(pg: PgServer, tmp_path: Path, rewrite: bool, txn: bool) -> None:
    """In autocommit (with and without reWriteBatchedInserts), and as Kafka Connect's JDBC
    sink does (autocommit off, executeBatch, commit) with coalesce_transactions on."""
    root = Path(__file__).resolve().parents[1]
    jar = Path(subprocess.run([str(root / "scripts" / "fetch-pgjdbc.sh")], capture_output=True,
                              text=True, check=True).stdout.strip())
    subprocess.run(["javac", "-cp", str(jar), "-d", str(tmp_path),
                    str(root / "tests" / "jdbc" / "CoalesceJdbc.java")], check=True)
    fresh_table(pg, "co_jdbc", "id bigint PRIMARY KEY, k int, v text, n numeric(12,2), "
                "at timestamp, f double precision, b boolean")
    f = FrontDoor(pg, tmp_path, coalesce_transactions="on" if txn else "off")
    try:
        url = (f"jdbc:postgresql://127.0.0.1:{f.port}/{pg.dbname}?sslmode=verify-full"
               f"&sslrootcert={pg.ca_file}&reWriteBatchedInserts={str(rewrite).lower()}")
        r = subprocess.run(["java", "-Duser.timezone=UTC", "-cp", f"{jar}:{tmp_path}",
                            "CoalesceJdbc", url, "app",
                            "app-Secret-1", "2000"] + (["txn"] if txn else []),
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "done" in r.stdout
        ev = events(f)
    finally:
        f.stop()
    # every row was taken aside, the failed batch's 10 too, and failed whole
    assert ev["coalesced_rows"] == 2010
    assert ev["coalesce_failed"] == 1
    # relayed: the SELECT count(*) only (with transactions: BEGIN, INSERTs and COMMIT all
    # stayed in the proxy, none became a server transaction)
    assert ev["coalesce_forwarded"] == 1
    assert pg.admin_sql(
        "SELECT count(*), sum(k), min(v), sum(n)::text, sum(f)::text, count(*) FILTER (WHERE b), "
        "min(at)::text FROM co_jdbc") == [[
            "2000", str(sum(i % 1000 for i in range(2000))), "row 0 \t\\ é",
            f"{sum(range(2000)) / 100:.2f}", str(sum(range(2000)) // 8), "1000",
            "2023-11-14 22:13:20"]]


def test_tables_where_copy_differs_from_insert_are_relayed(front: FrontDoor,
                                                          pg: PgServer) -> None:
    """COPY ignores rules, fires statement triggers once per batch and takes a value for an
    identity column GENERATED ALWAYS: such INSERTs go to the server as they are."""
    fresh_table(pg, "co_trig", "id int, v text")
    fresh_table(pg, "co_stmts", "n int")
    pg.admin_sql("CREATE FUNCTION co_count() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN INSERT INTO co_stmts VALUES (1); RETURN NULL; END $$;"
                 "CREATE TRIGGER co_per_statement AFTER INSERT ON co_trig "
                 "FOR EACH STATEMENT EXECUTE FUNCTION co_count()")
    fresh_table(pg, "co_ruled", "id int")
    fresh_table(pg, "co_ruled_log", "id int")
    pg.admin_sql("CREATE RULE co_also AS ON INSERT TO co_ruled DO ALSO "
                 "INSERT INTO co_ruled_log VALUES (NEW.id)")
    fresh_table(pg, "co_ident", "id bigint GENERATED ALWAYS AS IDENTITY, v text")
    with front.connect() as c:
        # one pipeline: five statements, five statement-trigger firings
        c.cursor().executemany("INSERT INTO co_trig VALUES (%s, 'x')", [(i,) for i in range(5)])
        for i in range(5):
            c.execute("INSERT INTO co_ruled VALUES (%s)", (i,))
            c.execute("INSERT INTO co_ident (v) VALUES (%s)", (f"v{i}",))
        with pytest.raises(psycopg.errors.GeneratedAlways):
            c.execute("INSERT INTO co_ident (id, v) VALUES (%s, 'explicit')", (100,))
    assert pg.admin_sql("SELECT count(*) FROM co_stmts") == [["5"]]
    assert pg.admin_sql("SELECT count(*) FROM co_ruled_log") == [["5"]]
    assert pg.admin_sql("SELECT string_agg(v, ',' ORDER BY id) FROM co_ident") == [
        ["v0,v1,v2,v3,v4"]]
    # only the identity table's five INSERTs without the identity column coalesced
    assert events(front)["coalesced_rows"] == 5


def test_coalesce_off_and_coalesce_tables(pg: PgServer, tmp_path: Path) -> None:
    fresh_table(pg, "co_on", "id int")
    fresh_table(pg, "co_off", "id int")
    for settings, expected in (({"coalesce": "off"}, 0),
                               ({"coalesce_tables": "public.co_on, nosuch"}, 10)):
        run_dir = tmp_path / str(expected)
        run_dir.mkdir()
        f = FrontDoor(pg, run_dir, **settings)
        try:
            with f.connect() as c:
                for i in range(10):
                    c.execute("INSERT INTO co_on VALUES (%s)", (i,))
                    c.execute("INSERT INTO co_off VALUES (%s)", (i,))
            ev = events(f)
        finally:
            f.stop()
        assert ev["coalesced_rows"] == expected
    assert pg.admin_sql("SELECT (SELECT count(*) FROM co_on), (SELECT count(*) FROM co_off)") == [
        ["20", "20"]]


def writer_01(front: FrontDoor, k: int, style: str, n: int) -> list[tuple[int, str]]:
    """What lakebase-foreachwriter 0.1 does: psycopg with autocommit off, executemany of
    one-row INSERTs, or of 100-row VALUES statements, or COPY FROM STDIN, then commit()."""
    rows = [(k * 100000 + i, f"w{k} r{i}") for i in range(n)]
    with front.connect(autocommit=False) as c:
        with c.cursor() as cur:
            if style == "one-row":
                cur.executemany("INSERT INTO co_w01 (id, v) VALUES (%s, %s)", rows)
            elif style == "values-100":
                for at in range(0, n, 100):
                    chunk = rows[at:at + 100]
                    cur.execute("INSERT INTO co_w01 (id, v) VALUES "
                                + ", ".join(["(%s, %s)"] * len(chunk)),
                                [x for r in chunk for x in r])
            else:
                with cur.copy("COPY co_w01 (id, v) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
        c.commit()
    return rows


@pytest.fixture
def front_txn(pg: PgServer, tmp_path: Path) -> Iterator[FrontDoor]:
    f = FrontDoor(pg, tmp_path, coalesce_transactions="on")
    yield f
    rc = f.stop()
    assert rc == 0, f.proxy.log[-6000:]


@pytest.mark.parametrize("transactions", ["off", "on"])
@pytest.mark.parametrize("style", ["one-row", "values-100", "copy"])
def test_many_writers_as_lakebase_foreachwriter_01(pg: PgServer, tmp_path: Path, style: str,
                                                   transactions: str) -> None:
    fresh_table(pg, "co_w01", "id bigint PRIMARY KEY, v text NOT NULL")
    front = FrontDoor(pg, tmp_path, coalesce_transactions=transactions)
    sent: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for batch in range(3):
            rows = writer_01(front, k * 10 + batch, style, 300)
            with lock:
                sent.extend(rows)

    try:
        assert run_clients(12, client) == []
        ev = events(front)
    finally:
        assert front.stop() == 0, front.proxy.log[-6000:]
    got = pg.admin_sql("SELECT id, v FROM co_w01 ORDER BY id")
    assert [(int(i), v) for i, v in got] == sorted(sent)
    if transactions == "on":
        # every transaction went whole to the coalescer (how many share a server commit
        # depends on timing: bench/pooler measures it)
        assert ev["coalesced_rows"] == len(sent)
    else:
        assert ev["coalesced_rows"] == 0


def test_a_coalesced_transactions_error_comes_at_commit(front_txn: FrontDoor,
                                                        pg: PgServer) -> None:
    fresh_table(pg, "co_txe", "id int PRIMARY KEY, v text")
    pg.admin_sql("INSERT INTO co_txe VALUES (5, 'stored')")
    with front_txn.connect(autocommit=False) as c:
        for i in range(10):
            # each INSERT is answered at once, the duplicate key too
            assert c.execute("INSERT INTO co_txe VALUES (%s, 'txn')", (i,)).rowcount == 1
        with pytest.raises(psycopg.errors.UniqueViolation) as e:
            c.commit()
        assert e.value.diag.constraint_name == "co_txe_pkey"
        assert e.value.diag.message_detail == "Key (id)=(5) already exists."
        # the connection goes on: a new transaction, rolled back on purpose
        c.execute("INSERT INTO co_txe VALUES (100, 'rolled back')")
        c.rollback()
        c.execute("INSERT INTO co_txe VALUES (101, 'kept')")
        c.commit()
    assert pg.admin_sql("SELECT id, v FROM co_txe ORDER BY id") == [["5", "stored"],
                                                                    ["101", "kept"]]
    assert events(front_txn)["coalesce_failed"] == 1


def test_a_statement_that_is_not_coalescible_makes_it_a_server_transaction(
        front_txn: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_txm", "id int PRIMARY KEY, v text")
    with front_txn.connect(autocommit=False) as c:
        for i in range(3):
            c.execute("INSERT INTO co_txm VALUES (%s, 'before')", (i,))
        # reads see the transaction's own rows: they were written in it first
        assert c.execute("SELECT count(*) FROM co_txm").fetchone() == (3,)
        c.execute("INSERT INTO co_txm VALUES (3, 'after')")
        # not committed yet: another session sees nothing
        assert pg.admin_sql("SELECT count(*) FROM co_txm") == [["0"]]
        c.commit()
        # a duplicate among the rows so far: the statement that needs the server gets
        # the server's error, and the transaction is over
        c.execute("INSERT INTO co_txm VALUES (10, 'x')")
        c.execute("INSERT INTO co_txm VALUES (1, 'dup')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT count(*) FROM co_txm").fetchone() == (4,)
        c.rollback()
    assert pg.admin_sql("SELECT id, v FROM co_txm ORDER BY id") == [
        ["0", "before"], ["1", "before"], ["2", "before"], ["3", "after"]]


def test_rollback_of_a_coalesced_transaction_writes_nothing(front_txn: FrontDoor,
                                                            pg: PgServer) -> None:
    fresh_table(pg, "co_txr", "id int")
    with front_txn.connect(autocommit=False) as c:
        c.cursor().executemany("INSERT INTO co_txr VALUES (%s)", [(i,) for i in range(50)])
        c.rollback()
        with c.transaction():
            c.execute("INSERT INTO co_txr VALUES (1000)")
    assert pg.admin_sql("SELECT array_agg(id) FROM co_txr") == [["{1000}"]]
    assert events(front_txn)["coalesced_rows"] == 51


def test_the_unnamed_statement_follows_the_client_to_the_server(front: FrontDoor,
                                                                pg: PgServer) -> None:
    """libpq's PQprepare with an empty name, then PQexecPrepared: Bind without Parse. The
    proxy answered the Parse itself; when the Bind goes to a server (inside a transaction),
    the server must get that Parse first."""
    fresh_table(pg, "co_unn", "id int, v text")
    with front.connect() as c:
        pgc = c.pgconn
        r = pgc.prepare(b"", b"INSERT INTO co_unn VALUES ($1, $2)")
        assert r.status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pgc.exec_prepared(b"", [b"1", b"coalesced"])
        assert (r.status, r.command_status) == (psycopg.pq.ExecStatus.COMMAND_OK, b"INSERT 0 1")
        assert pgc.exec_(b"BEGIN").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pgc.exec_prepared(b"", [b"2", b"in a transaction"])
        assert (r.status, r.command_status) == (psycopg.pq.ExecStatus.COMMAND_OK, b"INSERT 0 1"), \
            r.error_message
        assert pgc.exec_(b"COMMIT").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pgc.exec_prepared(b"", [b"3", b"coalesced again"])
        assert r.command_status == b"INSERT 0 1"
    assert pg.admin_sql("SELECT id, v FROM co_unn ORDER BY id") == [
        ["1", "coalesced"], ["2", "in a transaction"], ["3", "coalesced again"]]
    assert events(front)["coalesced_rows"] == 2


def test_malformed_messages_in_a_coalescible_sequence_get_the_servers_answer(
        front: FrontDoor, pg: PgServer) -> None:
    """A Bind with too few parameters or a wrong format code, text that is not UTF-8: the
    sequence goes to the server as it came, so the client gets the server's own error."""
    fresh_table(pg, "co_bad_msg", "id int, v text")
    with front.connect() as c:
        pgc = c.pgconn
        assert pgc.prepare(b"s1", b"INSERT INTO co_bad_msg VALUES ($1, $2)").status == \
            psycopg.pq.ExecStatus.COMMAND_OK
        r = pgc.exec_prepared(b"s1", [b"1"])
        assert r.status == psycopg.pq.ExecStatus.FATAL_ERROR
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"08P01"
        r = pgc.exec_prepared(b"s1", [b"2", b"\xff\xfe"])
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"22021"
        r = pgc.exec_prepared(b"s1", [b"x", b"v"])
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"22P02"
        r = pgc.exec_prepared(b"s1", [b"3", b"ok"])
        assert r.command_status == b"INSERT 0 1"
    assert pg.admin_sql("SELECT id, v FROM co_bad_msg") == [["3", "ok"]]
    # the proxy looked at each: the wrong count and the bad UTF-8 went to the server as
    # they came, 'x' was taken and failed in its batch with the server's error, 3 landed
    ev = events(front)
    assert (ev["coalesce_forwarded"], ev["coalesce_failed"], ev["coalesced_rows"]) == (2, 1, 2)


def test_copy_from_stdin_is_coalesced_and_what_it_cannot_judge_goes_to_the_server(
        pg: PgServer, tmp_path: Path) -> None:
    fresh_table(pg, "co_copy", "id int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (id * 2) "
                "STORED")
    front = FrontDoor(pg, tmp_path, coalesce_buffer_bytes=200000)
    try:
        with front.connect() as c:
            with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                for i in range(1000):
                    cp.write_row((i, f"r{i}\t\\ é"))
            assert c.cursor().execute("SELECT 1").fetchone() == (1,)
            # no column list: every column but the generated one
            with c.cursor().copy("COPY co_copy FROM STDIN") as cp:
                cp.write(b"1000\tnull list\n1001\t\\N")  # the last line without newline
            # CRLF lines, which the proxy leaves to the server
            with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                cp.write(b"2000\tcrlf\r\n2001\tcrlf\r\n")
            # more than coalesce_buffer_bytes: handed to the server, all of it lands
            with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                for i in range(3000, 23000):
                    cp.write_row((i, "x" * 20))
            # a bad row: the server's own error, nothing of that COPY written
            with pytest.raises(psycopg.errors.BadCopyFileFormat) as e:
                with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                    cp.write(b"50000\tok\n50001\ttoo\tmany\n")
            assert "extra data after last expected column" in str(e.value)
            # a duplicate key among them: the server's error for this COPY alone
            with pytest.raises(psycopg.errors.UniqueViolation):
                with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                    cp.write(b"60000\tok\n7\tdup\n")
            # the client gives up: 57014, nothing written
            with pytest.raises(psycopg.errors.QueryCanceled):
                with c.cursor().copy("COPY co_copy (id, v) FROM STDIN") as cp:
                    cp.write(b"80000\tnever\n")
                    raise psycopg.errors.QueryCanceled("changed my mind")
        ev = events(front)
    finally:
        assert front.stop() == 0, front.proxy.log[-6000:]
    assert pg.admin_sql("SELECT count(*), count(*) FILTER (WHERE g = id * 2), "
                        "min(id) FILTER (WHERE id >= 50000) FROM co_copy") == [
        [str(1000 + 2 + 2 + 20000), str(1000 + 2 + 2 + 20000), ""]]
    assert pg.admin_sql("SELECT v FROM co_copy WHERE id IN (1, 1001) ORDER BY id") == [
        ["r1\t\\ é"], [""]]
    # coalesced: the first COPY and the one with a duplicate (its rows were taken); the
    # others (a last line without newline, CRLF, too large, a bad row) went to the server
    assert ev["coalesced_rows"] == 1000 + 2


def test_a_client_that_dies_mid_copy_writes_nothing(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_die", "id int")
    c = front.connect()
    cp_ctx = c.cursor().copy("COPY co_die FROM STDIN")
    cp = cp_ctx.__enter__()
    for i in range(1000):
        cp.write_row((i,))
    cp.write(b"")
    status, body, _ = front.proxy.admin_get("/metrics")
    assert promtext.value(promtext.parse(body), "lbp_frontend_clients",
                          state="coalescing") == 1  # the proxy holds the COPY
    # the connection drops mid-COPY, without a Terminate (a killed client)
    import os
    import socket
    sock = socket.socket(fileno=os.dup(c.pgconn.socket))
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    with front.connect() as other:
        other.execute("INSERT INTO co_die VALUES (-1)")
        assert other.execute("SELECT count(*) FROM co_die").fetchone() == (1,)
    # the fixture checks the proxy exits 0: no leak of the dead client's COPY


def test_sigterm_sends_held_rows_at_once_and_answers_them(pg: PgServer, tmp_path: Path) -> None:
    """A statement waits in a 60 s linger; SIGTERM sends it at once, it is answered after
    its commit, then the client is closed and the proxy exits 0."""
    import signal
    fresh_table(pg, "co_term", "id int")
    front = FrontDoor(pg, tmp_path, env={"LAKEBASE_PROXY_BATCH_MAX_DELAY_MS": "60000"})
    told: list[str] = []
    c = front.connect()

    def insert() -> None:
        told.append(c.execute("INSERT INTO co_term VALUES (1)").statusmessage or "")

    t = threading.Thread(target=insert)
    t.start()
    deadline = time.monotonic() + 30
    while events(front)["coalesced"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # taken aside and lingering
    assert pg.admin_sql("SELECT count(*) FROM co_term") == [["0"]]
    front.proxy.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert told == ["INSERT 0 1"]
    assert front.proxy.proc.wait(30) == 0, front.proxy.log[-4000:]
    assert pg.admin_sql("SELECT count(*) FROM co_term") == [["1"]]
    c.close()


def test_a_refused_transaction_answers_the_copy_that_needed_the_server(
        front_txn: FrontDoor, pg: PgServer) -> None:
    """In a coalesced transaction, a COPY the proxy hands to the server (CRLF lines) needs
    the rows so far written first; when the server refuses them, the COPY gets that error
    (its data is dropped) and the connection goes on."""
    fresh_table(pg, "co_txcopy", "id int PRIMARY KEY, v text")
    pg.admin_sql("INSERT INTO co_txcopy VALUES (1, 'stored')")
    with front_txn.connect(autocommit=False) as c:
        c.execute("INSERT INTO co_txcopy VALUES (1, 'dup')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with c.cursor().copy("COPY co_txcopy (id, v) FROM STDIN") as cp:
                cp.write(b"2\tcrlf\r\n3\tcrlf\r\n")
        c.rollback()
        c.execute("INSERT INTO co_txcopy VALUES (4, 'after')")
        c.commit()
    assert pg.admin_sql("SELECT id, v FROM co_txcopy ORDER BY id") == [["1", "stored"],
                                                                        ["4", "after"]]


def test_copy_csv_is_coalesced_with_postgresqls_reading(front: FrontDoor, pg: PgServer) -> None:
    fresh_table(pg, "co_csv", "id int PRIMARY KEY, a text, b text")
    data = (b'1,plain,"quoted, with comma"\n'
            b'2,,""\n'                           # NULL, then an empty string
            b'3,"multi\nline","say ""hi"""\n'
            b'4,a"b,c"d,tail\n'                  # quotes in the middle of a field
            b'5,"tab\there","back\\slash"\n')
    with front.connect() as c:
        with c.cursor().copy("COPY co_csv FROM STDIN WITH (FORMAT csv)") as cp:
            cp.write(data[:17])  # records split across messages
            cp.write(data[17:])
        # CRLF records: left to the server, which reads them as well
        with c.cursor().copy("COPY co_csv FROM STDIN (FORMAT csv)") as cp:
            cp.write(b'6,crlf,x\r\n7,crlf,y\r\n')
        # too many fields: the server's own error
        with pytest.raises(psycopg.errors.BadCopyFileFormat):
            with c.cursor().copy("COPY co_csv FROM STDIN CSV") as cp:
                cp.write(b'8,a,b,c\n')
    got = pg.admin_sql("SELECT id, coalesce(a, '<null>'), b FROM co_csv ORDER BY id")
    assert got == [["1", "plain", "quoted, with comma"], ["2", "<null>", ""],
                   ["3", "multi\nline", 'say "hi"'], ["4", "ab,cd", "tail"],
                   ["5", "tab\there", "back\\slash"], ["6", "crlf", "x"], ["7", "crlf", "y"]]
    assert events(front)["coalesced_rows"] == 5


def test_input_held_to_see_a_sequence_counts_against_the_budget(pg: PgServer,
                                                                tmp_path: Path) -> None:
    """A pipeline of 20,000 INSERTs up to one Sync is about 1.2 MB on the wire: past
    coalesce_buffer_bytes (1 MiB) the proxy does not hold it to look at, it relays it."""
    fresh_table(pg, "co_budget", "id int, v text")
    front = FrontDoor(pg, tmp_path, coalesce_buffer_bytes=1048576)
    try:
        with front.connect() as c:
            c.cursor().executemany("INSERT INTO co_budget VALUES (%s, %s)",
                                   [(i, "v") for i in range(20000)])
            # a small one still coalesces
            c.cursor().executemany("INSERT INTO co_budget VALUES (%s, %s)",
                                   [(i, "w") for i in range(100)])
        ev = events(front)
    finally:
        assert front.stop() == 0, front.proxy.log[-4000:]
    assert pg.admin_sql("SELECT count(*) FROM co_budget") == [["20100"]]
    assert ev["coalesced_rows"] == 100


def test_on_conflict_do_nothing_tells_each_statement_what_it_inserted(
        front_linger: FrontDoor, pg: PgServer) -> None:
    """DO NOTHING is coalesced, and each statement's count is its own: the set of
    statements told `INSERT 0 1` is exactly the set of rows in the table."""
    front = front_linger
    fresh_table(pg, "co_dn", "k int PRIMARY KEY, who text")
    pg.admin_sql("INSERT INTO co_dn VALUES (0, 'stored')")
    told: dict[str, int] = {}
    lock = threading.Lock()

    def client(c_id: int) -> None:
        with front.connect() as c:
            for i in range(40):
                key = (c_id * 3 + i) % 50  # keys shared between clients
                who = f"c{c_id}.{i}"
                n = c.execute("INSERT INTO co_dn (k, who) VALUES (%s, %s) "
                              "ON CONFLICT (k) DO NOTHING", (key, who)).rowcount
                with lock:
                    told[who] = n

    assert run_clients(12, client) == []
    rows = dict(pg.admin_sql("SELECT who, k::text FROM co_dn"))
    assert rows.pop("stored") == "0"
    assert {w for w, n in told.items() if n == 1} == set(rows)
    assert set(told.values()) <= {0, 1}
    with front.connect() as c:
        # a pipeline: the first of a key wins, the second is told 0
        cur = c.cursor()
        cur.executemany("INSERT INTO co_dn VALUES (%s, %s) ON CONFLICT (k) DO NOTHING",
                        [(100, "a"), (100, "b"), (101, "c"), (0, "d")], returning=False)
        assert cur.rowcount == 2
        # one statement, a key twice and a stored one
        cur.execute("INSERT INTO co_dn VALUES (200, 'x'), (200, 'y'), (201, 'z'), (0, 'w') "
                    "ON CONFLICT (k) DO NOTHING")
        assert cur.statusmessage == "INSERT 0 2"
    assert pg.admin_sql("SELECT k, who FROM co_dn WHERE k >= 100 ORDER BY k") == [
        ["100", "a"], ["101", "c"], ["200", "x"], ["201", "z"]]
    assert events(front)["coalesced_rows"] == 12 * 40 + 4 + 4


def test_psycopg_pipeline_mode_mixes_coalesced_and_relayed_statements(
        front: FrontDoor, pg: PgServer) -> None:
    """An explicit pipeline: INSERTs (coalesced) and SELECTs (relayed) in one stream, each
    answered in order, the SELECTs reading the INSERTs before them."""
    fresh_table(pg, "co_pipe", "id int PRIMARY KEY, v text")
    with front.connect() as c:
        with c.pipeline() as p:
            cur = c.cursor()
            counts = []
            for i in range(30):
                cur.execute("INSERT INTO co_pipe VALUES (%s, %s)", (i, f"p{i}"))
                if i % 10 == 9:
                    p.sync()  # ten INSERTs: one implicit transaction, coalesced
                    counts.append(c.execute("SELECT count(*) FROM co_pipe"))
                    p.sync()  # the SELECT alone: relayed
        assert [r.fetchone()[0] for r in counts] == [10, 20, 30]
    assert pg.admin_sql("SELECT count(*), min(v), max(id) FROM co_pipe") == [["30", "p0", "29"]]
    ev = events(front)
    assert ev["coalesced_rows"] == 30 and ev["coalesce_forwarded"] >= 3
