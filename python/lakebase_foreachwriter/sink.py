"""The interface between the batching writer and a transport (direct psycopg, later the proxy)."""

from __future__ import annotations

from typing import List, Protocol

from .encoding import EncodedRow


class Sink(Protocol):
    """Receives encoded rows in the order Spark produced them.

    - `write(rows)` hands over one batch. A sink may commit it before returning (direct) or send
      it and return at once (a streaming transport).
    - `flush()` returns once every row written so far is committed, or raises.
    - `close(discard)` releases the connection; with discard=True, rows not yet committed are
      dropped (Spark will retry the task). It never raises for discard=True.
    """

    def write(self, rows: List[EncodedRow]) -> None: ...

    def flush(self) -> None: ...

    def close(self, discard: bool) -> None: ...
