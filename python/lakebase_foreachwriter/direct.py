"""A Sink that writes straight to PostgreSQL with psycopg 3: one transaction per batch."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import psycopg
from psycopg.types.string import StrDumperUnknown

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


def dedupe_rows(rows: Sequence[EncodedRow], key_indexes: Sequence[int],
                use_version: bool) -> List[EncodedRow]:
    """One row per primary key, sorted by key so that concurrent writers lock rows in one order.

    Without a version column the last row of a key wins; with one, the row with the highest
    version wins (a later row on equal versions, and a NULL version never beats a real one).
    """
    chosen: Dict[Tuple[Optional[str], ...], EncodedRow] = {}
    for row in rows:
        key = tuple(row.fields[i] for i in key_indexes)
        old = chosen.get(key)
        if old is None or not use_version or _not_older(row.version, old.version):
            chosen[key] = row
    return [chosen[k] for k in sorted(chosen, key=lambda k: tuple(v or "" for v in k))]


def _not_older(new: Any, old: Any) -> bool:
    if old is None:
        return True
    if new is None:
        return False
    return new >= old


class DirectSink:
    """Writes each batch in its own transaction; retries connection errors with backoff."""

    def __init__(self, settings: ConnectionSettings, target: stmts.Target, batch_size: int,
                 retry: RetryPolicy) -> None:
        self._settings = settings
        self._target = target
        self._retry = retry
        self._chunk = stmts.rows_per_statement(target, batch_size)
        self._key_indexes = [target.columns.index(k) for k in target.primary_keys]
        self._conn: Optional[psycopg.Connection] = None
        self.connect_count = 0
        # exactly_once (progress.py): set by the writer; advanced in each batch's transaction.
        self.progress: Optional[Progress] = None

    # ---- connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection now (open() calls this so that failures surface there)."""
        self._with_retries("connect", lambda conn: None)

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
        if self._target.mode == "upsert":
            rows = dedupe_rows(rows, self._key_indexes, self._target.version_column is not None)
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
        progress = self.progress
        with conn.cursor() as cur:
            # exactly_once: the progress row first (it locks this partition's row), and no
            # rows if this batch committed already (a retry after a lost commit).
            if progress is not None and not progress.claim(cur, received):
                conn.rollback()
                progress.committed_now(received)
                return
            if self._target.mode == "bulk-insert":
                with cur.copy(stmts.copy_statement(self._target)) as copy:
                    copy.write("".join(copy_line(r.fields) for r in rows))
            else:
                build = (stmts.upsert_statement if self._target.mode == "upsert"
                         else stmts.insert_statement)
                for start in range(0, len(rows), self._chunk):
                    chunk = rows[start:start + self._chunk]
                    params = [v for r in chunk for v in r.fields]
                    cur.execute(build(self._target, len(chunk)), params)
        conn.commit()
        if progress is not None:
            progress.committed_now(received)

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
