"""A Sink that streams rows to lakebase-proxy over the ingest protocol (docs/ingest-protocol.md).

Each batch the Batcher hands to write() becomes one flush unit (several when it would exceed
the proxy's max_flush_bytes): COPY text lines in Rows messages of about 256 KiB, then a Flush.
write() returns once the bytes are sent; the reader thread started by connect() matches the
answers (proxy_answers.Answers). The first FlushError or Error is raised from the next check(),
write(), flush() or close(). flush() and close() wait, bounded, until every unit is answered.

With exactly_once (`progress` set before connect(), which checks that the proxy speaks 1.1),
load_progress() reads the progress row through the proxy (ProgressQuery) once the task's first
row named its key, every unit goes out as a FlushProgress carrying the count of rows durable
once it commits, and each unit's answer is awaited before the next unit is sent: a count claims
every earlier row, so no unit may commit after an earlier one failed or before it.

Nothing is retried once rows have been sent. A unit in flight when the connection breaks may
already be committed (always possible in insert mode, 08007 "outcome unknown"), so sending it
again could insert it twice; the error is raised instead and Spark retries the whole task,
which is at-least-once delivery like any foreach sink. Only connecting is retried.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Iterator, List, Optional, Tuple

from .encoding import EncodedRow, copy_line
from .errors import ConfigurationError, ConnectionFailedError, EncodingError, WriteError
from .ingest_protocol import (HEADER_BYTES, RETRYABLE_SESSION_STATES, ROWS_MESSAGE_BYTES,
                              FlushError, IngestConnection, Progress, ProgressKey, ProtocolError,
                              ProxyError, decode_answer, encode_close, encode_flush,
                              encode_flush_progress, encode_progress_query, encode_rows,
                              take_frame)
from . import ingest_protocol
from .progress_key import ReplayCount
from .proxy_answers import Answers, Query, Unit, session_error
from .target import Target

log = logging.getLogger(__name__)

# A task with nothing to send for this long sends an empty Flush (answered by an Ack of 0
# rows), so that a long real-time-mode task keeps its session within [ingest] idle_timeout_s
# (default 600 s; keep it above this).
KEEPALIVE_S = 60.0


@dataclass(frozen=True)
class ProxySettings:
    """How to reach the proxy; the token stays out of repr()."""

    address: str
    token: str = field(default="", repr=False)
    client_name: str = "lakebase_foreachwriter"
    connect_timeout_s: float = 10.0
    open_timeout_s: float = 60.0  # Open waits for the proxy's catalog lookup
    send_timeout_s: float = 300.0  # a send held back this long by backpressure fails
    min_ack_timeout_s: float = 60.0  # close()/flush() wait at least this long for answers
    ack_bytes_per_s: float = 1_000_000.0  # ... and longer for large unanswered volumes
    connect_retries: int = 3
    retry_base_delay_s: float = 0.5


class ProxySink:
    """One ingest session (one connection) per Spark task; see the module docstring."""

    def __init__(self, settings: ProxySettings, target: Target) -> None:
        self._settings = settings
        self._target = target
        self._conn: Optional[IngestConnection] = None
        self._answers = Answers(settings.address)
        self._reader: Optional[threading.Thread] = None
        self._aborting = False
        self._next_flush_id = 1
        self._rows_sent = 0
        self._max_unit = 0
        self._max_message = 0
        self.keepalive_s = KEEPALIVE_S  # read by the Batcher's timer
        self.column_types: Tuple[str, ...] = ()
        # exactly_once: set before connect(); loaded by load_progress(); advanced by each
        # acked unit.
        self.progress: Optional[ReplayCount] = None

    # ---- session -------------------------------------------------------------------------

    def connect(self) -> None:
        """Hello and Open (retried while nothing is sent), then start the reader thread."""
        s = self._settings
        attempt = 0
        while True:
            try:
                self._conn = self._open_session()
                break
            except (OSError, ProtocolError, ProxyError) as exc:
                state = getattr(exc, "sqlstate", None)
                retryable = state is None or state in RETRYABLE_SESSION_STATES
                if not retryable or attempt >= s.connect_retries:
                    raise self._connect_error(exc) from exc
                delay = s.retry_base_delay_s * (2 ** attempt)
                log.warning("connecting to lakebase-proxy at %s failed (%s), retrying in %.2fs",
                            s.address, exc, delay)
                time.sleep(delay)
                attempt += 1
        self.column_types = tuple(pg_type for _, pg_type in self._conn.columns)
        hello = self._conn.hello
        # A Rows frame is 5 header bytes plus the body; a unit is the sum of Rows bodies.
        self._max_message = min(ROWS_MESSAGE_BYTES, hello.max_frame_bytes - HEADER_BYTES)
        self._max_unit = hello.max_flush_bytes
        self._conn.sock.settimeout(s.send_timeout_s)
        self._reader = threading.Thread(target=self._read_answers, args=(self._conn.sock,),
                                        name=f"lakebase-proxy-reader {s.client_name}",
                                        daemon=True)
        self._reader.start()

    def _open_session(self) -> IngestConnection:
        s, t = self._settings, self._target
        conn = IngestConnection(s.address, token=s.token, client_name=s.client_name,
                                timeout=s.connect_timeout_s)
        try:
            conn.sock.settimeout(s.open_timeout_s)
            conn.open(t.table, t.mode, t.columns, schema=t.schema or "", keys=t.primary_keys,
                      version_column=t.version_column or "",
                      coalesce_columns=t.coalesce_columns)
            if self.progress is not None and not conn.speaks_progress:
                hello = conn.hello
                raise ConfigurationError(
                    f"lakebase-proxy at {s.address} speaks ingest protocol "
                    f"{hello.major}.{hello.minor}; exactly_once=True through the proxy needs "
                    f"{hello.major}.{ingest_protocol.PROGRESS_MINOR} "
                    "(FlushProgress and ProgressQuery): upgrade the proxy or write directly")
        except BaseException:
            conn.abort()
            raise
        return conn

    def load_progress(self) -> None:
        """exactly_once: the committed counts of this (query, partition key) in this epoch and
        the previous one (progress_key.py), read with two ProgressQuery at once after
        progress.identify(); waits for their answers (and every unit's)."""
        progress = self.progress
        assert progress is not None
        key = self._progress_key(progress)
        keys = [key] + ([replace(key, epoch_id=key.epoch_id - 1)] if key.epoch_id > 0 else [])
        queries = [self._send_progress_query(k) for k in keys]
        self.flush()  # raises unless every query was answered with Progress
        progress.loaded(*(q.count for q in queries))

    def _send_progress_query(self, key: ProgressKey) -> Query:
        query = Query(self._next_flush_id)
        self._next_flush_id += 1
        self._answers.expect(query)
        self._send(encode_progress_query(query.request_id, key))
        return query

    @staticmethod
    def _progress_key(progress: ReplayCount) -> ProgressKey:
        assert progress.key is not None
        query_id, partition_key, epoch_id = progress.key
        return ProgressKey(progress.name.schema or "", progress.name.table, query_id,
                           partition_key, epoch_id)

    def finish_progress(self) -> None:
        """exactly_once: marks the epoch complete (an empty unit with its progress row;
        not carried into the next epoch, progress_key.py); waits for its answer."""
        assert self.progress is not None and self.progress.key is not None
        self._send_unit([], 0, complete=True)
        self.progress.complete = True

    def _connect_error(self, exc: BaseException) -> Exception:
        address = self._settings.address
        if isinstance(exc, ProxyError):
            return session_error(address, exc.sqlstate, exc.message)
        if isinstance(exc, socket.timeout):
            return ConnectionFailedError(f"lakebase-proxy at {address} did not answer within "
                                         f"the connect timeout: {exc}")
        return ConnectionFailedError(f"could not open an ingest session with lakebase-proxy at "
                                     f"{address} for {self._target.display_name}: {exc}")

    # ---- Sink ----------------------------------------------------------------------------

    def check(self) -> None:
        """Raises the first failure the proxy reported, if any (cheap: called on every row)."""
        error = self._answers.error
        if error is not None:
            raise error

    def write(self, rows: List[EncodedRow]) -> None:
        """Sends the rows as one or more flush units; returns without waiting for answers."""
        self.check()
        if not rows:
            return
        unit: List[bytes] = []
        size = 0
        for line in self._encode(rows):
            if unit and size + len(line) > self._max_unit:
                self._send_unit(unit, size)
                unit, size = [], 0
            unit.append(line)
            size += len(line)
        self._send_unit(unit, size)

    def keepalive(self) -> None:
        """An empty flush unit: resets the proxy's idle timer (see KEEPALIVE_S)."""
        self.check()
        unit = Unit(self._next_flush_id, self._rows_sent + 1, 0, 0)
        self._next_flush_id += 1
        self._answers.expect(unit)
        self._send(encode_flush(unit.flush_id))

    def flush(self) -> None:
        """Returns once every unit sent is acknowledged; raises the first failure."""
        self.check()
        timeout = self._ack_timeout()
        if not self._answers.wait_acked(timeout):
            raise self._timeout_error("acknowledgements", timeout)
        self.check()

    def close(self, discard: bool) -> None:
        """discard=False: Close, wait for every answer and CloseOk, raise a failure.
        discard=True: drop the connection at once (unflushed rows are lost; flushed units
        still commit, their answers are not read); never raises."""
        if self._conn is None:
            return
        if discard:
            self._abort()
            return
        try:
            self.check()
            timeout = self._ack_timeout()
            self._send(encode_close())
            if not self._answers.wait_closed(timeout):
                raise self._timeout_error("the answer to Close", timeout)
            self.check()
        finally:
            self._abort()

    @property
    def acked_rows(self) -> int:
        return self._answers.acked_rows

    # ---- sending -------------------------------------------------------------------------

    def _encode(self, rows: List[EncodedRow]) -> Iterator[bytes]:
        limit = min(self._max_unit, self._max_message)
        for i, row in enumerate(rows):
            try:
                line = copy_line(row.fields).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise EncodingError("*", f"row {self._rows_sent + i + 1} of this task is not "
                                         f"valid Unicode: {exc}") from exc
            if len(line) > limit:
                raise WriteError(
                    f"row {self._rows_sent + i + 1} of this task is {len(line)} bytes as COPY "
                    f"text, more than lakebase-proxy accepts in one message or flush ({limit} "
                    "bytes: [ingest] max_frame_bytes / max_flush_bytes)", "54000")
            yield line

    def _send_unit(self, lines: List[bytes], size: int, complete: bool = False) -> None:
        unit = Unit(self._next_flush_id, self._rows_sent + 1, len(lines), size)
        self._next_flush_id += 1
        # Registered before the Flush goes out: its answer may arrive before sendall returns.
        self._answers.expect(unit)
        messages = list(_rows_messages(lines, self._max_message)) if lines else [b""]
        progress = self.progress
        if progress is None:
            messages[-1] += encode_flush(unit.flush_id)
        else:
            messages[-1] += encode_flush_progress(unit.flush_id, self._progress_key(progress),
                                                  progress.committed + len(lines), complete)
        for message in messages:
            self._send(message)
        self._rows_sent += len(lines)
        if progress is not None:
            self.flush()  # its count claims every earlier row: nothing goes out before its Ack
            progress.committed += len(lines)

    def _send(self, data: bytes) -> None:
        assert self._conn is not None
        try:
            self._conn.send(data)
        except OSError as exc:
            # The proxy may have said why before closing (Error): prefer its words.
            reported = self._answers.wait_error(1.0)
            if reported is not None:
                raise reported from exc
            what = ("timed out: the proxy held the connection back (backpressure) for "
                    f"{self._settings.send_timeout_s:g}s" if isinstance(exc, socket.timeout)
                    else str(exc))
            raise ConnectionFailedError(
                f"sending to lakebase-proxy at {self._settings.address} failed: {what}; "
                f"{self._answers.pending()} flushes unacknowledged") from exc

    # ---- receiving -----------------------------------------------------------------------

    def _read_answers(self, sock: socket.socket) -> None:
        """The reader thread: decodes answers until CloseOk, Error or a broken connection."""
        buf = bytearray()
        try:
            while True:
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    continue  # nothing to read for a while is normal (a slow task)
                if not chunk:
                    raise ProtocolError("the proxy closed the connection")
                buf += chunk
                while (message := take_frame(buf)) is not None:
                    if not self._answers.handle(decode_answer(*message)):
                        return
        except (OSError, ProtocolError) as exc:
            if not self._aborting:
                self._answers.lost(exc)

    # ---- helpers -------------------------------------------------------------------------

    def _ack_timeout(self) -> float:
        s = self._settings
        return max(s.min_ack_timeout_s, self._answers.unacked_bytes() / s.ack_bytes_per_s)

    def _timeout_error(self, what: str, timeout: float) -> ConnectionFailedError:
        return ConnectionFailedError(
            f"lakebase-proxy at {self._settings.address} sent no {what} within {timeout:g}s; "
            f"{self._answers.pending()} flushes unacknowledged, their rows may or may not be "
            "committed")

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._aborting = True
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv()
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(5.0)
        conn.abort()


def _rows_messages(lines: List[bytes], max_body: int) -> Iterator[bytes]:
    """Rows frames of whole lines, each body at most max_body bytes (one line may be alone)."""
    batch: List[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > max_body:
            yield encode_rows(b"".join(batch))
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    yield encode_rows(b"".join(batch))
