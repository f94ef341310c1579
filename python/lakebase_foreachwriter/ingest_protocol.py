"""Client side of the lakebase-proxy ingest protocol (docs/ingest-protocol.md), over a socket.

The protocol's constants, its one frame reader (`take_frame`) and its one address parser
(`parse_address`) live here; every other module uses them from here.

`IngestConnection` is a plain blocking client: `hello` and `open` wait for their answers; rows
and flushes are pipelined (`send_rows`, `flush` return at once) and answers are read with
`read_answer`, in Flush order. It holds no thread: the writer's proxy sink adds one.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

VERSION = (1, 1)
# The minor version that brought FlushProgress and ProgressQuery (exactly_once).
PROGRESS_MINOR = 1
MODES = {"insert": b"i", "upsert": b"u", "bulk-insert": b"b"}

# Message types (section 3): client to proxy ...
MSG_HELLO, MSG_OPEN, MSG_ROWS, MSG_FLUSH, MSG_CLOSE = b"H", b"O", b"D", b"F", b"X"
MSG_FLUSH_PROGRESS, MSG_PROGRESS_QUERY = b"P", b"Q"  # 1.1
# ... and proxy to client.
MSG_HELLO_OK, MSG_OPEN_OK, MSG_ACK = b"h", b"o", b"a"
MSG_FLUSH_ERROR, MSG_ERROR, MSG_CLOSE_OK = b"e", b"E", b"c"
MSG_PROGRESS = b"p"  # 1.1

HEADER_BYTES = 5  # type byte + 4-byte big-endian length (which counts itself)
# The largest answer this client accepts. The biggest the proxy sends is OpenOk, a name and a
# type per column: well under this even for PostgreSQL's 1600 columns.
MAX_ANSWER_BYTES = 1024 * 1024
ROWS_MESSAGE_BYTES = 256 * 1024  # the body size this client aims at for one Rows message

# SQLSTATEs the proxy uses for a refused session (section 7) worth another attempt: too many
# clients, proxy stopping.
RETRYABLE_SESSION_STATES = frozenset({"53300", "57P01"})
# Error classes after which the session, not the data, is at fault: wrong token (28), too many
# clients or resources (53), shutdown (57), connection trouble and idle timeout (08).
SESSION_STATE_CLASSES = ("08", "28", "53", "57")

# Open refused because a name does not resolve (docs/ingest-protocol.md, Open): no such table,
# no such column, several columns equal ignoring case, two asked names meaning one column.
NAME_STATES = frozenset({"42P01", "42703", "42702", "42701"})

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)$")


class ProtocolError(Exception):
    """The proxy answered something this client does not understand, or the socket broke."""


class ProxyError(Exception):
    """An Error message: the proxy refused the session (it closes the connection)."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message


@dataclass(frozen=True)
class Ack:
    flush_id: int
    rows: int


@dataclass(frozen=True)
class FlushError:
    flush_id: int
    sqlstate: str
    message: str
    detail: str
    row: int


@dataclass(frozen=True)
class Progress:
    """The answer to a ProgressQuery: the row's count and whether its epoch is complete."""

    request_id: int
    rows_committed: int
    complete: bool


@dataclass(frozen=True)
class ProgressKey:
    """A progress row's key and table (docs/ingest-protocol.md, FlushProgress)."""

    schema: str  # "" = the server's search_path
    table: str
    query_id: str
    partition_id: int
    epoch_id: int

    def encode(self) -> bytes:
        return (_cstr(self.schema) + _cstr(self.table) + _cstr(self.query_id)
                + struct.pack("!qq", self.partition_id, self.epoch_id))


@dataclass(frozen=True)
class HelloOk:
    major: int
    minor: int
    max_frame_bytes: int
    max_flush_bytes: int
    server_name: str


def _cstr(s: str) -> bytes:
    b = s.encode("utf-8")
    if b"\0" in b:
        raise ValueError("names and strings may not contain NUL")
    return b + b"\0"


def _cstr_list(items: Sequence[str]) -> bytes:
    return struct.pack("!H", len(items)) + b"".join(_cstr(s) for s in items)


