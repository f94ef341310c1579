"""Kafka for the Spark tests: a broker per test module (tests/harness/kafka.py), a producer of
numbered rows with their event time, and a streaming DataFrame reading them back."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Dict, Iterator, List

import psycopg
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from kafkaharness import KafkaBroker

PARTITIONS = 2
# What the Kafka source's rows become: the row number, its partition, a payload, and the event
# time (the producer's timestamp) that bench/rtm measures latency from.
SCHEMA = T.StructType([T.StructField("id", T.LongType(), False),
                       T.StructField("part", T.IntegerType(), False),
                       T.StructField("payload", T.StringType()),
                       T.StructField("event_time", T.TimestampType())])
TABLE_DDL = "id bigint, part integer, payload text, event_time timestamptz"
TABLE_DDL_KEYED = "id bigint PRIMARY KEY, part integer, payload text, event_time timestamptz"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    b = KafkaBroker(tmp_path_factory.mktemp("kafka")).start()
    try:
        yield b
    finally:
        b.stop()


def new_topic(broker: KafkaBroker) -> str:
    name = f"rows_{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, PARTITIONS)
    return name


def produce(broker: KafkaBroker, topic: str, first: int, count: int,
            rows_per_s: float = 0) -> None:
    """Rows first..first+count-1, row i to partition i % PARTITIONS, value "i,payload";
    rows_per_s > 0 paces them."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                         "enable.idempotence": True})
    start = time.monotonic()
    for n, i in enumerate(range(first, first + count)):
        producer.produce(topic, value=f"{i},row {i}".encode(), partition=i % PARTITIONS)
        producer.poll(0)
        if rows_per_s > 0:
            ahead = start + n / rows_per_s - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(30) == 0, "rows left unsent to Kafka"


class Trickle:
    """Keeps producing rows from `first` on, `rows_per_s`, until stop(): a stream that goes on.

    Spark's Python runner hands rows to process() in batches that it grows with the input
    rate; the last rows of a burst wait in the JVM until more rows arrive. A real stream does
    not stop, so the tests do not either: they wait for the rows they produced before this."""

    def __init__(self, broker: KafkaBroker, topic: str, first: int, rows_per_s: float) -> None:
        self._stop = threading.Event()
        self.next = first
        self._thread = threading.Thread(target=self._run, args=(broker, topic, rows_per_s),
                                        daemon=True)
        self._thread.start()

    def _run(self, broker: KafkaBroker, topic: str, rows_per_s: float) -> None:
        while not self._stop.is_set():
            produce(broker, topic, self.next, 10)
            self.next += 10
            self._stop.wait(10 / rows_per_s)

    def stop(self) -> int:
        """Stops producing; returns the first id not produced."""
        self._stop.set()
        self._thread.join()
        return self.next


def kafka_rows(spark: Any, broker: KafkaBroker, topic: str, **options: str) -> DataFrame:
    return (spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", broker.bootstrap)
            .option("subscribe", topic).option("startingOffsets", "earliest")
            .options(**options).load()
            .selectExpr("CAST(split(CAST(value AS STRING), ',')[0] AS BIGINT) AS id",
                        "partition AS part",
                        "split(CAST(value AS STRING), ',')[1] AS payload",
                        "timestamp AS event_time"))


def create_table(db: psycopg.Connection, table: str, keyed: bool = False) -> None:
    db.execute(f'CREATE TABLE "{table}" ({TABLE_DDL_KEYED if keyed else TABLE_DDL})')


def id_counts(db: psycopg.Connection, table: str) -> Dict[int, int]:
    rows = db.execute(f'SELECT id, count(*) FROM "{table}" GROUP BY id').fetchall()
    return {int(i): int(n) for i, n in rows}


def wait_rows(db: psycopg.Connection, table: str, rows: int, query: Any,
              timeout: float = 90) -> None:
    """Polls until the table holds `rows` distinct ids; fails early if the query died."""
    deadline = time.monotonic() + timeout
    while (have := len(id_counts(db, table))) < rows:
        if not query.isActive:
            raise AssertionError(f"query stopped at {have} of {rows} rows: {query.exception()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{have} of {rows} rows in the table after {timeout}s")
        time.sleep(0.2)


def expected_ids(first: int, count: int) -> List[int]:
    return list(range(first, first + count))
