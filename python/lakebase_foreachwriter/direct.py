"""A Sink that writes straight to PostgreSQL with psycopg 3: one transaction per batch."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import psycopg
from psycopg.types.string import StrDumperUnknown

from . import catalog
from . import sql as stmts
from .encoding import EncodedRow, copy_line
from .errors import ConnectionFailedError, WriteError
from .progress import Progress

log = logging.getLogger(__name__)

CredentialProvider = Callable[[], Tuple[str, str]]

# SQLSTATEs after which the same batch may succeed on a new connection or a new attempt:
# connection exceptions, shutdown/startup of the server, resource shortage, and the two
# concurrency failures (serialization, deadlock). Data errors (22xxx, 23xxx...) are not here.
RETRYABLE_PREFIXES = ("08", "53")
RETRYABLE_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach the server; `password` stays out of repr()."""

    host: str
    port: int = 5432
    dbname: str = "databricks_postgres"
    sslmode: str = "require"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    credential_provider: Optional[CredentialProvider] = field(default=None, repr=False)
    connect_timeout_s: int = 10
    keepalives_idle_s: int = 30
    keepalives_interval_s: int = 10
    keepalives_count: int = 3
    application_name: str = "lakebase_foreachwriter"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay_s: float = 0.5

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2**attempt."""
        ceiling = self.base_delay_s * (2 ** attempt)
        return random.uniform(ceiling / 2, ceiling)


def is_login_rejected(exc: BaseException) -> bool:
    """The server refused the credentials: retrying the same login cannot help.

    libpq reports a failed login without a SQLSTATE, so the server's words are matched.
    """
    return isinstance(exc, psycopg.OperationalError) and "authentication failed" in str(exc)


def is_retryable(exc: BaseException) -> bool:
    """True for connection trouble and transient server states, False for data errors."""
    if not isinstance(exc, psycopg.Error) or is_login_rejected(exc):
        return False
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: the connection broke (or could not be made) before the server answered.
        return isinstance(exc, psycopg.OperationalError) or isinstance(exc, psycopg.InterfaceError)
    return state.startswith(RETRYABLE_PREFIXES) or state in RETRYABLE_STATES


def upsert_rounds(rows: Sequence[EncodedRow], key_indexes: Sequence[int],
                  coalesce_indexes: Sequence[int], use_version: bool
                  ) -> List[List[EncodedRow]]:
    """The batch as rounds of at most one row per key, each sorted by key, such that applying
    the rounds in order, each as one INSERT ... ON CONFLICT, equals applying `rows` one at a
    time in arrival order (docs/ingest-protocol.md 6.3).

    Without a version column the rows of a key merge exactly into one: the last row, with each
    coalesce column's last non-NULL value (NULL when all are NULL: the stored value stays).
    With one, whether a row applies depends on the stored version at that moment, so round i
    holds the i-th row of every key: no version is compared here (PostgreSQL compares them,
    with its own ordering of text, NaN and NULL).
    """
    per_key: Dict[Tuple[Optional[str], ...], List[EncodedRow]] = {}
    for row in rows:
        per_key.setdefault(tuple(row.fields[i] for i in key_indexes), []).append(row)
    keys = sorted(per_key, key=lambda k: tuple((v is not None, v or "") for v in k))
    if not use_version:
        return [[_merge(per_key[k], coalesce_indexes) for k in keys]]
    depth = max((len(v) for v in per_key.values()), default=0)
    return [[per_key[k][i] for k in keys if i < len(per_key[k])] for i in range(depth)]


def _merge(rows: List[EncodedRow], coalesce_indexes: Sequence[int]) -> EncodedRow:
    last = rows[-1]
    if len(rows) == 1 or not coalesce_indexes:
        return last
    fields = list(last.fields)
    for i in coalesce_indexes:
        fields[i] = next((r.fields[i] for r in reversed(rows) if r.fields[i] is not None), None)
    return EncodedRow(tuple(fields), last.version)


class DirectSink:
    """Writes each batch in its own transaction; retries connection errors with backoff."""

    def __init__(self, settings: ConnectionSettings, target: stmts.Target, batch_size: int,
                 retry: RetryPolicy, multirow: bool = True) -> None:
        self._settings = settings
        self._target = target
        self._retry = retry
        self._chunk = stmts.rows_per_statement(target, batch_size) if multirow else 1
        self._key_indexes = [target.columns.index(k) for k in target.primary_keys]
        self._coalesce_indexes = [target.columns.index(c) for c in target.coalesce_columns]
        self._conn: Optional[psycopg.Connection] = None
        self.column_types: Tuple[str, ...] = ()
        self.connect_count = 0
        # exactly_once (progress.py): set by the writer; advanced in each batch's transaction.
        self.progress: Optional[Progress] = None

    # ---- connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (open() calls this so that failures surface there) and
        look the table and its columns up in the catalog (ConfigurationError if missing)."""
        self._with_retries("connect", self._resolve)

    def _resolve(self, conn: psycopg.Connection) -> None:
        found = catalog.resolve(conn, self._target)
        self._target, self.column_types = found.target, found.types

    def _credentials(self) -> Tuple[Optional[str], Optional[str]]:
        provider = self._settings.credential_provider
        if provider is None:
            return self._settings.username, self._settings.password
        user, password = provider()
        return user, password

    def _open_connection(self) -> psycopg.Connection:
        s = self._settings
        user, password = self._credentials()
        conn = psycopg.connect(
            host=s.host, port=s.port, dbname=s.dbname, user=user, password=password,
            sslmode=s.sslmode, connect_timeout=s.connect_timeout_s, keepalives=1,
            keepalives_idle=s.keepalives_idle_s, keepalives_interval=s.keepalives_interval_s,
            keepalives_count=s.keepalives_count, application_name=s.application_name,
            autocommit=False)
        # Send text parameters untyped so that PostgreSQL parses each into its column's type.
        conn.adapters.register_dumper(str, StrDumperUnknown)
        self.connect_count += 1
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    # ---- Sink ----------------------------------------------------------------------------

    def write(self, rows: List[EncodedRow]) -> None:
        if not rows:
            return
        received = len(rows)  # what the progress row counts: rows as Spark gave them
        self._with_retries(f"write of {len(rows)} rows",
                           lambda conn: self._write_batch(conn, rows, received))

    def with_connection(self, what: str, action: Callable[[psycopg.Connection], None]) -> None:
        """Runs action on the connection, reconnecting and retrying like a write."""
        self._with_retries(what, action)

    def flush(self) -> None:
        """Nothing to do: write() commits before it returns."""

    def check(self) -> None:
        """Nothing to do: failures are raised by write() itself."""

    def close(self, discard: bool) -> None:
        conn = self._conn
        if conn is not None and discard:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
        self._drop_connection()

    # ---- statements ----------------------------------------------------------------------

    def _write_batch(self, conn: psycopg.Connection, rows: List[EncodedRow],
                     received: int) -> None:
        t = self._target
        progress = self.progress
        with conn.cursor() as cur:
            # exactly_once: the progress row first (it locks this partition's row), and no
            # rows if this batch committed already (a retry after a lost commit).
            if progress is not None and not progress.claim(cur, received):
                conn.rollback()
                progress.committed_now(received)
                return
            if t.mode == "bulk-insert":
                with cur.copy(stmts.copy_statement(t)) as copy:
                    copy.write("".join(copy_line(r.fields) for r in rows))
            elif t.mode == "upsert":
                for round_rows in upsert_rounds(rows, self._key_indexes, self._coalesce_indexes,
                                                t.version_column is not None):
                    self._execute(cur, stmts.upsert_statement, round_rows)
            else:
                self._execute(cur, stmts.insert_statement, rows)
        conn.commit()
        if progress is not None:
            progress.committed_now(received)

    def _execute(self, cur: psycopg.Cursor, build: Callable[[stmts.Target, int], Any],
                 rows: List[EncodedRow]) -> None:
        """Multi-row VALUES statements of up to self._chunk rows; with chunk 1
        (use_multirow_sql=False) one statement per row, pipelined by executemany."""
        if self._chunk == 1:
            cur.executemany(build(self._target, 1), [r.fields for r in rows])
            return
        for start in range(0, len(rows), self._chunk):
            chunk = rows[start:start + self._chunk]
            cur.execute(build(self._target, len(chunk)), [v for r in chunk for v in r.fields])

    def _with_retries(self, what: str, action: Callable[[psycopg.Connection], None]) -> None:
        attempt = 0
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._open_connection()
                action(self._conn)
                return
            except psycopg.Error as exc:
                self._after_failure(exc)
                if is_login_rejected(exc):
                    raise ConnectionFailedError(
                        f"login to {self._settings.host}:{self._settings.port} was rejected: "
                        f"{_server_message(exc)}") from exc
                if not is_retryable(exc):
                    raise WriteError(_server_message(exc), exc.sqlstate) from exc
                if attempt >= self._retry.max_retries:
                    raise ConnectionFailedError(
                        f"{what} to {self._target.display_name} on {self._settings.host}:"
                        f"{self._settings.port} failed after {attempt + 1} attempts: "
                        f"{_server_message(exc)}") from exc
                delay = self._retry.delay(attempt)
                log.warning("%s failed (%s), retrying in %.2fs", what, exc.sqlstate or exc, delay)
                time.sleep(delay)
                attempt += 1

    def _after_failure(self, exc: psycopg.Error) -> None:
        """Roll back a failed transaction; drop the connection when it is no longer usable."""
        conn = self._conn
        if conn is None:
            return
        if conn.closed or conn.broken or (is_retryable(exc) and exc.sqlstate is None):
            self._drop_connection()
            return
        try:
            conn.rollback()
        except psycopg.Error:
            self._drop_connection()


def _server_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = primary or str(exc).strip()
    if diag is None:
        return text
    for label, extra in (("DETAIL", diag.message_detail), ("CONTEXT", diag.context)):
        if extra:
            text += f"; {label}: {extra}"
    return text
