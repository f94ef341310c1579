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
