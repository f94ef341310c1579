"""The table's columns as plain picklable data, derived once from the DataFrame's Spark schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

SCALAR_KINDS = (
    "byte", "short", "int", "long", "float", "double", "decimal", "string",
    "binary", "boolean", "date", "timestamp", "timestamp_ntz",
)
NESTED_KINDS = ("array", "struct", "map")


@dataclass(frozen=True)
class ColumnType:
    """A supported Spark type.

    `element` is set for arrays, `fields` (name, type) for structs, `key` and `value` for maps:
    nested types are kept so that struct and map values can be written as typed JSON.
    """

    kind: str
    element: Optional["ColumnType"] = None
    fields: Tuple[Tuple[str, "ColumnType"], ...] = ()
    key: Optional["ColumnType"] = None
    value: Optional["ColumnType"] = None


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


class UnsupportedType(Exception):
    """Raised by column_type() with the Spark type that has no PostgreSQL mapping."""


def column_type(spark_type: Any) -> ColumnType:
    """Map one pyspark DataType to a ColumnType, or raise UnsupportedType."""
    from pyspark.sql import types as T

    simple = [
        (T.ByteType, "byte"), (T.ShortType, "short"), (T.IntegerType, "int"),
        (T.LongType, "long"), (T.FloatType, "float"), (T.DoubleType, "double"),
        (T.DecimalType, "decimal"), (T.BinaryType, "binary"), (T.BooleanType, "boolean"),
        (T.DateType, "date"), (T.TimestampNTZType, "timestamp_ntz"),
        (T.TimestampType, "timestamp"), (T.StringType, "string"),
    ]
    for cls, kind in simple:
        if isinstance(spark_type, cls):
            return ColumnType(kind)
    # CharType/VarcharType only exist in newer pyspark; both arrive in Python as str.
    if type(spark_type).__name__ in ("CharType", "VarcharType"):
        return ColumnType("string")
    if isinstance(spark_type, T.ArrayType):
        return ColumnType("array", column_type(spark_type.elementType))
    if isinstance(spark_type, T.StructType):
        fields = tuple((f.name, column_type(f.dataType)) for f in spark_type.fields)
        return ColumnType("struct", fields=fields)
    if isinstance(spark_type, T.MapType):
        return ColumnType("map", key=column_type(spark_type.keyType),
                          value=column_type(spark_type.valueType))
    raise UnsupportedType(spark_type.simpleString())


def columns_from_schema(schema: Any) -> Tuple[List[Column], List[str]]:
    """Columns of a StructType, plus a message for each column whose type is unsupported."""
    columns: List[Column] = []
    problems: List[str] = []
    for field in schema.fields:
        try:
            columns.append(Column(field.name, column_type(field.dataType), field.nullable))
        except UnsupportedType as exc:
            problems.append(f"column {field.name!r} has type {field.dataType.simpleString()}"
                            f" (unsupported: {exc})")
    return columns, problems
