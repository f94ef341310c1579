"""The interface between the batching writer and a transport (direct psycopg, or the proxy)."""

from __future__ import annotations

from typing import List, Protocol, Tuple

from .encoding import EncodedRow


class Sink(Protocol):
    """Receives encoded rows in the order Spark produced them.

    - `connect()` opens the connection; open() calls it so that failures surface there.
    - `write(rows)` hands over one batch. A sink may commit it before returning (direct) or send
      it and return at once (a streaming transport).
    - `flush()` returns once every row written so far is committed, or raises.
    - `check()` raises a failure the transport learnt of in the background (a streaming
      transport's rejected flush), so that the next process() fails; called on every row.
    - `column_types` (after connect): format_type() of each target column, in the order of the
      target's columns; empty when the transport does not know them.
    - `close(discard)` releases the connection; with discard=True, rows not yet committed may be
      dropped (Spark will retry the task; units already sent to a proxy may still commit). It
      never raises for discard=True.
    """

    column_types: Tuple[str, ...]

    def connect(self) -> None: ...

    def write(self, rows: List[EncodedRow]) -> None: ...

    def flush(self) -> None: ...

    def check(self) -> None: ...

    def close(self, discard: bool) -> None: ...
