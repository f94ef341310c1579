"""Driver-side checks of LakebaseForeachWriter's arguments, each failing with a clear message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .errors import ConfigurationError
from .ingest_protocol import parse_address
from .schema import Column, columns_from_schema

# exactly_once's progress table when none is named (progress.py; kept here, psycopg-free,
# because the writer's signature needs it on the proxy path too).
DEFAULT_PROGRESS_TABLE = "lakebase_writer_progress"

MODES = ("insert", "upsert", "bulk-insert")
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated
NOT_ORDERABLE = ("binary", "array", "struct", "map")

@dataclass(frozen=True)
class WriterConfig:
    """Everything the executors need, as plain picklable data."""

    schema_name: Optional[str]
    table_name: str
    columns: Tuple[Column, ...]
    mode: str
    primary_keys: Tuple[str, ...]
    version_column: Optional[str]
    coalesce_columns: Tuple[str, ...]
    host: Optional[str]  # None when writing through the proxy
    port: int
    dbname: str
    sslmode: str
    username: Optional[str]
    password: Optional[str] = field(repr=False)
    credential_provider: Optional[Callable[[], Tuple[str, str]]] = field(repr=False)
    batch_size: int
    batch_interval_ms: float
    max_retries: int
    retry_base_delay_s: float
    max_queue_size: int = 10_000
    use_multirow_sql: Optional[bool] = None  # None: multi-row VALUES, this package's default
    session_time_zone: Optional[str] = None  # spark.sql.session.timeZone on the driver
    table_as_given: str = ""
    lakebase_name: Optional[str] = None
    proxy: Optional[str] = None  # "host:port" or "unix:/path" of a lakebase-proxy
    proxy_token: Optional[str] = field(default=None, repr=False)
    # exactly_once (progress.py): None, or where the progress rows live.
    progress_table: Optional[Any] = None
    query_name: Optional[str] = None


def fail(message: str) -> None:
    raise ConfigurationError(message)


def parse_table(table: Any) -> Tuple[Optional[str], str]:
    """`table` or `schema.table` -> (schema or None, table)."""
    if not isinstance(table, str) or not table.strip():
        fail("table is required: 'table' or 'schema.table'")
    parts = table.split(".")
    if len(parts) > 2 or any(not p for p in parts):
        fail(f"table {table!r} is not well-formed: expected 'table' or 'schema.table' "
             "(names are used as written, case-sensitive, and must not contain dots)")
    for part in parts:
        check_identifier(part, "table name")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def check_identifier(name: str, what: str) -> None:
    if "\x00" in name:
        fail(f"{what} {name!r} contains a NUL character")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        fail(f"{what} {name!r} is longer than PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit")


def check_mode(mode: Any) -> str:
    """One of MODES, in any letter case (0.1 lower-cases it too)."""
    lowered = mode.lower() if isinstance(mode, str) else mode
    if lowered not in MODES:
        fail(f"mode must be one of {', '.join(repr(m) for m in MODES)}, not {mode!r}")
    return lowered


def dataframe_columns(df: Any) -> Tuple[Column, ...]:
    schema = getattr(df, "schema", df)
    if df is None or not hasattr(schema, "fields"):
        fail("df is required: the streaming DataFrame (or its StructType schema) being written")
    columns, problems = columns_from_schema(schema)
    if problems:
        fail("unsupported column types: " + "; ".join(problems) +
             ". Supported: numeric, decimal, string, binary, boolean, date, timestamp, "
             "timestamp_ntz, arrays of these, struct and map (as JSON)")
    if not columns:
        fail("df has no columns")
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail(f"df has duplicate column names: {duplicates}")
    for name in names:
        check_identifier(name, "column name")
    return tuple(columns)


def _name_list(value: Any, what: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        fail(f"{what} must be a list of column names, not {value!r}")
    if len(set(value)) != len(value):
        fail(f"{what} lists a column twice: {list(value)}")
    return tuple(value)


def _check_present(names: Sequence[str], columns: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        fail(f"{what} {missing} is not present in the DataFrame's columns {list(columns)}")


def check_upsert_options(mode: str, columns: Tuple[Column, ...], primary_keys: Any,
                         version_column: Any, coalesce_columns: Any
                         ) -> Tuple[Tuple[str, ...], Optional[str], Tuple[str, ...]]:
    """(keys, version column, coalesce columns) for upsert; for the other modes () None ().

    In insert and bulk-insert modes the options are checked as 0.1 checks them (the version and
    coalesce columns are in the DataFrame and are not keys) and then ignored: the writer logs
    one warning (ignored_options)."""
    keys = _name_list(primary_keys, "primary_keys")
    coalesce = _name_list(coalesce_columns, "upsert_coalesce_columns")
    if version_column is not None and (not isinstance(version_column, str) or not version_column):
        fail(f"upsert_version_column must be a column name, not {version_column!r}")
    names = [c.name for c in columns]
    _check_version_and_coalesce(columns, keys, version_column, coalesce)
    if mode != "upsert":
        return (), None, ()
    if not keys:
        fail("primary_keys required for upsert mode: the columns of the table's primary key or "
             "of a unique index")
    _check_present(keys, names, "primary_keys")
    json_keys = [c.name for c in columns if c.name in keys and c.type.kind in ("struct", "map")]
    if json_keys:
        fail(f"primary_keys {json_keys} are struct/map (JSON) columns, which cannot be keys")
    return keys, version_column, coalesce


def _check_version_and_coalesce(columns: Tuple[Column, ...], keys: Tuple[str, ...],
                                version_column: Optional[str], coalesce: Tuple[str, ...]) -> None:
    names = [c.name for c in columns]
    if version_column is not None:
        _check_present([version_column], names, "upsert_version_column")
        if version_column in keys:
            fail(f"upsert_version_column {version_column!r} cannot be a primary key")
        kind = next(c.type.kind for c in columns if c.name == version_column)
        if kind in NOT_ORDERABLE:
            fail(f"upsert_version_column {version_column!r} has type {kind}, which cannot be "
                 "compared; use a number, date, timestamp or string column")
    _check_present(coalesce, names, "upsert_coalesce_columns")
    both = [c for c in coalesce if c in keys]
    if both:
        fail(f"upsert_coalesce_columns cannot include primary key columns: {both} (keys are "
             "never updated)")


def ignored_options(mode: str, **given: Any) -> List[str]:
    """The upsert options given in a mode that does not use them (0.1 accepts them too)."""
    if mode == "upsert":
        return []
    return [name for name, value in given.items() if value not in (None, (), [], "")]


def check_proxy(proxy: Any, proxy_token: Any) -> None:
    if proxy is None:
        if proxy_token is not None:
            fail("proxy_token is given but proxy is not")
        return
    if not isinstance(proxy, str) or not _valid_proxy_address(proxy):
        fail(f"proxy must be 'host:port' or 'unix:/path/to/socket', not {proxy!r}")
    if proxy_token is not None and (not isinstance(proxy_token, str) or "\x00" in proxy_token):
        fail("proxy_token must be a string without NUL characters")


def check_nothing_proxy_holds(**given: Any) -> None:
    """With proxy=..., the proxy holds the server's address and the credentials.

    Passing them too would suggest they are used; they are not, so it is refused.
    """
    named = [name for name, value in given.items() if _given(value) is not None]
    if named:
        fail(f"with proxy=..., lakebase-proxy holds the server's address and the credentials: "
             f"do not also give {', '.join(named)}")


def _valid_proxy_address(proxy: str) -> bool:
    try:
        parse_address(proxy)
    except ValueError:
        return False
    return True


def _given(value: Any) -> Any:
    """0.1 treats an empty string like None (`lakebase_name=""` with `host`)."""
    return None if value is None or value == "" else value


def check_target(lakebase_name: Any, read_write_dns: Any, host: Any
                 ) -> Tuple[Optional[str], Optional[str], List[str]]:
    """(lakebase_name or None, host or None, warnings). With both a host and a lakebase_name,
    the host is used and the name is not looked up, as in 0.1 (a warning says so)."""
    lakebase_name, read_write_dns, host = _given(lakebase_name), _given(read_write_dns), _given(host)
    if host is not None and read_write_dns is not None and host != read_write_dns:
        fail("give read_write_dns or its alias host, not both")
    dns = read_write_dns if read_write_dns is not None else host
    for name, value in (("lakebase_name", lakebase_name), ("read_write_dns", dns)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            fail(f"{name} must be a non-empty string, not {value!r}")
    if lakebase_name is None and dns is None:
        fail("a target is required: host=... (alias read_write_dns=...) or lakebase_name=...")
    if lakebase_name is not None and dns is not None:
        return None, dns, [f"host {dns!r} is given, so lakebase_name {lakebase_name!r} is not "
                           "looked up (as lakebase-foreachwriter 0.1 does)"]
    return lakebase_name, dns, []


def check_credentials(username: Any, password: Any, provider: Any) -> List[str]:
    """Warnings; raises ConfigurationError when no usable credentials are given."""
    if provider is not None:
        if not callable(provider):
            fail("credential_provider must be a callable returning (user, password)")
        _check_picklable(provider)
        if username is not None or password is not None:
            return ["credential_provider is given, so username and password are not used: the "
                    "provider returns both (as lakebase-foreachwriter 0.1 does)"]
        return []
    if not isinstance(username, str) or not username:
        fail("Either credential_provider or both username and password must be provided "
             "(username is missing)")
    if not isinstance(password, str):
        fail("Either credential_provider or both username and password must be provided "
             "(password is missing)")
    return []


def _check_picklable(provider: Any) -> None:
    from pyspark import cloudpickle

    try:
        cloudpickle.dumps(provider)
    except Exception as exc:  # whatever the object's own pickling raises
        fail(f"credential_provider cannot be pickled to the executors: {exc}")


def check_number(value: Any, what: str, minimum: float, integer: bool = True,
                 maximum: Optional[float] = None) -> None:
    kinds: tuple = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        fail(f"{what} must be {'an integer' if integer else 'a number'}, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        fail(f"{what} must be {bound}, not {value!r}")


def check_connection(port: Any, dbname: Any, sslmode: Any) -> None:
    check_number(port, "port", 1, maximum=65535)
    if not isinstance(dbname, str) or not dbname:
        fail(f"dbname must be a non-empty string, not {dbname!r}")
    if sslmode is not None and sslmode not in SSLMODES:
        fail(f"sslmode must be one of {', '.join(SSLMODES)}, not {sslmode!r}")


def check_tuning(batch_size: Any, batch_interval_ms: Any, max_retries: Any,
                 retry_base_delay_s: Any, max_queue_size: Any = 1,
                 use_multirow_sql: Any = None) -> None:
    check_number(batch_size, "batch_size", 1)
    check_number(max_queue_size, "max_queue_size", 1)
    if use_multirow_sql is not None and not isinstance(use_multirow_sql, bool):
        fail(f"use_multirow_sql must be True or False, not {use_multirow_sql!r}")
    check_number(batch_interval_ms, "batch_interval_ms", 1, integer=False)
    check_number(max_retries, "max_retries", 0)
    check_number(retry_base_delay_s, "retry_base_delay_s", 0, integer=False)


def column_names(columns: Sequence[Column]) -> List[str]:
    return [c.name for c in columns]
