"""Small ingest-protocol steps the Python tests share (the client is the package's own)."""

from __future__ import annotations

from lakebase_foreachwriter.ingest_protocol import IngestConnection


def flush_once(addr: str, table: str, cols: list[str], rows: bytes, **open_kw: object) -> object:
    """One session: open table (insert, unless mode= says otherwise), send rows (COPY text),
    one Flush; returns its answer (Ack or FlushError) after a clean Close."""
    mode = str(open_kw.pop("mode", "insert"))
    c = IngestConnection(addr, token=str(open_kw.pop("token", "")), client_name="test")
    c.open(table, mode, cols, **open_kw)
    c.send_rows(rows)
    c.flush()
    answer = c.read_answer()
    assert c.close() == []
    return answer