def frame(msg_type: bytes, body: bytes) -> bytes:
    return msg_type + struct.pack("!I", len(body) + 4) + body


def take_frame(buf: bytearray) -> Optional[Tuple[bytes, bytes]]:
    """Removes the first complete frame from buf and returns (type, body); None if buf does not
    hold a whole frame yet. A length below 4 or above MAX_ANSWER_BYTES is a ProtocolError."""
    if len(buf) < HEADER_BYTES:
        return None
    (length,) = struct.unpack_from("!I", buf, 1)
    if length < 4 or length > MAX_ANSWER_BYTES:
        raise ProtocolError(f"bad frame length {length} from the proxy")
    if len(buf) < 1 + length:
        return None
    kind, body = bytes(buf[:1]), bytes(buf[HEADER_BYTES:1 + length])
    del buf[:1 + length]
    return kind, body


def encode_hello(client_name: str, token: str = "") -> bytes:
    return frame(MSG_HELLO, struct.pack("!HH", *VERSION) + _cstr(client_name) + _cstr(token))


def encode_open(schema: str, table: str, mode: str, columns: Sequence[str],
                keys: Sequence[str] = (), version_column: str = "",
                coalesce_columns: Sequence[str] = ()) -> bytes:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}")
    body = (_cstr(schema) + _cstr(table) + MODES[mode] + _cstr_list(columns) + _cstr_list(keys)
            + _cstr(version_column) + _cstr_list(coalesce_columns))
    return frame(MSG_OPEN, body)


def encode_rows(rows: bytes) -> bytes:
    return frame(MSG_ROWS, rows)


def encode_flush(flush_id: int) -> bytes:
    return frame(MSG_FLUSH, struct.pack("!Q", flush_id))


def encode_flush_progress(flush_id: int, key: ProgressKey, rows_committed: int,
                          complete: bool = False) -> bytes:
    """A Flush whose unit also writes the progress row (rows_committed after this unit)."""
    return frame(MSG_FLUSH_PROGRESS, struct.pack("!Q", flush_id) + key.encode()
                 + struct.pack("!qB", rows_committed, 1 if complete else 0))


def encode_progress_query(request_id: int, key: ProgressKey) -> bytes:
    return frame(MSG_PROGRESS_QUERY, struct.pack("!Q", request_id) + key.encode())


def encode_close() -> bytes:
    return frame(MSG_CLOSE, b"")


