"""Spark row values -> PostgreSQL input text, and that text -> COPY text format lines.

Each value is encoded once, in process(), into the text PostgreSQL's input functions accept
(`EncodedRow.fields`, None for NULL). The direct sink sends those texts as query parameters; COPY
and the proxy send `copy_line()`, which adds COPY's backslash escapes. Struct and map values
become JSON (for json/jsonb columns); arrays become PostgreSQL array literals.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .errors import ConfigurationError, EncodingError
from .schema import Column, ColumnType

Text = Optional[str]
Encoder = Callable[[Any], str]

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UTC = dt.timezone.utc


class EncodedRow(NamedTuple):
    """One row as PostgreSQL input text; `version` is the raw upsert version value, if any."""

    fields: Tuple[Text, ...]
    version: Any = None


def copy_escape(text: str) -> str:
    """Escape one field for COPY's text format (backslash, tab, newline, carriage return)."""
    return text.translate(_COPY_ESCAPES)


def copy_line(fields: Sequence[Text]) -> str:
    """One COPY text line, NULL as \\N, ending in a newline.

    Most fields need no escape: the fields are joined as they are and the line is scanned
    once for what COPY escapes (each scan runs in C); only a line that has any is built
    field by field. This is the writer's cost per row at every flush (proxy, bulk-insert)."""
    nulls = fields.count(None)
    line = "\t".join(fields if not nulls else ["\\N" if f is None else f for f in fields])
    # A NULL adds one backslash and each separator one tab: more of either, or any newline
    # or carriage return, comes from a field.
    if (line.count("\\") == nulls and line.count("\t") == len(fields) - 1
            and "\n" not in line and "\r" not in line):
        return line + "\n"
    return "\t".join("\\N" if f is None else copy_escape(f) for f in fields) + "\n"


# ---- scalars ----------------------------------------------------------------------------

def _float_text(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _decimal_text(value: Any) -> str:
    return format(Decimal(value), "f")


def _bool_text(value: Any) -> str:
    return "t" if value else "f"


def _date_text(value: dt.date) -> str:
    return value.isoformat()


def _datetime_text(value: dt.datetime, sep: str) -> str:
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}{sep}"
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")


def _to_utc(value: dt.datetime) -> dt.datetime:
    # PySpark hands TimestampType values over as naive datetimes in the worker's local time
    # zone (datetime.fromtimestamp); astimezone() reads a naive value the same way.
    return value.astimezone(_UTC)


def _timestamp_text(value: dt.datetime) -> str:
    return _datetime_text(_to_utc(value), " ") + "+00"


class LocalZone:
    """The executors' local zone (DST-aware through the C library), for want of a session's."""


LOCAL_ZONE = LocalZone()
WallClock = Optional[Any]  # None (write the instant), LOCAL_ZONE, or a tzinfo


def _wall_clock_encoder(zone: Any) -> Encoder:
    """A TimestampType value (an instant) as the wall-clock time in `zone`, for a `timestamp
    without time zone` column: what Spark's own JDBC writer stores."""
    if zone is LOCAL_ZONE:
        # PySpark's naive datetime already is the local wall clock.
        return lambda value: _datetime_text(
            value.astimezone().replace(tzinfo=None) if value.tzinfo else value, " ")
    return lambda value: _datetime_text(_to_utc(value).astimezone(zone), " ")


# ---- the Spark session's time zone ------------------------------------------------------

_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?$")


def time_zone(name: str) -> dt.tzinfo:
    """spark.sql.session.timeZone as a tzinfo: a region ID (America/New_York), UTC / Z, or an
    offset (+08:00, -5, GMT+01:00). ConfigurationError for anything else."""
    if name in ("UTC", "Z", "GMT", "UT", "Etc/UTC"):
        return _UTC
    match = _OFFSET.match(name)
    if match:
        sign, hours, minutes, seconds = match.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes or 0),
                             seconds=int(seconds or 0))
        if delta > dt.timedelta(hours=18):
            raise ConfigurationError(f"time zone offset {name!r} is out of range")
        return dt.timezone(-delta if sign == "-" else delta)
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigurationError(f"unknown time zone {name!r} (spark.sql.session.timeZone): "
                                 f"{exc}") from exc


