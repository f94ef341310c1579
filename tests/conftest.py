"""Shared pytest fixtures: one throwaway PostgreSQL (TLS + SCRAM, like Lakebase) per session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
# The Python package from this checkout (the ingest client lives there).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from pgharness import PgServer  # noqa: E402


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A started server; pg.dsn(), pg.env(), pg.admin_sql(), pg.restart() for the tests."""
    server = PgServer(tmp_path_factory.mktemp("pg")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_admin(pg: PgServer) -> Iterator[Callable[[str], list[list[str]]]]:
    """Superuser SQL (rows of text fields); puts the test role's password back afterwards."""
    password = pg.password
    yield pg.admin_sql
    if pg.password != password:
        pg.set_password(password)
