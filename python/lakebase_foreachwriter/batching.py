"""Collects encoded rows and hands them to the sink by size or by age.

A batch is flushed when it reaches `batch_size` rows (or `max_pending`, 0.1's max_queue_size,
if smaller: the rows a task holds never exceed it, and process() blocks while they are written),
or `batch_interval_ms` after its first row arrived. The age is checked on each add() and by one background thread per open writer,
which sleeps on a Condition until the oldest row is due (no polling). Flushes run under the
same lock as add(), so rows reach the sink in arrival order and never from two threads at once.
An error from a background flush is kept and raised from the next add() or from close(), and
so is an error the sink learnt of in the background (Sink.check()).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

from .encoding import EncodedRow
from .sink import Sink


class Batcher:
    def __init__(self, sink: Sink, batch_size: int, batch_interval_ms: float,
                 thread_name: str = "lakebase-flush", max_pending: int = 0) -> None:
        self._sink = sink
        self._batch_size = min(batch_size, max_pending) if max_pending > 0 else batch_size
        self._interval_s = batch_interval_ms / 1000.0
        self._cond = threading.Condition()
        self._pending: List[EncodedRow] = []
        self._first_at = 0.0
        self._error: Optional[BaseException] = None
        self._closing = False
        self._last_sent = time.monotonic()  # for the sink's keepalive (long real-time tasks)
        self._thread = threading.Thread(target=self._run_timer, name=thread_name, daemon=True)
        self._thread.start()

    def add(self, row: EncodedRow) -> None:
        with self._cond:
            self._raise_pending_error()
            self._sink.check()
            if not self._pending:
                self._first_at = time.monotonic()
                self._cond.notify()
            self._pending.append(row)
            if len(self._pending) >= self._batch_size or self._is_due():
                self._flush_locked()

    def run_locked(self, action: Callable[[], None]) -> None:
        """Runs action with the lock held: nothing else uses the sink meanwhile."""
        with self._cond:
            self._raise_pending_error()
            action()

    def flush(self) -> None:
        with self._cond:
            self._raise_pending_error()
            self._flush_locked()

    def close(self, discard: bool) -> None:
        """Stop the timer; flush (discard=False) or drop the pending rows; release the sink.

        Always releases the sink; with discard=False raises the flush's (or an earlier
        background flush's) error after releasing.
        """
        failure: Optional[BaseException] = None
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        with self._cond:
            try:
                if not discard:
                    self._raise_pending_error()
                    self._flush_locked()
                    self._sink.flush()
            except BaseException as exc:  # re-raised below, after the sink is released
                failure = exc
            finally:
                self._pending = []
                self._sink.close(discard=discard or failure is not None)
        if failure is not None:
            raise failure

    @property
    def pending_count(self) -> int:
        with self._cond:
            return len(self._pending)

    # ---- internals (called with the lock held) ---------------------------------------

    def _is_due(self) -> bool:
        return time.monotonic() - self._first_at >= self._interval_s

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        rows = self._pending
        self._sink.write(rows)
        self._last_sent = time.monotonic()
        # Only forget the rows once the sink has taken them: a failed write keeps them, and
        # the task fails (close(error) then discards them).
        self._pending = []

    def _idle_locked(self) -> None:
        """Nothing pending: sleep until a row arrives; a sink with `keepalive_s` (the proxy's
        session, which idles out) is sent a keepalive when nothing went out for that long, as
        in a real-time-mode task whose partition is quiet."""
        keepalive_s = getattr(self._sink, "keepalive_s", None)
        if keepalive_s is None:
            self._cond.wait()
            return
        due = self._last_sent + keepalive_s - time.monotonic()
        if due > 0:
            self._cond.wait(due)
            return
        try:
            self._sink.keepalive()
        except BaseException as exc:
            self._error = exc
        self._last_sent = time.monotonic()

    def _run_timer(self) -> None:
        with self._cond:
            while not self._closing:
                if self._error is not None:
                    self._cond.wait()
                    continue
                if not self._pending:
                    self._idle_locked()
                    continue
                remaining = self._first_at + self._interval_s - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                try:
                    self._flush_locked()
                except BaseException as exc:
                    self._error = exc
