"""Bookkeeping of the flush units a ProxySink sent and the proxy's answers to them.

The sink's writing thread registers each unit before its Flush goes out; the reader thread
matches the proxy's answers (which come in Flush order) against them. Both meet on one
Condition. The first failure (a FlushError, an Error, a lost connection) is kept: the writing
side raises it from its next call, and no later answer replaces it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Optional, Tuple, Union

from .errors import ConfigurationError, ConnectionFailedError, LakebaseWriterError, WriteError
from .ingest_protocol import (NAME_STATES, SESSION_STATE_CLASSES, Ack, FlushError, Progress,
                              ProtocolError, ProxyError)


@dataclass(frozen=True)
class Unit:
    """One flush unit on the wire: its id, where its rows start in the task, its size."""

    flush_id: int
    first_row: int  # 1-based number, within this task, of the unit's first row
    rows: int
    nbytes: int


@dataclass
class Query:
    """A ProgressQuery on the wire (answered in turn with the units): its Progress, once come."""

    request_id: int
    answer: Optional[Progress] = None
    nbytes: int = 0

    @property
    def count(self) -> Tuple[int, bool]:
        """(rows_committed, complete) of the answer; only once it came."""
        assert self.answer is not None
        return self.answer.rows_committed, self.answer.complete


def session_error(address: str, sqlstate: str, message: str) -> LakebaseWriterError:
    """The exception for an Error message from the proxy (the session is over)."""
    if sqlstate in NAME_STATES:
        return ConfigurationError(f"lakebase-proxy at {address}: {message} ({sqlstate})",
                                  sqlstate)
    if sqlstate.startswith(SESSION_STATE_CLASSES):
        return ConnectionFailedError(
            f"lakebase-proxy at {address} ended the session: {sqlstate} {message}", sqlstate)
    return WriteError(message, sqlstate, context=f"from lakebase-proxy at {address}")


def flush_error(answer: FlushError, unit: Unit) -> WriteError:
    if answer.row:
        where = (f"row {answer.row} of flush {unit.flush_id} ({unit.rows} rows), "
                 f"row {unit.first_row + answer.row - 1} of this task")
    else:
        where = f"flush {unit.flush_id} of {unit.rows} rows"
    return WriteError(answer.message, answer.sqlstate, detail=answer.detail, row=answer.row,
                      context=f"{where}; nothing of this flush was committed")


class Answers:
    """Units awaiting an answer, the first failure, and whether the session has ended."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._cond = threading.Condition()
        self._waiting: Deque[Union[Unit, Query]] = deque()
        self._error: Optional[BaseException] = None
        self._ended = False  # no more answers will come (CloseOk, Error, or connection lost)
        self._close_ok = False
        self.acked_rows = 0

    @property
    def error(self) -> Optional[BaseException]:
        return self._error  # read without the lock: one reference, set once

    def expect(self, unit: Union[Unit, Query]) -> None:
        with self._cond:
            self._waiting.append(unit)

    def unacked_bytes(self) -> int:
        with self._cond:
            return sum(u.nbytes for u in self._waiting)

    # ---- called by the reader thread ---------------------------------------------------

    def handle(self, answer: object) -> bool:
        """Takes one decoded message; returns False when no more answers will follow."""
        with self._cond:
            try:
                if isinstance(answer, (Ack, FlushError, Progress)):
                    self._answer_unit(answer)
                    return True
                if isinstance(answer, ProxyError):
                    self._fail(session_error(self._address, answer.sqlstate, answer.message))
                elif answer == "close_ok":
                    if self._waiting:
                        raise ProtocolError(f"CloseOk with {len(self._waiting)} flushes "
                                            "unanswered")
                    self._close_ok = True
                else:
                    raise ProtocolError(f"unexpected message {answer!r}")
            except ProtocolError as exc:
                self._fail(ConnectionFailedError(
                    f"lakebase-proxy at {self._address} broke the ingest protocol: {exc}"))
            self._end()
            return False

    def lost(self, exc: BaseException) -> None:
        """The connection broke (or the proxy closed it) while answers were still possible."""
        with self._cond:
            if not self._ended:
                pending = len(self._waiting)
                self._fail(ConnectionFailedError(
                    f"connection to lakebase-proxy at {self._address} lost ({exc}) with "
                    f"{pending} flushes unacknowledged; their rows may or may not be committed"))
                self._end()

    def _answer_unit(self, answer: Union[Ack, FlushError, Progress]) -> None:
        if not self._waiting:
            raise ProtocolError(f"answer {answer!r} to no outstanding flush")
        unit = self._waiting[0]
        if isinstance(unit, Query):
            self._answer_query(unit, answer)
            return
        if isinstance(answer, Progress) or answer.flush_id != unit.flush_id:
            raise ProtocolError(f"answer {answer!r} while flush {unit.flush_id} is due")
        if isinstance(answer, Ack):
            if answer.rows != unit.rows:
                raise ProtocolError(f"flush {unit.flush_id} acknowledged with {answer.rows} "
                                    f"rows, {unit.rows} were sent")
            self.acked_rows += unit.rows
        else:
            self._fail(flush_error(answer, unit))  # type: ignore[arg-type]
        self._waiting.popleft()
        self._cond.notify_all()

    def _answer_query(self, query: Query, answer: Union[Ack, FlushError, Progress]) -> None:
        ident = answer.request_id if isinstance(answer, Progress) else answer.flush_id
        if isinstance(answer, Ack) or ident != query.request_id:
            raise ProtocolError(f"answer {answer!r} while progress query {query.request_id} "
                                "is due")
        if isinstance(answer, FlushError):
            self._fail(WriteError(answer.message, answer.sqlstate, detail=answer.detail,
                                  context=f"reading the exactly_once progress through "
                                          f"lakebase-proxy at {self._address}"))
        else:
            query.answer = answer
        self._waiting.popleft()
        self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._cond.notify_all()

    def _end(self) -> None:
        self._ended = True
        self._cond.notify_all()

    # ---- called by the writing side ----------------------------------------------------

    def wait_error(self, timeout_s: float) -> Optional[BaseException]:
        """The stored failure, waiting up to timeout_s for the reader to report one."""
        self._wait_for(lambda: self._error is not None or self._ended, timeout_s)
        return self._error

    def wait_acked(self, timeout_s: float) -> bool:
        """True once every unit is answered (or a failure is stored); False on timeout."""
        return self._wait_for(lambda: not self._waiting or self._error is not None
                              or self._ended, timeout_s)

    def wait_closed(self, timeout_s: float) -> bool:
        """True once CloseOk arrived (or the session ended otherwise); False on timeout."""
        return self._wait_for(lambda: self._ended, timeout_s)

    def pending(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _wait_for(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True
