"""The ingest-protocol client's pure parts: one frame reader, one address parser (pure)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lakebase_foreachwriter.ingest_protocol import (MAX_ANSWER_BYTES, ProtocolError, frame,
                                                    parse_address, take_frame)


def test_take_frame_returns_whole_frames_and_leaves_the_rest():
    ack = frame(b"a", struct.pack("!QQ", 1, 2))
    buf = bytearray(ack + ack[:7])
    assert take_frame(buf) == (b"a", struct.pack("!QQ", 1, 2))
    assert buf == bytearray(ack[:7])
    assert take_frame(buf) is None  # truncated: wait for more
    buf += ack[7:]
    assert take_frame(buf) == (b"a", struct.pack("!QQ", 1, 2)) and buf == bytearray()


@pytest.mark.parametrize("header", [
    b"a\x00\x00\x00\x03",                                   # shorter than its own length field
    b"a" + struct.pack("!I", MAX_ANSWER_BYTES + 1),          # larger than any answer
    b"a\xff\xff\xff\xff",
])
def test_take_frame_refuses_hostile_lengths_before_buffering(header):
    with pytest.raises(ProtocolError, match="bad frame length"):
        take_frame(bytearray(header))


def test_take_frame_accepts_the_largest_allowed_answer():
    body = b"x" * (MAX_ANSWER_BYTES - 4)
    assert take_frame(bytearray(frame(b"o", body))) == (b"o", body)


@pytest.mark.parametrize("address,expected", [
    ("127.0.0.1:5480", (socket.AF_INET, ("127.0.0.1", 5480))),
    ("proxy.local:1", (socket.AF_INET, ("proxy.local", 1))),
    ("[::1]:65535", (socket.AF_INET6, ("::1", 65535))),
    ("unix:/run/lakebase-proxy.sock", (socket.AF_UNIX, "/run/lakebase-proxy.sock")),
])
def test_parse_address(address, expected):
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", [
    "no-port", "h:", ":5480", "h:0", "h:65536", "h:99999999", "h:-1", "h: 1", "unix:relative",
    "unix:", "::1:5480", "ho st:1", 5480,
])
def test_parse_address_refuses(address):
    with pytest.raises(ValueError):
        parse_address(address)


def test_proxy_path_imports_no_psycopg():
    """The proxy sink and the writer build without psycopg (the direct path's dependency)."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError("psycopg blocked by the test")
sys.meta_path.insert(0, Block())
from pyspark.sql import types as T
from lakebase_foreachwriter import LakebaseForeachWriter
from lakebase_foreachwriter.proxy_sink import ProxySink
w = LakebaseForeachWriter(table="t", df=T.StructType([T.StructField("a", T.LongType())]),
                          proxy="127.0.0.1:5480")
assert "lakebase_foreachwriter.sql" not in sys.modules
print("ok")
"""
    package = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(package), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_answers_match_a_progress_query_in_its_turn():
    """A ProgressQuery's answer comes in order with the Flushes' (docs/ingest-protocol.md):
    its Progress is kept; a Progress where a Flush is due, or for another request, breaks the
    protocol; a FlushError for it is the failure raised."""
    from lakebase_foreachwriter.errors import ConnectionFailedError, WriteError
    from lakebase_foreachwriter.ingest_protocol import Ack, FlushError, Progress
    from lakebase_foreachwriter.proxy_answers import Answers, Query, Unit

    answers = Answers("test")
    query = Query(2)
    answers.expect(Unit(1, 1, 5, 50))
    answers.expect(query)
    assert answers.handle(Ack(1, 5)) and answers.handle(Progress(2, 7, True))
    assert query.answer == Progress(2, 7, True) and answers.pending() == 0
    assert answers.error is None and answers.acked_rows == 5

    early = Answers("test")
    early.expect(Unit(1, 1, 5, 50))
    early.expect(Query(2))
    assert not early.handle(Progress(2, 7, False))
    assert isinstance(early.error, ConnectionFailedError)
    assert "while flush 1 is due" in str(early.error)

    other = Answers("test")
    other.expect(Query(3))
    assert not other.handle(Progress(4, 0, False))
    assert "while progress query 3 is due" in str(other.error)

    refused = Answers("test")
    refused.expect(Query(1))
    assert refused.handle(FlushError(1, "42602", "invalid progress table name", "", 0))
    assert isinstance(refused.error, WriteError) and refused.error.sqlstate == "42602"
    assert refused.pending() == 0
