#!/usr/bin/env python3
"""A throwaway single-node Kafka broker (KRaft: broker and controller in one JVM) for the tests.

The jars come from Maven Central through scripts/fetch-jars.sh, cached in LBP_MAVEN_CACHE
(default /var/cache/lakebase-proxy/maven). The broker listens on 127.0.0.1 only, on free ports,
keeps its data and log in the directory it is given, and is stopped by its PID.
`spark_kafka_jars()` lists the jars of Spark's Kafka source, for `spark.jars`.

    python3 tests/harness/kafkaharness.py start DIR    # prints BOOTSTRAP=127.0.0.1:PORT
    python3 tests/harness/kafkaharness.py stop DIR
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import List, Optional

from pgharness import HarnessError, find_free_port

HOST = "127.0.0.1"
DEFAULT_CACHE = "/var/cache/lakebase-proxy/maven"
# Spark brings Scala, Hadoop, SLF4J, lz4 and snappy itself; only these come from the cache.
SPARK_KAFKA_JAR_PREFIXES = ("spark-sql-kafka-0-10_", "spark-token-provider-kafka-0-10_",
                            "kafka-clients-", "commons-pool2-")


def maven_cache() -> Path:
    return Path(os.environ.get("LBP_MAVEN_CACHE", DEFAULT_CACHE))


def _jar_dir(name: str) -> Path:
    d = maven_cache() / name
    if not (d / ".done").exists():
        raise HarnessError(f"{d} is missing or incomplete: run scripts/fetch-jars.sh "
                           "(scripts/setup.sh does with LBP_WITH_SPARK=1)")
    return d


def jars_available() -> bool:
    return all((maven_cache() / n / ".done").exists() for n in ("kafka-broker", "spark-kafka"))


def spark_kafka_jars() -> str:
    """Comma-separated paths for spark.jars."""
    d = _jar_dir("spark-kafka")
    jars = sorted(str(p) for p in d.glob("*.jar") if p.name.startswith(SPARK_KAFKA_JAR_PREFIXES))
    if len(jars) != len(SPARK_KAFKA_JAR_PREFIXES):
        raise HarnessError(f"{d} lacks one of {SPARK_KAFKA_JAR_PREFIXES}: {jars}")
    return ",".join(jars)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker:
    """One broker + controller; `bootstrap` is "127.0.0.1:PORT" once started."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base = Path(base_dir)
        self.port = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.base / "kafka.log"

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = find_free_port(False)
        controller = find_free_port(False)
        conf = self._write_config(controller)
        self._java("kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(conf),
                   wait=True)
        self.proc = self._java("kafka.Kafka", str(conf), wait=False)
        (self.base / "kafka.pid").write_text(str(self.proc.pid))
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def create_topic(self, name: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                replication_factor=1)])
        for f in futures.values():
            f.result(timeout=30)

    # ---- internals ------------------------------------------------------------------------

    def _write_config(self, controller: int) -> Path:
        conf = self.base / "server.properties"
        conf.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller}",
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.base / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]))
        (self.base / "log4j2.properties").write_text("\n".join([
            "rootLogger.level = WARN",
            "rootLogger.appenderRef.f.ref = F",
            "appender.f.type = File",
            "appender.f.name = F",
            f"appender.f.fileName = {self.log_file}",
            "appender.f.layout.type = PatternLayout",
            "appender.f.layout.pattern = %d %p %c: %m%n",
            "",
        ]))
        return conf

    def _java(self, main: str, *args: str, wait: bool) -> subprocess.Popen[bytes]:
        cmd = ["java", "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.base / 'log4j2.properties'}",
               "-cp", str(_jar_dir("kafka-broker") / "*"), main, *args]
        with open(self.base / "kafka.out", "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        if wait and proc.wait(timeout=120) != 0:
            raise HarnessError(f"{main} failed: {self._tail()}")
        return proc

    def _wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        admin = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise HarnessError(f"kafka exited with {self.proc.returncode}: {self._tail()}")
            # The port first (librdkafka logs every refused connect), then the metadata.
            if admin is None and not _accepts(HOST, self.port):
                time.sleep(0.3)
                continue
            admin = admin or AdminClient({"bootstrap.servers": self.bootstrap})
            try:
                if admin.list_topics(timeout=2).brokers:
                    return
            except Exception:  # KafkaException while the broker starts
                time.sleep(0.3)
        self.stop()
        raise HarnessError(f"kafka not ready after {timeout}s: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for f in (self.base / "kafka.out", self.log_file):
            if f.exists():
                text += f.read_text(errors="replace")[-3000:]
        return text


def main(argv: List[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    base = Path(argv[2])
    if argv[1] == "start":
        broker = KafkaBroker(base).start()
        print(f"BOOTSTRAP={broker.bootstrap}")
        return 0
    pidfile = base / "kafka.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
