"""Databricks lookups for the direct path: Lakebase name -> host, and OAuth database credentials.

Two kinds of Lakebase are resolved through databricks-sdk:
- provisioned instances: `w.database.get_database_instance(name).read_write_dns`;
- autoscaling projects (`projects/<id>`, or a bare id that is not an instance): the read-write
  endpoint of the project's default ("production") branch, `status.hosts.host`.
Results are cached per process, keyed by workspace host and name.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import ConfigurationError, DiscoveryError

WorkspaceClientFactory = Callable[[], Any]

_cache_lock = threading.Lock()
_target_cache: Dict[Tuple[str, str], "LakebaseTarget"] = {}


@dataclass(frozen=True)
class LakebaseTarget:
    """A resolved Lakebase: `kind` is "instance" or "project"; `endpoint` set for projects."""

    kind: str
    name: str
    host: str
    endpoint: Optional[str] = None


def default_workspace_client() -> Any:
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as exc:  # the extra is optional
        raise ConfigurationError(
            "lakebase_name needs databricks-sdk: pip install 'lakebase-foreachwriter[databricks]'"
        ) from exc
    return WorkspaceClient()


def resolve(lakebase_name: str, client: Any = None) -> LakebaseTarget:
    """Resolve a Lakebase name once per process (per workspace)."""
    client = client if client is not None else default_workspace_client()
    key = (str(getattr(client.config, "host", "")), lakebase_name)
    with _cache_lock:
        cached = _target_cache.get(key)
    if cached is not None:
        return cached
    found = _lookup(client, lakebase_name)
    with _cache_lock:
        _target_cache[key] = found
    return found


def clear_cache() -> None:
    with _cache_lock:
        _target_cache.clear()


def _lookup(client: Any, name: str) -> LakebaseTarget:
    from databricks.sdk.errors import DatabricksError, NotFound

    try:
        if name.startswith("projects/"):
            return _project_target(client, name)
        try:
            instance = client.database.get_database_instance(name)
        except NotFound:
            return _project_target(client, f"projects/{name}")
    except NotFound as exc:
        raise DiscoveryError(f"no Lakebase instance or project named {name!r}: {exc}") from exc
    except DatabricksError as exc:
        raise DiscoveryError(f"looking up Lakebase {name!r} failed: {exc}") from exc
    if not instance.read_write_dns:
        raise DiscoveryError(f"Lakebase instance {name!r} has no read_write_dns yet "
                             f"(state {getattr(instance, 'state', None)})")
    return LakebaseTarget("instance", name, instance.read_write_dns)


def _default_branch(client: Any, project: str) -> str:
    info = client.postgres.get_project(project)
    if info.status is not None and info.status.default_branch:
        return info.status.default_branch
    branches = list(client.postgres.list_branches(project))
    for branch in branches:
        if branch.status is not None and branch.status.default:
            return branch.name
    for branch in branches:
        if branch.branch_id == "production" or str(branch.name).endswith("/branches/production"):
            return branch.name
    raise DiscoveryError(f"Lakebase project {project!r} has no default (production) branch")


def _project_target(client: Any, project: str) -> LakebaseTarget:
    from databricks.sdk.service.postgres import EndpointType

    branch = _default_branch(client, project)
    for endpoint in client.postgres.list_endpoints(branch):
        status = endpoint.status
        if status is None or status.endpoint_type != EndpointType.ENDPOINT_TYPE_READ_WRITE:
            continue
        if status.hosts is None or not status.hosts.host:
            raise DiscoveryError(f"read-write endpoint {endpoint.name!r} has no host yet "
                                 f"(state {status.current_state})")
        return LakebaseTarget("project", project, status.hosts.host, endpoint.name)
    raise DiscoveryError(f"branch {branch!r} of Lakebase project {project!r} has no "
                         "read-write endpoint")


# ---- OAuth credentials ------------------------------------------------------------------

def _parse_rfc3339(text: str) -> float:
    text = text.strip().replace("Z", "+00:00")
    head, sep, rest = text.partition(".")
    if sep:  # Python before 3.11 takes at most 6 fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))  # up to the zone, not into it
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    return dt.datetime.fromisoformat(text).timestamp()


def _expiry_seconds(credential: Any, fallback_s: float) -> float:
    stamp = getattr(credential, "expire_time", None)  # autoscaling: protobuf Timestamp
    if stamp is not None:
        return stamp.seconds + stamp.nanos / 1e9
    text = getattr(credential, "expiration_time", None)  # provisioned: RFC 3339 text
    if text:
        return _parse_rfc3339(text)
    return time.time() + fallback_s


class OAuthCredentialProvider:
    """A picklable `credential_provider`: (user, OAuth token), refreshed before it expires.

    The workspace client is built lazily in each process with `workspace_client_factory`
    (default: databricks.sdk.WorkspaceClient(), i.e. the SDK's default authentication), so
    the object carries no client, lock or token when Spark ships it to the executors.
    """

    def __init__(self, lakebase_name: str, *, username: Optional[str] = None,
                 workspace_client_factory: Optional[WorkspaceClientFactory] = None,
                 refresh_margin_s: float = 300.0, assumed_lifetime_s: float = 3600.0,
                 endpoint: Optional[str] = None) -> None:
        if not lakebase_name or not isinstance(lakebase_name, str):
            raise ConfigurationError("oauth_credential_provider needs a Lakebase name")
        self.lakebase_name = lakebase_name
        self.username = username
        self.refresh_margin_s = refresh_margin_s
        self.assumed_lifetime_s = assumed_lifetime_s
        self.endpoint = endpoint  # set: this autoscaling endpoint, without a lookup
        self._factory = workspace_client_factory or default_workspace_client
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._token: Optional[str] = None
        self._expires_at = 0.0
        self.refresh_count = 0

    def __getstate__(self) -> Dict[str, Any]:
        return {"lakebase_name": self.lakebase_name, "username": self.username,
                "refresh_margin_s": self.refresh_margin_s,
                "assumed_lifetime_s": self.assumed_lifetime_s, "endpoint": self.endpoint,
                "_factory": self._factory}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __call__(self) -> Tuple[str, str]:
        with self._lock:
            if self._token is None or time.time() >= self._expires_at - self.refresh_margin_s:
                self._refresh()
            assert self._token is not None and self.username is not None
            return self.username, self._token

    def _refresh(self) -> None:
        if self._client is None:
            self._client = self._factory()
        client = self._client
        if self.endpoint is not None:
            target = LakebaseTarget("project", self.lakebase_name, "", self.endpoint)
        else:
            target = resolve(self.lakebase_name, client)
        if target.kind == "instance":
            cred = client.database.generate_database_credential(
                instance_names=[target.name], request_id=str(uuid.uuid4()))
        else:
            cred = client.postgres.generate_database_credential(endpoint=target.endpoint)
        if not cred.token:
            raise DiscoveryError(f"Databricks returned no database token for {self.lakebase_name!r}")
        if self.username is None:
            self.username = client.current_user.me().user_name
        self._token = cred.token
        self._expires_at = _expiry_seconds(cred, self.assumed_lifetime_s)
        self.refresh_count += 1


def workspace_client_from_config(config: Dict[str, Any]) -> Any:
    """WorkspaceClient(config=Config(**config)): 0.1's workspace_config, built per process."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(config=Config(**config))


def oauth_credential_provider(lakebase_name: str, branch_id: Optional[str] = None,
                              endpoint_id: Optional[str] = None,
                              workspace_config: Optional[Dict[str, Any]] = None,
                              workspace_client: Any = None, *, username: Optional[str] = None,
                              workspace_client_factory: Optional[WorkspaceClientFactory] = None,
                              refresh_margin_s: float = 300.0) -> OAuthCredentialProvider:
    """Build a credential_provider that logs in with a Databricks OAuth database credential.

    0.1's arguments keep their meaning: with `branch_id` or `endpoint_id` (defaults
    "production" and "primary" when only the other is given) the credential is for the
    autoscaling endpoint projects/<lakebase_name>/branches/<branch_id>/endpoints/<endpoint_id>;
    without either, `lakebase_name` is resolved (a provisioned instance, else a project's
    read-write endpoint on its default branch). `workspace_config` are keyword arguments of
    databricks.sdk.core.Config, used to build the client in each process. A `workspace_client`
    cannot be pickled to the executors and is refused, as in 0.1.
    """
    if not isinstance(lakebase_name, str) or not lakebase_name:
        raise ConfigurationError("oauth_credential_provider needs a Lakebase name")
    if workspace_client is not None:
        raise ConfigurationError(
            "workspace_client is not supported because credential providers must be "
            "Spark-serializable. Pass serializable workspace_config values instead.")
    if workspace_config is not None:
        if workspace_client_factory is not None:
            raise ConfigurationError("give workspace_config or workspace_client_factory, not both")
        if not isinstance(workspace_config, dict):
            raise ConfigurationError("workspace_config must be a dict of databricks.sdk Config "
                                     "keyword arguments")
        workspace_client_factory = functools.partial(workspace_client_from_config,
                                                     dict(workspace_config))
    endpoint = None
    if branch_id is not None or endpoint_id is not None:
        project = lakebase_name[len("projects/"):] if lakebase_name.startswith("projects/") \
            else lakebase_name
        endpoint = (f"projects/{project}/branches/{branch_id or 'production'}"
                    f"/endpoints/{endpoint_id or 'primary'}")
    return OAuthCredentialProvider(lakebase_name, username=username,
                                   workspace_client_factory=workspace_client_factory,
                                   refresh_margin_s=refresh_margin_s, endpoint=endpoint)
