"""What a second implementation of docs/ingest-protocol.md found (issue 13), byte for byte
against the running proxy: each case sends raw frames and asserts what the client was told."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from pgharness import PgServer
from proxyproc import ProxyProcess, start_proxy

MAX_FRAME = 1 << 20


def frame(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def cstr(b: bytes) -> bytes:
    return b + b"\0"


def str_list(items: list[bytes]) -> bytes:
    return struct.pack("!H", len(items)) + b"".join(cstr(i) for i in items)


HELLO = frame(b"H", struct.pack("!HH", 1, 0) + cstr(b"conformance") + cstr(b""))


def open_body(table: bytes, cols: list[bytes], mode: bytes = b"i") -> bytes:
    return (cstr(b"") + cstr(table) + mode + str_list(cols) + str_list([]) + cstr(b"")
            + str_list([]))


class Raw:
    """One raw connection: send bytes, read frames until the proxy closes."""

    def __init__(self, addr: str) -> None:
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> tuple[bytes, bytes] | None:
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!I", self.buf[1:5])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        n = 1 + struct.unpack("!I", self.buf[1:5])[0]
        msg, self.buf = self.buf[:n], self.buf[n:]
        return msg[:1], msg[5:]

    def close(self) -> None:
        self.sock.close()


def error_of(body: bytes) -> tuple[str, bytes]:
    state, message = body.split(b"\0")[:2]
    return state.decode(), message


@pytest.fixture(scope="module")
def proxy(pg: PgServer, tmp_path_factory: pytest.TempPathFactory):
    proc, addr = start_proxy(pg, tmp_path_factory.mktemp("conf"),
                             ingest={"max_frame_bytes": MAX_FRAME})
    yield proc, addr
    proc.stop()


def hello(addr: str) -> Raw:
    c = Raw(addr)
    c.send(HELLO)
    kind, _ = c.read()
    assert kind == b"h"
    return c


@pytest.mark.parametrize("ncols", [1601, 65535])
def test_open_with_too_many_columns_is_22023(proxy: tuple[ProxyProcess, str],
                                            ncols: int) -> None:
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(b"t", [b"c%d" % i for i in range(ncols)])))
    kind, body = c.read()
    assert kind == b"E"
    state, message = error_of(body)
    assert state == "22023", message
    assert b"1600" in message
    c.close()


@pytest.mark.parametrize("name,shown", [
    (b"up\xff", b'"up\\xff"'),
    (b"a\x01b", b'"a\\x01b"'),
    (b"del\x7f", b'"del\\x7f"'),
])
def test_echoed_names_are_valid_utf8(proxy: tuple[ProxyProcess, str], name: bytes,
                                     shown: bytes) -> None:
    c = hello(proxy[1])
    c.send(frame(b"O", open_body(name, [b"id"])))
    kind, body = c.read()
    assert kind == b"E"
    state, message = error_of(body)
    assert state == "42602"
    message.decode("utf-8")  # raises if not UTF-8
    assert shown in message, message
    assert not any(b < 0x20 or b == 0x7f for b in message), message
    c.close()
