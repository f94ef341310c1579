"""Fixtures for the python suite: the repository's PostgreSQL harness (tests/conftest.py, reused
as is), one local Spark session, and helpers to create tables and read them back."""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import psycopg
import pytest

# Also puts tests/harness on sys.path, for fake_databricks.
_REPO_TESTS = Path(__file__).resolve().parents[2] / "tests"
_spec = importlib.util.spec_from_file_location("repo_tests_conftest", _REPO_TESTS / "conftest.py")
_repo_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_repo_conftest)

pg = _repo_conftest.pg  # session-scoped PgServer: TLS + SCRAM
pg_admin = _repo_conftest.pg_admin

# Executors are Python processes started by the JVM; they must see a non-UTC local zone (to
# prove timestamps are converted) and the harness CA (for sslmode=verify-full).
TEST_TZ = "America/New_York"


@pytest.fixture(scope="session")
def spark(pg: Any) -> Iterator[Any]:
    os.environ["TZ"] = TEST_TZ
    time.tzset()
    os.environ["PGSSLROOTCERT"] = str(pg.ca_file)
    from pyspark.sql import SparkSession

    import kafkaharness as kafka  # tests/harness: Spark's Kafka source jars, for test_kafka_*.py

    # local[2,4]: a failed task is retried (up to 4 attempts), as on a cluster; the
    # exactly-once tests need that. The Kafka source jars when scripts/fetch-jars.sh ran.
    builder = SparkSession.builder.master("local[2,4]")
    if kafka.jars_available():
        builder = builder.config("spark.jars", kafka.spark_kafka_jars())
    session = (builder.appName("lakebase-foreachwriter-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.memory", "1g")
               # Real-time mode: rows reach the Python writer when this buffer fills (or the
               # task ends); the 64 KiB default holds them for seconds (python/README.md).
               .config("spark.buffer.size", "1024")
               .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def conn_args(pg: Any) -> Dict[str, Any]:
    """The writer's connection arguments for the harness server."""
    os.environ["PGSSLROOTCERT"] = str(pg.ca_file)
    return dict(username=pg.user, password=pg.password, host=pg.host, port=pg.port,
                dbname=pg.dbname, sslmode="verify-full")


@pytest.fixture
def db(pg: Any) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the test role, for DDL and reading results back."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"