class _Reader:
    """Fields of one message body, in order."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.body):
            raise ProtocolError("truncated message from the proxy")
        (value,) = struct.unpack_from(fmt, self.body, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        end = self.body.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("unterminated string from the proxy")
        s = self.body[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return s


def decode_answer(msg_type: bytes, body: bytes):
    r = _Reader(body)
    if msg_type == MSG_ACK:
        return Ack(r.take("!Q"), r.take("!Q"))
    if msg_type == MSG_FLUSH_ERROR:
        return FlushError(r.take("!Q"), r.string(), r.string(), r.string(), r.take("!Q"))
    if msg_type == MSG_ERROR:
        return ProxyError(r.string(), r.string())
    if msg_type == MSG_HELLO_OK:
        return HelloOk(r.take("!H"), r.take("!H"), r.take("!I"), r.take("!Q"), r.string())
    if msg_type == MSG_OPEN_OK:
        n = r.take("!H")
        return [(r.string(), r.string()) for _ in range(n)]
    if msg_type == MSG_CLOSE_OK:
        return "close_ok"
    if msg_type == MSG_PROGRESS:
        return Progress(r.take("!Q"), r.take("!q"), bool(r.take("!B")))
    raise ProtocolError(f"unknown message type {msg_type!r} from the proxy")


def parse_address(address: str) -> Tuple[int, object]:
    """`host:port`, `[v6]:port` or `unix:/absolute/path` -> (family, sockaddr).

    ValueError for anything else (no port, a port outside 1-65535, a relative socket path)."""
    if not isinstance(address, str):
        raise ValueError(f"proxy address {address!r} is not a string")
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path.startswith("/") or "\0" in path:
            raise ValueError(f"proxy address {address!r}: the socket path must be absolute")
        return socket.AF_UNIX, path
    host, sep, port = address.rpartition(":")
    if (not sep or not _HOST.match(host) or not port.isdigit() or len(port) > 5
            or not 1 <= int(port) <= 65535):
        raise ValueError(f"proxy address {address!r} is not host:port or unix:/path")
    host = host[1:-1] if host.startswith("[") else host
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


class IngestConnection:
    """One ingest session: one table, one mode, many pipelined flush units."""

    def __init__(self, address: str, *, token: str = "", client_name: str = "python",
                 timeout: Optional[float] = 30.0) -> None:
        family, sockaddr = parse_address(address)
        if family == socket.AF_UNIX:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(sockaddr)
            except OSError:
                self.sock.close()
                raise
        else:
            self.sock = socket.create_connection(sockaddr, timeout=timeout)  # type: ignore[arg-type]
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.next_flush_id = 1
        try:
            self.hello: HelloOk = self._expect(encode_hello(client_name, token), HelloOk)
        except BaseException:
            self.sock.close()  # the caller never gets the object: do not leak the socket
            raise
        self.columns: List[Tuple[str, str]] = []

    # -- plumbing

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self) -> Tuple[bytes, bytes]:
        while True:
            message = take_frame(self._buf)
            if message is not None:
                return message
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ProtocolError("the proxy closed the connection")
            self._buf += chunk

    def _expect(self, request: bytes, kind: type):
        self.send(request)
        answer = decode_answer(*self.read_message())
        if isinstance(answer, ProxyError):
            raise answer
        if isinstance(answer, kind):
            return answer
        raise ProtocolError(f"unexpected answer {answer!r}")

    # -- the protocol

    def open(self, table: str, mode: str, columns: Sequence[str], *, schema: str = "",
             keys: Sequence[str] = (), version_column: str = "",
             coalesce_columns: Sequence[str] = ()) -> List[Tuple[str, str]]:
        """Opens the stream; returns (column, PostgreSQL type) as the table has them."""
        self.columns = self._expect(encode_open(schema, table, mode, columns, keys,
                                                version_column, coalesce_columns), list)
        return self.columns

    def send_rows(self, rows: bytes) -> None:
        """Whole rows in COPY text, each ending in a newline."""
        self.send(encode_rows(rows))

    def flush(self) -> int:
        """Ends the current flush unit; returns its id. The answer comes via read_answer()."""
        fid = self.next_flush_id
        self.next_flush_id += 1
        self.send(encode_flush(fid))
        return fid

    @property
    def speaks_progress(self) -> bool:
        """The proxy knows FlushProgress and ProgressQuery (protocol 1.1 or later)."""
        return self.hello.minor >= PROGRESS_MINOR

    def flush_progress(self, key: ProgressKey, rows_committed: int,
                       complete: bool = False) -> int:
        """Flush with a progress row; returns its id (answered via read_answer())."""
        fid = self.next_flush_id
        self.next_flush_id += 1
        self.send(encode_flush_progress(fid, key, rows_committed, complete))
        return fid

    def query_progress(self, key: ProgressKey) -> int:
        """ProgressQuery; returns its request id (answered in turn via read_answer())."""
        rid = self.next_flush_id
        self.next_flush_id += 1
        self.send(encode_progress_query(rid, key))
        return rid

    def read_answer(self):
        """The next Ack, FlushError or Progress, in order; raises ProxyError on Error."""
        answer = decode_answer(*self.read_message())
        if isinstance(answer, ProxyError):
            raise answer
        if not isinstance(answer, (Ack, FlushError, Progress)):
            raise ProtocolError(f"unexpected answer {answer!r}")
        return answer

    def close(self, outstanding: int = 0) -> list:
        """Sends Close, reads the `outstanding` answers still due and CloseOk; returns them."""
        self.send(encode_close())
        answers = [self.read_answer() for _ in range(outstanding)]
        kind, body = self.read_message()
        if decode_answer(kind, body) != "close_ok":
            raise ProtocolError("expected CloseOk")
        self.sock.close()
        return answers

    def abort(self) -> None:
        self.sock.close()
