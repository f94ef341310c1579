"""Discovery and OAuth credentials through databricks-sdk, against a local fake of the REST API
(tests/harness/fake_databricks.py, on the path through the repository's conftest): HTTPS with
the harness CA, and every database credential it issues becomes the test role's password."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from databricks.sdk import WorkspaceClient
from pyspark import cloudpickle
from pyspark.sql import Row
from pyspark.sql import types as T

from fake_databricks import FakeDatabricks, endpoint_answer
from lakebase_foreachwriter import (DiscoveryError, LakebaseForeachWriter,
                                    oauth_credential_provider)
from lakebase_foreachwriter import discovery

KV = T.StructType([T.StructField("id", T.LongType()), T.StructField("v", T.StringType())])


@pytest.fixture
def fake(pg: Any, pg_admin: Any, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricks]:
    """A fake workspace; pg_admin puts the role's password back afterwards."""
    server = FakeDatabricks(tmp_path, pg)
    server.host_answer = "instance-1.database.example"  # of inst-1
    server.instances["starting"] = {"name": "starting", "state": "STARTING"}
    server.projects["proj"] = {
        "default_branch": "projects/proj/branches/production",
        "endpoints": [endpoint_answer("proj", "production", "ro", "READ_ONLY", "ro.example"),
                      endpoint_answer("proj", "production", "primary", "READ_WRITE",
                                      pg.host)]}
    monkeypatch.setenv("DATABRICKS_HOST", server.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", server.pat)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pg.ca_file))  # trusted by the SDK's requests
    discovery.clear_cache()
    yield server
    discovery.clear_cache()
    server.stop()


def client(fake: FakeDatabricks) -> WorkspaceClient:
    return WorkspaceClient(host=fake.url, token=fake.pat)


def test_provisioned_instance_resolves_to_read_write_dns_and_is_cached(fake):
    first = discovery.resolve("inst-1", client(fake))
    assert (first.kind, first.host) == ("instance", "instance-1.database.example")
    assert discovery.resolve("inst-1", client(fake)) == first
    assert fake.count("host", "/api/2.0/database/instances/inst-1") == 1


def test_project_resolves_to_production_read_write_endpoint(fake, pg):
    for name in ("projects/proj", "proj"):  # a bare name that is no instance falls back to projects
        found = discovery.resolve(name, client(fake))
        assert found.kind == "project" and found.host == pg.host
        assert found.endpoint == "projects/proj/branches/production/endpoints/primary"


def test_unknown_or_unready_names_fail_clearly(fake):
    with pytest.raises(DiscoveryError, match="no Lakebase instance or project named 'nope'"):
        discovery.resolve("nope", client(fake))
    with pytest.raises(DiscoveryError, match="has no read_write_dns yet"):
        discovery.resolve("starting", client(fake))


def test_writer_resolves_lakebase_name_at_construction(fake):
    w = LakebaseForeachWriter("u", "p", "t", KV, lakebase_name="inst-1")
    assert w.config.host == "instance-1.database.example"
    assert w.config.lakebase_name == "inst-1"


def test_oauth_provider_refreshes_before_expiry(fake):
    fake.cred_lifetime_s = 2
    provider = oauth_credential_provider("inst-1", refresh_margin_s=1,
                                         workspace_client_factory=lambda: client(fake))
    assert provider() == (fake.user, fake.db_tokens[0])
    assert provider() == (fake.user, fake.db_tokens[0])  # still fresh: cached
    time.sleep(1.2)
    assert provider() == (fake.user, fake.db_tokens[1])  # within the margin: refreshed
    assert fake.count("credential", "/api/2.0/database/credentials") == 2
    body = [r.body for r in fake.requests if r.path == "/api/2.0/database/credentials"][0]
    assert body["instance_names"] == ["inst-1"]


def test_project_oauth_credentials_write_end_to_end(fake, pg, db, table_name, monkeypatch):
    """lakebase_name -> endpoint host, OAuth token as the password, rows written (TLS + SCRAM)."""
    monkeypatch.setenv("PGSSLROOTCERT", str(pg.ca_file))  # for sslmode=verify-full
    db.execute(f'CREATE TABLE "{table_name}" (id bigint, v text)')
    url, pat = fake.url, fake.pat  # the factory is pickled: it must not hold the server
    provider = oauth_credential_provider(
        "projects/proj", workspace_client_factory=lambda: WorkspaceClient(host=url, token=pat))
    writer = LakebaseForeachWriter(table=table_name, df=KV, lakebase_name="projects/proj",
                                   credential_provider=provider, port=pg.port, dbname=pg.dbname,
                                   sslmode="verify-full")
    copy = cloudpickle.loads(cloudpickle.dumps(writer))  # as an executor receives it
    copy.open(0, 0)
    copy.process(Row(id=1, v="via oauth"))
    copy.close(None)
    assert db.execute(f'SELECT id, v FROM "{table_name}"').fetchall() == [(1, "via oauth")]
    body = [r.body for r in fake.requests if r.path == "/api/2.0/postgres/credentials"][0]
    assert body == {"endpoint": "projects/proj/branches/production/endpoints/primary"}


def test_oauth_provider_with_01s_arguments(fake):
    """0.1's call: positional branch_id and endpoint_id name the endpoint (no lookup), and
    workspace_config builds the client in each process; the provider pickles."""
    provider = oauth_credential_provider("proj", "production", "ro",
                                         {"host": fake.url, "token": fake.pat})
    copy = cloudpickle.loads(cloudpickle.dumps(provider))
    assert copy() == (fake.user, fake.db_tokens[0])
    bodies = [r.body for r in fake.requests if r.path == "/api/2.0/postgres/credentials"]
    assert bodies == [{"endpoint": "projects/proj/branches/production/endpoints/ro"}]
    assert not [r for r in fake.requests if "/endpoints" in r.path and r.method == "GET"]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_credential_expiry_is_read_as_utc_in_any_local_zone(zone, monkeypatch):
    """An executor's local zone must not shift the expiry (it did by the zone's offset: the
    fraction's digit count ran into "+00:00", which was then lost)."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert discovery._parse_rfc3339("2026-11-24T12:00:00.123456789Z") == \
            1795521600.123456
        assert discovery._parse_rfc3339("2026-11-24T12:00:00Z") == 1795521600.0
        assert discovery._parse_rfc3339("2026-11-24T13:00:00.5+01:00") == 1795521600.5
    finally:
        monkeypatch.undo()
        time.tzset()