def session_time_zone(df: Any) -> Optional[str]:
    """spark.sql.session.timeZone of the DataFrame's session (or the active one), read on the
    driver; None when there is no Spark session (then the executors' local zone is used, which
    is also Spark's default). ConfigurationError when the zone is not understood."""
    name = None
    for session in (getattr(df, "sparkSession", None), _active_session()):
        try:
            value = session.conf.get("spark.sql.session.timeZone") if session else None
        except Exception:  # a DataFrame stand-in, or a session already stopped
            value = None
        if isinstance(value, str) and value:
            name = value
            break
    if name is not None:
        time_zone(name)
    return name


def _active_session() -> Any:
    try:
        from pyspark.sql import SparkSession

        return SparkSession.getActiveSession()
    except Exception:  # no JVM, or pyspark without an active session
        return None


def _timestamp_ntz_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)
    return _datetime_text(value, " ")


def _bytes_text(value: Any) -> str:
    return "\\x" + bytes(value).hex()


def _string_encoder(column: str) -> Encoder:
    def encode(value: Any) -> str:
        text = str(value)
        if "\x00" in text:
            raise EncodingError(column, "string contains a NUL character (\\x00), which "
                                        "PostgreSQL text cannot store")
        return text
    return encode


_SCALARS = {
    "byte": lambda v: str(int(v)), "short": lambda v: str(int(v)),
    "int": lambda v: str(int(v)), "long": lambda v: str(int(v)),
    "float": _float_text, "double": _float_text, "decimal": _decimal_text,
    "boolean": _bool_text, "binary": _bytes_text, "date": _date_text,
    "timestamp": _timestamp_text, "timestamp_ntz": _timestamp_ntz_text,
}


# ---- arrays -----------------------------------------------------------------------------

