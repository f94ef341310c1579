"""Exactly-once progress rows through the ingest port (protocol 1.1: FlushProgress,
ProgressQuery) against a real PostgreSQL: each unit's progress row commits with its rows and
only with them, whatever batch it shares; a failed unit writes none.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from lakebase_foreachwriter.ingest_protocol import (Ack, FlushError, IngestConnection, Progress,
                                                    ProgressKey, ProxyError, encode_flush,
                                                    frame)
from pgharness import PgServer
from proxyproc import start_proxy
from test_ingest import TableLocked, count, make_table, rows_text, sql

PROGRESS = "lbp_progress_t"
MODES = {"i": "insert", "b": "bulk-insert", "u": "upsert"}


@pytest.fixture
def proxy(pg: PgServer, tmp_path: Path):
    p, addr = start_proxy(pg, tmp_path)
    yield p, addr
    assert p.stop() == 0, p.log


def key(partition: int, epoch: int = 1, query: str = "q1", table: str = PROGRESS) -> ProgressKey:
    return ProgressKey("", table, query, partition, epoch)


def progress_rows(pg: PgServer, table: str = PROGRESS) -> list[list[str]]:
    return sql(pg, f'SELECT query_id, partition_id, epoch_id, rows_committed, complete '
                   f'FROM "{table}" ORDER BY 1, 2, 3')


def open_stream(addr: str, table: str, mode: str) -> IngestConnection:
    c = IngestConnection(addr)
    assert c.speaks_progress
    c.open(table, MODES[mode], ["id", "v"], keys=["id"] if mode == "u" else [])
    return c


@pytest.mark.parametrize("mode", ["i", "b", "u"])
def test_units_sharing_a_batch_each_write_their_own_progress(pg: PgServer, proxy,
                                                             mode: str) -> None:
    """Three clients' units in one batch: a good one, one the server rejects, and two units of
    one key (the last count wins). Only the good units' progress rows land, with their rows."""
    proc, addr = proxy
    table = f"evprog_{mode}"
    make_table(pg, table, "id int PRIMARY KEY, v int")
    sql(pg, f'DROP TABLE IF EXISTS "{PROGRESS}"')
    good, bad, twice = (open_stream(addr, table, mode) for _ in range(3))
    with TableLocked(pg, table):
        good.send_rows(rows_text([(str(k), "1") for k in range(50)]))
        good.flush_progress(key(0), 50)
        bad.send_rows(rows_text([("100", "1"), ("101", "x")]))  # the server rejects "x"
        bad.flush_progress(key(1), 2)
        twice.send_rows(rows_text([("200", "1")]))
        twice.flush_progress(key(2), 1)
        twice.send_rows(rows_text([("201", "1"), ("202", "1")]))
        twice.flush_progress(key(2), 3)
        proc.wait_log(r"rows_received=55 ")
    assert good.read_answer() == Ack(1, 50)
    a = bad.read_answer()
    assert isinstance(a, FlushError) and (a.sqlstate, a.row) == ("22P02", 2), a
    assert [twice.read_answer() for _ in range(2)] == [Ack(1, 1), Ack(2, 2)]
    assert count(pg, table) == 53
    assert progress_rows(pg) == [["q1", "0", "1", "50", "f"], ["q1", "2", "1", "3", "f"]]
    for c in (good, bad, twice):
        c.close()


def test_progress_query_reads_what_committed_and_newer_epochs_prune(pg: PgServer,
                                                                     proxy) -> None:
    proc, addr = proxy
    make_table(pg, "evprogq", "id int, v int")
    sql(pg, 'DROP TABLE IF EXISTS "lbp_progress_q"')
    c = open_stream(addr, "evprogq", "i")
    # a partition's key changes from epoch to epoch (the writer derives it from the epoch's
    # first row): the newer epoch prunes the query's older rows whatever their key
    k1, k2 = key(3, 1, table="lbp_progress_q"), key(7, 2, table="lbp_progress_q")
    other = key(3, 1, query="q2", table="lbp_progress_q")
    c.query_progress(k1)  # creates the table
    assert c.read_answer() == Progress(1, 0, False)
    c.send_rows(rows_text([("1", "1"), ("2", "2")]))
    c.flush_progress(k1, 2)
    c.flush_progress(k1, 2, complete=True)  # an empty unit that only completes the epoch
    c.query_progress(k1)
    assert [c.read_answer() for _ in range(3)] == [Ack(2, 2), Ack(3, 0), Progress(4, 2, True)]
    c.flush_progress(other, 0)
    assert c.read_answer() == Ack(5, 0)
    c.send_rows(rows_text([("3", "3")]))
    c.flush_progress(k2, 1)
    assert c.read_answer() == Ack(6, 1)
    assert progress_rows(pg, "lbp_progress_q") == [["q1", "7", "2", "1", "f"],
                                                   ["q2", "3", "1", "0", "f"]]
    c.close()


@pytest.mark.parametrize("bad,state", [
    (dict(table="bad\x01name"), "42602"), (dict(partition=-1), "22023"),
    (dict(query=""), "22023"), (dict(query="q" * 256), "22023"), (dict(rows=-5), "22023"),
    (dict(complete=2), "22023")])
def test_a_progress_row_with_bad_values_fails_its_unit_only(pg: PgServer, proxy, bad,
                                                            state) -> None:
    proc, addr = proxy
    make_table(pg, "evprogbad", "id int, v int")
    c = open_stream(addr, "evprogbad", "i")
    k = key(bad.get("partition", 0), query=bad.get("query", "q1"),
            table=bad.get("table", PROGRESS))
    body = (struct.pack("!Q", 1) + k.encode()
            + struct.pack("!qB", bad.get("rows", 1), bad.get("complete", 0)))
    c.send_rows(rows_text([("1", "1")]))
    c.send(frame(b"P", body))
    a = c.read_answer()
    assert isinstance(a, FlushError) and (a.flush_id, a.sqlstate) == (1, state), a
    c.send_rows(rows_text([("2", "2")]))
    c.send(encode_flush(2))
    assert c.read_answer() == Ack(2, 1)  # the stream goes on
    assert sql(pg, "SELECT id FROM evprogbad") == [["2"]]
    c.close()


@pytest.mark.parametrize("msg", [b"P", b"Q"])
def test_a_truncated_progress_message_is_a_protocol_violation(pg: PgServer, proxy,
                                                              msg: bytes) -> None:
    proc, addr = proxy
    make_table(pg, "evprogtr", "id int, v int")
    c = open_stream(addr, "evprogtr", "i")
    body = struct.pack("!Q", 1) + key(0).encode()
    c.send(frame(msg, body[:-3]))
    with pytest.raises(ProxyError) as e:
        c.read_answer()
    assert e.value.sqlstate == "08P01"
    c.abort()


def test_an_old_style_client_is_unchanged(pg: PgServer, proxy) -> None:
    """A 1.0 Hello is served as before, and HelloOk says 1.1."""
    proc, addr = proxy
    make_table(pg, "evprogold", "id int, v int")
    s = socket.create_connection(tuple(addr.rsplit(":", 1)[0:1]) + (int(addr.rsplit(":", 1)[1]),))
    s.sendall(frame(b"H", struct.pack("!HH", 1, 0) + b"old\0\0"))
    head = s.recv(5)
    assert head[:1] == b"h"
    body = s.recv(struct.unpack("!I", head[1:])[0] - 4)
    assert struct.unpack("!HH", body[:4]) == (1, 1)
    s.close()
