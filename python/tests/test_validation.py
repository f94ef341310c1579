"""Construction-time checks: each bad argument fails on the driver with a clear message."""

import pytest
from pyspark.sql import types as T

from lakebase_foreachwriter import ConfigurationError, LakebaseForeachWriter

SCHEMA = T.StructType([
    T.StructField("id", T.LongType(), False),
    T.StructField("name", T.StringType()),
    T.StructField("version", T.IntegerType()),
    T.StructField("payload", T.BinaryType()),
    T.StructField("doc", T.MapType(T.StringType(), T.StringType())),
])

GOOD = dict(username="u", password="p", table="public.t", df=SCHEMA, read_write_dns="db.local")


def make(**changes):
    args = {**GOOD, **changes}
    return LakebaseForeachWriter(args.pop("username"), args.pop("password"), args.pop("table"),
                                 args.pop("df"), **args)


def provider():
    return "u", "p"


def test_good_arguments_are_accepted():
    w = make(mode="upsert", primary_keys=["id"], upsert_version_column="version",
             upsert_coalesce_columns=["name"])
    assert w.config.primary_keys == ("id",)
    assert w.config.host == "db.local"
    assert make(read_write_dns=None, host="alias.local").config.host == "alias.local"
    assert make(username=None, password=None, credential_provider=provider).config.username is None


@pytest.mark.parametrize("changes,message", [
    (dict(mode="merge"), "mode must be one of 'insert', 'upsert', 'bulk-insert'"),
    (dict(mode="upsert"), "primary_keys required for upsert mode"),
    (dict(mode="upsert", primary_keys=["nope"]), r"primary_keys \['nope'\] is not present in"),
    (dict(mode="upsert", primary_keys=["id", "id"]), "lists a column twice"),
    (dict(mode="upsert", primary_keys=[1]), "must be a list of column names"),
    (dict(mode="upsert", primary_keys=["doc"]), "cannot be keys"),
    (dict(mode="upsert", primary_keys=["id"], upsert_version_column="ver"),
     r"upsert_version_column \['ver'\] is not present in"),
    (dict(mode="upsert", primary_keys=["id"], upsert_version_column="id"), "cannot be a primary key"),
    (dict(mode="upsert", primary_keys=["id"], upsert_version_column="payload"), "cannot be compared"),
    (dict(mode="upsert", primary_keys=["id"], upsert_coalesce_columns=["zzz"]),
     r"upsert_coalesce_columns \['zzz'\] is not present in"),
    (dict(mode="upsert", primary_keys=["id"], upsert_coalesce_columns=["id"]),
     "cannot include primary key columns"),
    # Checked as 0.1 checks them in every mode, then ignored outside upsert.
    (dict(upsert_version_column="nope"), "is not present in"),
    (dict(mode="bulk-insert", upsert_coalesce_columns=["zzz"]), "is not present in"),
    (dict(table=None), "table is required"),
    (dict(table="a.b.c"), "not well-formed"),
    (dict(table="a."), "not well-formed"),
    (dict(table="x" * 64), "63-byte limit"),
    (dict(df=None), "df is required"),
    (dict(df=T.StructType([T.StructField("i", T.DayTimeIntervalType())])),
     "column 'i' has type interval day to second"),
    (dict(df=T.StructType([T.StructField("a", T.ArrayType(T.NullType()))])), "column 'a' has type array<void>"),
    (dict(df=T.StructType([T.StructField("a", T.LongType()), T.StructField("a", T.LongType())])),
     "duplicate column names"),
    (dict(read_write_dns=None), "a target is required"),
    (dict(read_write_dns="a", host="b"), "not both"),
    (dict(read_write_dns="", lakebase_name=""), "a target is required"),
    (dict(read_write_dns=" "), "non-empty string"),
    (dict(username=None), "username is missing"),
    (dict(username=""), "username is missing"),
    (dict(password=None), "password is missing"),
    (dict(credential_provider="not callable", username=None, password=None), "must be a callable"),
    (dict(max_queue_size=0), "max_queue_size must be >= 1"),
    (dict(use_multirow_sql="yes"), "use_multirow_sql must be True or False"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(batch_interval_ms=0), "batch_interval_ms must be >= 1"),
    (dict(batch_interval_ms="100"), "batch_interval_ms must be a number"),
    (dict(max_retries=-1), "max_retries must be >= 0"),
    (dict(retry_base_delay_s=-0.1), "retry_base_delay_s must be >= 0"),
    (dict(port=70000), "port must be between 1 and 65535"),
    (dict(dbname=""), "dbname must be a non-empty string"),
    (dict(sslmode="on"), "sslmode must be one of"),
    (dict(proxy="no-port"), "proxy must be 'host:port' or 'unix:/path/to/socket'"),
    (dict(proxy="unix:relative"), "proxy must be"),
    (dict(proxy="h:99999"), "proxy must be"),
    (dict(proxy_token="secret"), "proxy_token is given but proxy is not"),
    (dict(proxy="127.0.0.1:5480"), "do not also give username, password, read_write_dns"),
    (dict(proxy="unix:/run/lakebase-proxy.sock", proxy_token="t", username=None,
          password=None), "do not also give read_write_dns"),
    (dict(proxy="127.0.0.1:5480", proxy_token=7, username=None, password=None,
          read_write_dns=None), "proxy_token must be a string"),
])
def test_bad_argument_is_rejected_with_a_clear_message(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        make(**changes)


def test_proxy_needs_no_credentials_or_host():
    w = make(username=None, password=None, read_write_dns=None, proxy="127.0.0.1:5480",
             proxy_token="secret", mode="upsert", primary_keys=["id"])
    assert w.config.proxy == "127.0.0.1:5480" and w.config.host is None
    assert w.config.username is None and w.config.password is None
    assert "secret" not in repr(w) and "secret" not in repr(w.config)
    assert make(username=None, password=None, read_write_dns=None,
                proxy="unix:/run/lakebase-proxy.sock").config.proxy_token is None


def test_configuration_error_is_a_value_error():
    with pytest.raises(ValueError):
        make(mode="nope")


def test_unpicklable_credential_provider_is_rejected():
    import threading
    lock = threading.Lock()

    def holds_a_lock():
        with lock:
            return "u", "p"

    with pytest.raises(ConfigurationError, match="cannot be pickled"):
        make(username=None, password=None, credential_provider=holds_a_lock)