def _quote_element(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_rectangular(column: str, values: Sequence[Any]) -> None:
    """PostgreSQL multidimensional arrays need sub-arrays of one length and no NULL sub-array."""
    if any(v is None for v in values):
        raise EncodingError(column, "a nested array holds a NULL sub-array, which a "
                                    "PostgreSQL multidimensional array cannot store")
    if len({len(v) for v in values}) > 1:
        raise EncodingError(column, "nested arrays have different lengths; PostgreSQL "
                                    "multidimensional arrays must be rectangular")


def _array_encoder(column: str, element: ColumnType, wall_clock: WallClock) -> Encoder:
    nested = element.kind == "array"
    inner = (_array_encoder(column, element.element, wall_clock) if nested
             else value_encoder(column, element, wall_clock))

    def encode(values: Any) -> str:
        if nested:
            _check_rectangular(column, values)
        parts: List[str] = []
        for v in values:
            if v is None:
                parts.append("NULL")
            elif nested:
                parts.append(inner(v))
            else:
                parts.append(_quote_element(inner(v)))
        return "{" + ",".join(parts) + "}"
    return encode


# ---- JSON for struct and map ------------------------------------------------------------

def _json_float(value: float) -> str:
    text = _float_text(value)
    # JSON has no NaN or Infinity: they are written as strings.
    return f'"{text}"' if text in ("NaN", "Infinity", "-Infinity") else text


def _json_string(column: str, text: str) -> str:
    if "\x00" in text:
        raise EncodingError(column, "string contains a NUL character (\\x00), which "
                                    "PostgreSQL json cannot store")
    return json.dumps(text, ensure_ascii=False)


def _json_scalar(column: str, t: ColumnType, value: Any) -> str:
    kind = t.kind
    if kind in ("byte", "short", "int", "long"):
        return str(int(value))
    if kind in ("float", "double"):
        return _json_float(value)
    if kind == "decimal":
        return _decimal_text(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "string":
        return _json_string(column, str(value))
    if kind == "binary":
        return json.dumps(base64.b64encode(bytes(value)).decode("ascii"))
    if kind == "date":
        return json.dumps(_date_text(value))
    if kind == "timestamp":
        return json.dumps(_datetime_text(_to_utc(value), "T") + "Z")
    if kind == "timestamp_ntz":
        return json.dumps(_timestamp_ntz_text(value).replace(" ", "T"))
    raise EncodingError(column, f"no JSON form for type {kind}")


def _json_key(column: str, t: ColumnType, key: Any) -> str:
    """JSON object keys are strings: a string key as is, any other key as its JSON text."""
    if t.kind == "string":
        return _json_string(column, str(key))
    text = _json_value(column, t, key)
    return text if text.startswith('"') else json.dumps(text)


def _json_value(column: str, t: ColumnType, value: Any) -> str:
    if value is None:
        return "null"
    if t.kind == "array":
        return "[" + ",".join(_json_value(column, t.element, v) for v in value) + "]"
    if t.kind == "struct":
        items = (f"{_json_string(column, name)}:{_json_value(column, ft, value[i])}"
                 for i, (name, ft) in enumerate(t.fields))
        return "{" + ",".join(items) + "}"
    if t.kind == "map":
        items = (f"{_json_key(column, t.key, k)}:{_json_value(column, t.value, v)}"
                 for k, v in value.items())
        return "{" + ",".join(items) + "}"
    return _json_scalar(column, t, value)


# ---- per column and per row -------------------------------------------------------------

def value_encoder(column: str, t: ColumnType, wall_clock: WallClock = None) -> Encoder:
    """The function turning one non-NULL value of column `column` into PostgreSQL input text.

    With `wall_clock` (the target column is `timestamp without time zone`), TimestampType
    values are written as the wall-clock time in that zone, else as the instant in UTC."""
    if t.kind == "string":
        return _string_encoder(column)
    if t.kind == "array":
        return _array_encoder(column, t.element, wall_clock)
    if t.kind in ("struct", "map"):
        return lambda v: _json_value(column, t, v)
    if t.kind == "timestamp" and wall_clock is not None:
        return _wall_clock_encoder(wall_clock)
    return _SCALARS[t.kind]


def is_timestamp_without_time_zone(pg_type: Optional[str]) -> bool:
    """format_type() of `timestamp`, `timestamp(3)` or their arrays."""
    return bool(pg_type) and pg_type.startswith("timestamp") and "without time zone" in pg_type


class RowEncoder:
    """Encodes Spark Rows of a fixed schema; cheap to build, so it is built in open().

    A Row with field names is read by name (a Row built with keyword arguments in another
    order lands in the right columns; extra fields are ignored); any other sequence by
    position. `pg_types` (format_type() of each target column, in order) and `session_zone`
    choose how TimestampType values are written: the wall-clock time in the session's zone for
    `timestamp without time zone`, the instant otherwise.
    """

    def __init__(self, columns: Sequence[Column], version_column: Optional[str] = None,
                 pg_types: Optional[Sequence[Optional[str]]] = None,
                 session_zone: Optional[str] = None) -> None:
        self._names = [c.name for c in columns]
        zone = time_zone(session_zone) if session_zone else LOCAL_ZONE
        types = list(pg_types) if pg_types is not None else [None] * len(columns)
        self._encoders = [
            value_encoder(c.name, c.type, zone if is_timestamp_without_time_zone(pg) else None)
            for c, pg in zip(columns, types)]
        self._version_index = self._names.index(version_column) if version_column else None
        self._orders: Dict[Tuple[str, ...], List[int]] = {}

    def encode(self, row: Sequence[Any]) -> EncodedRow:
        row = self._in_column_order(row)
        if len(row) != len(self._encoders):
            raise EncodingError("*", f"row has {len(row)} values, the schema "
                                     f"{len(self._encoders)} columns")
        fields = tuple(None if v is None else enc(v) for enc, v in zip(self._encoders, row))
        version = row[self._version_index] if self._version_index is not None else None
        return EncodedRow(fields, version)

    def _in_column_order(self, row: Sequence[Any]) -> Sequence[Any]:
        names = getattr(row, "__fields__", None)
        if not names or names == self._names:
            return row
        key = tuple(names)
        order = self._orders.get(key)
        if order is None:
            missing = [n for n in self._names if n not in names]
            if missing:
                raise EncodingError(missing[0], f"the Row has no field {missing[0]!r} (its "
                                                f"fields: {list(names)})")
            order = self._orders.setdefault(key, [list(names).index(n) for n in self._names])
        return [tuple.__getitem__(row, i) for i in order]
