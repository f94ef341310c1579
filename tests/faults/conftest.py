"""Fixtures of the fault suite: PostgreSQL with synchronous_commit = on, on loopback or inside a
network namespace of the test's own (removed afterwards)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from faultlib import Netns, NetnsPgServer, SyncPgServer


@pytest.fixture(scope="module")
def sync_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncPgServer]:
    server = SyncPgServer(tmp_path_factory.mktemp("syncpg")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    for tool in ("ip", "iptables-legacy"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/setup.sh with LBP_WITH_TESTS=1")
    net = Netns().open()
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def netns_pg(netns: Netns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsPgServer]:
    server = NetnsPgServer(Path(tmp_path_factory.mktemp("nspg")), netns).start()
    try:
        yield server
    finally:
        netns.clear_rules()
        server.stop()
