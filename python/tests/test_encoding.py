"""Spark values -> PostgreSQL input text and COPY text lines (pure, no server)."""

import datetime as dt
import os
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import Row
from pyspark.sql import types as T

from lakebase_foreachwriter.encoding import RowEncoder, copy_escape, copy_line, value_encoder
from lakebase_foreachwriter.errors import EncodingError
from lakebase_foreachwriter.schema import column_type


def enc(spark_type, value, column="c"):
    return value_encoder(column, column_type(spark_type))(value)


@pytest.fixture
def new_york_tz():
    """Run the test with a local time zone that is not UTC, as executors may have."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize("spark_type,value,text", [
    (T.ByteType(), -128, "-128"),
    (T.ShortType(), 32767, "32767"),
    (T.IntegerType(), -2147483648, "-2147483648"),
    (T.LongType(), 9223372036854775807, "9223372036854775807"),
    (T.DoubleType(), 1.5, "1.5"),
    (T.DoubleType(), 1e16, "1e+16"),
    (T.DoubleType(), -0.0, "-0.0"),
    (T.DoubleType(), float("nan"), "NaN"),
    (T.DoubleType(), float("inf"), "Infinity"),
    (T.FloatType(), float("-inf"), "-Infinity"),
    (T.DecimalType(10, 2), Decimal("-12345678.90"), "-12345678.90"),
    (T.DecimalType(10, 0), Decimal("1E+2"), "100"),
    (T.DecimalType(20, 10), Decimal("1.2E-9"), "0.0000000012"),
    (T.BooleanType(), True, "t"),
    (T.BooleanType(), False, "f"),
    (T.StringType(), "plain", "plain"),
    (T.BinaryType(), bytearray(b"\x00\xff\\"), "\\x00ff5c"),
    (T.DateType(), dt.date(1, 1, 1), "0001-01-01"),
    (T.DateType(), dt.date(1969, 7, 20), "1969-07-20"),
    (T.TimestampNTZType(), dt.datetime(1900, 1, 2, 3, 4, 5, 6), "1900-01-02 03:04:05.000006"),
])
def test_scalar_text(spark_type, value, text):
    assert enc(spark_type, value) == text


def test_timestamp_is_converted_from_local_time_to_utc(new_york_tz):
    # What PySpark hands over for 1970-01-01T00:00:00.000001Z on a New York executor.
    local = dt.datetime.fromtimestamp(0).replace(microsecond=1)
    assert local.hour == 19
    assert enc(T.TimestampType(), local) == "1970-01-01 00:00:00.000001+00"
    before_1970 = dt.datetime.fromtimestamp(-86400 * 365 - 1)
    assert enc(T.TimestampType(), before_1970) == "1968-12-31 23:59:59.000000+00"


def test_timestamp_aware_values_are_converted_to_utc():
    aware = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert enc(T.TimestampType(), aware) == "2024-03-01 10:00:00.000000+00"


def test_copy_line_escapes_and_nulls():
    line = copy_line(["a\\b", "tab\there", "nl\nline", "cr\rx", None, "\\x00ff"])
    assert line == "a\\\\b\ttab\\there\tnl\\nline\tcr\\rx\t\\N\t\\\\x00ff\n"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab\\\t\n\rN\u00e9\u20ac", max_size=6)),
                max_size=6))
def test_copy_line_equals_escaping_each_field(fields):
    # copy_line joins first and escapes only lines that need it; the result must equal
    # escaping field by field, whatever mix of NULLs, backslashes, tabs and newlines.
    expected = "\t".join("\\N" if f is None else copy_escape(f) for f in fields) + "\n"
    assert copy_line(fields) == expected
    assert copy_line(tuple(fields)) == expected


def test_nul_in_string_names_the_column():
    with pytest.raises(EncodingError, match="column 'comment'.*NUL"):
        enc(T.StringType(), "bad\x00value", column="comment")


def test_nul_inside_array_and_json_is_rejected():
    with pytest.raises(EncodingError, match="column 'tags'"):
        enc(T.ArrayType(T.StringType()), ["ok", "no\x00"], column="tags")
    with pytest.raises(EncodingError, match="column 'doc'"):
        enc(T.MapType(T.StringType(), T.StringType()), {"k": "\x00"}, column="doc")


@pytest.mark.parametrize("spark_type,value,text", [
    (T.ArrayType(T.IntegerType()), [1, None, -3], '{"1",NULL,"-3"}'),
    (T.ArrayType(T.IntegerType()), [], "{}"),
    (T.ArrayType(T.StringType()), ['a"b', "c\\d", "NULL", "", "x,y{}"],
     '{"a\\"b","c\\\\d","NULL","","x,y{}"}'),
    (T.ArrayType(T.ArrayType(T.LongType())), [[1, 2], [None, 4]], '{{"1","2"},{NULL,"4"}}'),
    (T.ArrayType(T.DoubleType()), [float("nan"), float("-inf")], '{"NaN","-Infinity"}'),
    (T.ArrayType(T.BinaryType()), [b"\x01"], '{"\\\\x01"}'),
    (T.ArrayType(T.DateType()), [dt.date(2020, 2, 29)], '{"2020-02-29"}'),
])
def test_array_literals(spark_type, value, text):
    assert enc(spark_type, value) == text


def test_ragged_or_null_nested_arrays_are_rejected():
    nested = T.ArrayType(T.ArrayType(T.IntegerType()))
    with pytest.raises(EncodingError, match="column 'm'.*rectangular"):
        enc(nested, [[1], [1, 2]], column="m")
    with pytest.raises(EncodingError, match="column 'm'.*NULL sub-array"):
        enc(nested, [[1], None], column="m")


def test_struct_and_map_as_json():
    struct = T.StructType([
        T.StructField("n", T.IntegerType()), T.StructField("s", T.StringType()),
        T.StructField("d", T.DecimalType(5, 2)), T.StructField("f", T.DoubleType()),
        T.StructField("b", T.BinaryType()), T.StructField("day", T.DateType()),
        T.StructField("ntz", T.TimestampNTZType()), T.StructField("xs", T.ArrayType(T.LongType())),
        T.StructField("ok", T.BooleanType()), T.StructField("none", T.StringType()),
    ])
    value = Row(n=1, s='q"\n', d=Decimal("1.50"), f=float("nan"), b=b"\x01\x02",
                day=dt.date(2001, 2, 3), ntz=dt.datetime(2001, 2, 3, 4, 5, 6, 7), xs=[1, None],
                ok=True, none=None)
    assert enc(struct, value) == (
        '{"n":1,"s":"q\\"\\n","d":1.50,"f":"NaN","b":"AQI=","day":"2001-02-03",'
        '"ntz":"2001-02-03T04:05:06.000007","xs":[1,null],"ok":true,"none":null}')
    int_keys = T.MapType(T.IntegerType(), T.ArrayType(T.StringType()))
    assert enc(int_keys, {1: ["a"], 2: None}) == '{"1":["a"],"2":null}'


def test_row_encoder_keeps_version_and_nulls():
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("v", T.IntegerType()),
                           T.StructField("s", T.StringType())])
    from lakebase_foreachwriter.schema import columns_from_schema
    columns, problems = columns_from_schema(schema)
    assert problems == []
    row = RowEncoder(columns, "v").encode(Row(id=7, v=3, s=None))
    assert row.fields == ("7", "3", None)
    assert row.version == 3
    with pytest.raises(EncodingError, match="2 values"):
        RowEncoder(columns).encode((1, 2))
