"""The writer travels to executors by pickle: only plain configuration, no runtime state."""

import pickle

from pyspark import cloudpickle
from pyspark.sql import types as T

from lakebase_foreachwriter import LakebaseForeachWriter, oauth_credential_provider
from lakebase_foreachwriter.schema import Column, ColumnType

SCHEMA = T.StructType([T.StructField("id", T.LongType()),
                       T.StructField("tags", T.ArrayType(T.StringType())),
                       T.StructField("s", T.StructType([T.StructField("x", T.DoubleType())]))])


def test_writer_round_trips_through_pickle_and_cloudpickle():
    w = LakebaseForeachWriter("u", "secret", "public.t", SCHEMA, read_write_dns="db.local",
                              mode="upsert", primary_keys=["id"], batch_size=10)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(w))
        assert copy.config == w.config
        assert copy._batcher is None and copy._encoder is None
    assert w.config.columns[1] == Column("tags", ColumnType("array", ColumnType("string")))
    assert "secret" not in repr(w) and "secret" not in repr(w.config)


def test_writer_keeps_no_dataframe_or_pyspark_objects():
    w = LakebaseForeachWriter("u", "p", "t", SCHEMA, host="db.local")
    blob = pickle.dumps(w)
    assert b"pyspark" not in blob


def test_oauth_provider_pickles_without_client_or_token():
    provider = oauth_credential_provider("my-instance", username="me@example.com")
    provider._token = "cached-token"
    copy = pickle.loads(cloudpickle.dumps(provider))
    assert copy.lakebase_name == "my-instance" and copy.username == "me@example.com"
    assert copy._token is None and copy._client is None
