"""LakebaseForeachWriter: the object users pass to `writeStream.foreach(...)`.

Spark pickles it on the driver and calls open / process* / close in each task. __init__ only
validates and keeps plain data (WriterConfig); the connection, the encoder and the flush thread
exist between open() and close() and are never pickled.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from . import discovery, validation
from .batching import Batcher
from .encoding import EncodedRow, RowEncoder, session_time_zone
from .errors import ConfigurationError, DiscoveryError
from .progress_key import ProgressName, ReplayCount, split_progress_table, task_query_id
from .proxy_sink import ProxySettings, ProxySink
from .sink import Sink
from .target import Target
from .validation import DEFAULT_PROGRESS_TABLE, WriterConfig

log = logging.getLogger(__name__)


class LakebaseForeachWriter:
    """Writes a streaming DataFrame's rows into a Lakebase (PostgreSQL) table.

    mode="insert" (multi-row INSERT), "upsert" (INSERT ... ON CONFLICT; a batch equals applying
    its rows one at a time, with lakebase-foreachwriter 0.1's version and coalesce rule) or
    "bulk-insert" (COPY). Accepts every argument of 0.1 (see python/README.md). Rows are flushed every `batch_size` rows or
    `batch_interval_ms` after the first unflushed row, and at the end of each task.

    With proxy="host:port" (or "unix:/path"), rows are streamed to a lakebase-proxy, which
    holds the server's address and credentials (proxy_token is its shared secret); each flush
    is acknowledged once committed.
    """

    def __init__(
        self,
        username: Optional[str] = None,
        password: Optional[str] = None,
        table: Optional[str] = None,
        df: Any = None,
        *,
        credential_provider: Optional[Callable[[], Tuple[str, str]]] = None,
        lakebase_name: Optional[str] = None,
        host: Optional[str] = None,
        read_write_dns: Optional[str] = None,
        sslmode: Optional[str] = "require",
        mode: str = "insert",
        primary_keys: Optional[Sequence[str]] = None,
        upsert_version_column: Optional[str] = None,
        upsert_coalesce_columns: Union[Sequence[str], str, None] = None,
        batch_size: int = 1000,
        batch_interval_ms: float = 100,
        use_multirow_sql: Optional[bool] = None,
        max_queue_size: int = 10_000,
        max_retries: int = 3,
        retry_base_delay_s: float = 0.5,
        port: int = 5432,
        dbname: str = "databricks_postgres",
        proxy: Optional[str] = None,
        proxy_token: Optional[str] = None,
        exactly_once: bool = False,
        progress_table: str = DEFAULT_PROGRESS_TABLE,
        query_name: Optional[str] = None,
    ) -> None:
        v = validation
        v.check_proxy(proxy, proxy_token)
        mode = v.check_mode(mode)
        schema_name, table_name = v.parse_table(table)
        columns = v.dataframe_columns(df)
        keys, version, coalesce = v.check_upsert_options(
            mode, columns, primary_keys, upsert_version_column, upsert_coalesce_columns)
        ignored = v.ignored_options(mode, primary_keys=primary_keys,
                                    upsert_version_column=upsert_version_column,
                                    upsert_coalesce_columns=upsert_coalesce_columns)
        warnings = [f"mode {mode!r} does not use {', '.join(ignored)}: ignored (only upsert "
                    "uses them)"] if ignored else []
        if proxy is not None:
            v.check_nothing_proxy_holds(
                username=username, password=password, credential_provider=credential_provider,
                lakebase_name=lakebase_name, read_write_dns=read_write_dns, host=host)
            dns = lakebase_name = None
        else:
            lakebase_name, dns, more = v.check_target(lakebase_name, read_write_dns, host)
            warnings += more + v.check_credentials(username, password, credential_provider)
        v.check_connection(port, dbname, sslmode)
        v.check_tuning(batch_size, batch_interval_ms, max_retries, retry_base_delay_s,
                       max_queue_size, use_multirow_sql)
        zone = session_time_zone(df)
        if lakebase_name is not None:
            dns = _resolve_host(lakebase_name)
        progress = _check_exactly_once(exactly_once, progress_table, query_name, proxy)
        for warning in warnings:
            log.warning("LakebaseForeachWriter for %s: %s", table, warning)
        self._config = WriterConfig(
            schema_name=schema_name, table_name=table_name, columns=columns, mode=mode,
            primary_keys=keys, version_column=version, coalesce_columns=coalesce,
            host=dns, port=port, dbname=dbname, sslmode=sslmode or "require",
            username=username, password=password, credential_provider=credential_provider,
            batch_size=batch_size, batch_interval_ms=batch_interval_ms, max_retries=max_retries,
            retry_base_delay_s=retry_base_delay_s, max_queue_size=max_queue_size,
            use_multirow_sql=use_multirow_sql, session_time_zone=zone, table_as_given=table,
            lakebase_name=lakebase_name, proxy=proxy, proxy_token=proxy_token,
            progress_table=progress, query_name=query_name)
        self._reset_runtime()

    # ---- pickling: only the configuration travels -----------------------------------------

    def _reset_runtime(self) -> None:
        self._batcher: Optional[Batcher] = None
        self._encoder: Optional[RowEncoder] = None
        self._sink: Optional[Sink] = None
        self._progress: Optional[ReplayCount] = None  # exactly_once

    def __getstate__(self) -> Dict[str, Any]:
        return {"_config": self._config}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self._config = state["_config"]
        self._reset_runtime()

    @property
    def config(self) -> WriterConfig:
        return self._config

    # ---- 0.1's readable attributes (read-only; the password is not among them) ------------

    table = property(lambda self: self._config.table_as_given,
                     doc="The table as given: 'table' or 'schema.table'.")
    mode = property(lambda self: self._config.mode, doc="'insert', 'upsert' or 'bulk-insert'.")
    columns = property(lambda self: [c.name for c in self._config.columns],
                       doc="The DataFrame's column names, in order.")
    primary_keys = property(lambda self: list(self._config.primary_keys))
    upsert_version_column = property(lambda self: self._config.version_column)
    upsert_coalesce_columns = property(lambda self: list(self._config.coalesce_columns))
    batch_size = property(lambda self: self._config.batch_size)
    batch_interval_ms = property(lambda self: self._config.batch_interval_ms)
    use_multirow_sql = property(lambda self: self._config.use_multirow_sql is not False)
    max_queue_size = property(lambda self: self._config.max_queue_size)
    max_retries = property(lambda self: self._config.max_retries)
    retry_base_delay_s = property(lambda self: self._config.retry_base_delay_s)
    username = property(lambda self: self._config.username or "")
    credential_provider = property(lambda self: self._config.credential_provider)
    host = property(lambda self: self._config.host)
    lakebase_name = property(lambda self: self._config.lakebase_name)

    # ---- Spark's ForeachWriter contract ---------------------------------------------------

    def open(self, partition_id: int, epoch_id: int) -> bool:
        """Connect and start the flush timer; raises on failure; returns True."""
        if self._batcher is not None:  # a previous task on this object did not close
            self._batcher.close(discard=True)
            self._reset_runtime()
        cfg = self._config
        sink = self._make_sink(partition_id, epoch_id)
        try:
            sink.connect()
            # The target's column types decide how TimestampType values are written.
            self._encoder = RowEncoder(cfg.columns, cfg.version_column, sink.column_types or None,
                                       cfg.session_time_zone)
            if cfg.progress_table is not None:
                self._progress = self._make_progress(sink, partition_id, epoch_id)
        except BaseException:
            sink.close(discard=True)
            self._reset_runtime()
            raise
        self._sink = sink
        self._batcher = Batcher(sink, cfg.batch_size, cfg.batch_interval_ms,
                                thread_name=f"lakebase-flush-p{partition_id}-e{epoch_id}",
                                max_pending=cfg.max_queue_size)
        return True

    def process(self, row: Any) -> None:
        if self._batcher is None or self._encoder is None:
            raise RuntimeError("LakebaseForeachWriter.process() called before open()")
        progress = self._progress
        if progress is None:
            self._batcher.add(self._encoder.encode(row))
            return
        if progress.key is None:  # exactly_once: the epoch's first row names the partition
            encoded = self._encoder.encode(row)
            self._load_progress(progress, encoded)
            if not progress.skip():
                self._batcher.add(encoded)
        elif not progress.skip():  # a replayed row already in the table is dropped
            self._batcher.add(self._encoder.encode(row))

    def close(self, error: Optional[BaseException]) -> None:
        """Flush and commit (error is None) or discard (error given); always disconnects.

        Without an error, a failed final flush raises, so Spark fails (and retries) the task.
        """
        batcher, sink, progress = self._batcher, self._sink, self._progress
        self._reset_runtime()
        if batcher is None:
            return
        if error is None and progress is not None and progress.key is not None:
            try:  # exactly_once: mark the epoch complete once all its rows are
                batcher.flush()
                if isinstance(sink, ProxySink):
                    sink.finish_progress()
                else:
                    sink.with_connection("marking the epoch complete", progress.finish)
            except BaseException:
                batcher.close(discard=True)
                raise
        batcher.close(discard=error is not None)

    # ---- internals ------------------------------------------------------------------------

    def _make_progress(self, sink: Sink, partition_id: int, epoch_id: int) -> ReplayCount:
        """exactly_once: this task's count, read at its first row (_load_progress)."""
        cfg = self._config
        assert cfg.progress_table is not None
        if isinstance(sink, ProxySink):
            assert sink.progress is not None
            return sink.progress
        from . import progress as progress_mod  # the direct path: psycopg is there
        from .direct import DirectSink

        assert isinstance(sink, DirectSink)
        sink.progress = progress_mod.Progress(cfg.progress_table, task_query_id(cfg.query_name),
                                              partition_id, epoch_id)
        return sink.progress

    def _load_progress(self, progress: ReplayCount, first_row: EncodedRow) -> None:
        """exactly_once: what this (query, partition, epoch) has committed, the partition known
        by the epoch's first row (progress_key.py), read under the Batcher's lock (its timer
        may be using the sink). A complete epoch is not skipped: in real-time mode Spark calls
        close(None) also for an epoch that query.stop() cut short, and replays it after a
        restart reading on past its old end; the replay's leading rows_committed rows are
        skipped, and whatever follows them is new."""
        assert self._batcher is not None and self._sink is not None
        progress.identify(first_row)
        sink = self._sink
        if isinstance(sink, ProxySink):
            self._batcher.run_locked(sink.load_progress)
        else:
            load = progress.load  # type: ignore[attr-defined]  (progress.Progress)
            self._batcher.run_locked(
                lambda: sink.with_connection("reading the exactly_once progress", load))

    def _make_sink(self, partition_id: int, epoch_id: int) -> Sink:
        cfg = self._config
        target = Target(schema=cfg.schema_name, table=cfg.table_name,
                        columns=tuple(c.name for c in cfg.columns), mode=cfg.mode,
                        primary_keys=cfg.primary_keys, version_column=cfg.version_column,
                        coalesce_columns=cfg.coalesce_columns)
        if cfg.proxy is not None:
            sink = ProxySink(ProxySettings(
                address=cfg.proxy, token=cfg.proxy_token or "",
                client_name=f"spark partition {partition_id} epoch {epoch_id}",
                connect_retries=cfg.max_retries, retry_base_delay_s=cfg.retry_base_delay_s),
                target)
            if cfg.progress_table is not None:  # exactly_once: connect() reads it
                sink.progress = ReplayCount(cfg.progress_table, task_query_id(cfg.query_name),
                                            partition_id, epoch_id)
            return sink
        assert cfg.host is not None
        # psycopg only for the direct path: the proxy path runs without it.
        from .direct import ConnectionSettings, DirectSink, RetryPolicy

        settings = ConnectionSettings(
            host=cfg.host, port=cfg.port, dbname=cfg.dbname, sslmode=cfg.sslmode,
            username=cfg.username, password=cfg.password,
            credential_provider=cfg.credential_provider)
        return DirectSink(settings, target, cfg.batch_size,
                          RetryPolicy(cfg.max_retries, cfg.retry_base_delay_s),
                          multirow=cfg.use_multirow_sql is not False)

    def __repr__(self) -> str:
        cfg = self._config
        table = f"{cfg.schema_name}.{cfg.table_name}" if cfg.schema_name else cfg.table_name
        where = f"proxy={cfg.proxy!r}" if cfg.proxy is not None else f"host={cfg.host!r}"
        return f"LakebaseForeachWriter(table={table!r}, mode={cfg.mode!r}, {where})"


def _check_exactly_once(exactly_once: Any, progress_table: Any, query_name: Any,
                        proxy: Optional[str]) -> Optional[ProgressName]:
    if not isinstance(exactly_once, bool):
        raise ConfigurationError(f"exactly_once must be True or False, not {exactly_once!r}")
    if not exactly_once:
        return None
    if query_name is not None and (not isinstance(query_name, str) or not query_name):
        raise ConfigurationError(f"query_name must be a non-empty string, not {query_name!r}")
    if proxy is not None:  # the proxy writes the rows: no psycopg here
        return split_progress_table(progress_table)
    from . import progress as progress_mod  # the direct path's: psycopg is there

    return progress_mod.parse_progress_table(progress_table)


def _resolve_host(lakebase_name: str) -> str:
    try:
        return discovery.resolve(lakebase_name).host
    except (ConfigurationError, DiscoveryError):
        raise
    except Exception as exc:  # the SDK's own configuration / auth errors
        raise DiscoveryError(f"resolving lakebase_name {lakebase_name!r} with databricks-sdk "
                             f"failed: {exc}") from exc
