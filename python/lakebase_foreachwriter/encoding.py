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
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

from .errors import EncodingError
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
    """One COPY text line, NULL as \\N, ending in a newline."""
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


def _array_encoder(column: str, element: ColumnType) -> Encoder:
    nested = element.kind == "array"
    inner = _array_encoder(column, element.element) if nested else value_encoder(column, element)

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

def value_encoder(column: str, t: ColumnType) -> Encoder:
    """The function turning one non-NULL value of column `column` into PostgreSQL input text."""
    if t.kind == "string":
        return _string_encoder(column)
    if t.kind == "array":
        return _array_encoder(column, t.element)
    if t.kind in ("struct", "map"):
        return lambda v: _json_value(column, t, v)
    return _SCALARS[t.kind]


class RowEncoder:
    """Encodes Spark Rows of a fixed schema; cheap to build, so it is built in open()."""

    def __init__(self, columns: Sequence[Column], version_column: Optional[str] = None) -> None:
        self._names = [c.name for c in columns]
        self._encoders = [value_encoder(c.name, c.type) for c in columns]
        self._version_index = self._names.index(version_column) if version_column else None

    def encode(self, row: Sequence[Any]) -> EncodedRow:
        if len(row) != len(self._encoders):
            raise EncodingError("*", f"row has {len(row)} values, the schema "
                                     f"{len(self._encoders)} columns")
        fields = tuple(None if v is None else enc(v) for enc, v in zip(self._encoders, row))
        version = row[self._version_index] if self._version_index is not None else None
        return EncodedRow(fields, version)
