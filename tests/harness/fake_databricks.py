"""A local HTTPS server speaking the Databricks REST endpoints our tests call.

Two clients use it: the proxy's control plane (tests/test_control.py) and databricks-sdk in
the Python package's discovery and OAuth credential provider (python/tests/test_discovery.py).
Endpoints, as documented:

- POST /oidc/v1/token: a workspace token (OAuth M2M, HTTP Basic client_id:client_secret);
- GET /api/2.0/database/instances/{name}: a provisioned instance;
- POST /api/2.0/database/credentials: its database credential (`expiration_time`);
- GET /api/2.0/postgres/projects/{id}, .../branches, .../branches/{b}/endpoints and
  .../branches/{b}/endpoints/{e}: an autoscaling project, its branches and endpoints;
- POST /api/2.0/postgres/credentials: an endpoint's database credential (`expire_time`);
- GET /api/2.0/preview/scim/v2/Me: the caller (`userName` is the harness role).

API calls need `Authorization: Bearer` with the personal access token `pat` or an unexpired
workspace token. Every database credential it issues becomes the harness role's password
(pg.set_password), so a login works only with the newest one. The certificate is signed by
the harness CA (openssl CLI) for localhost and 127.0.0.1: clients trust pg.ca_file
(databricks-sdk through REQUESTS_CA_BUNDLE).

Knobs: fail_next() queues failures per kind of call; state and host_answer change what the
lookups of the first instance (and its host, of the first endpoint) say; tests add resources
to instances and projects; cred_lifetime_s, ws_token_lifetime_s and slow_s.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, NamedTuple

# Failure modes for fail_next(); each answers one request.
FAILURES = ("500", "429", "malformed", "wrong_types", "slow", "401")

TOKEN_PATH = "/oidc/v1/token"
ME_PATH = "/api/2.0/preview/scim/v2/Me"
INSTANCES_PATH = "/api/2.0/database/instances/"
POSTGRES_PATH = "/api/2.0/postgres/"

Answer = tuple[int, Any]  # HTTP status, JSON body


def _is_uuid4(value: object) -> bool:
    """What the clients must send as request_id: a random (version 4) UUID, canonical form."""
    if not isinstance(value, str):
        return False
    try:
        u = uuid.UUID(value)
    except ValueError:
        return False
    return u.version == 4 and str(u) == value.lower()


class Request(NamedTuple):
    """One request as the fake saw it; kind is token, host, credential or user."""

    kind: str
    method: str
    path: str  # without the query string
    body: Any  # parsed JSON; for token, the form as text


def make_server_cert(workdir: Path, ca_file: Path, ca_key: Path) -> tuple[Path, Path]:
    """A server certificate for localhost / 127.0.0.1 signed by the harness CA."""
    key, csr, crt, ext = (workdir / n for n in ("api.key", "api.csr", "api.crt", "api.ext"))
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_file),
                    "-CAkey", str(ca_key), "-set_serial", str(secrets.randbits(63)),
                    "-days", "30", "-extfile", str(ext), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


def rfc3339(unix_ns: int) -> str:
    """UTC with nanoseconds, "2026-11-24T12:00:00.123456789Z": more digits than Python's
    datetime before 3.11 takes, which the package's parser must cope with."""
    secs, ns = divmod(unix_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns:09d}Z"


def endpoint_answer(project: str, branch: str, endpoint_id: str, kind: str,
                    host: str) -> dict[str, Any]:
    """An autoscaling endpoint as GET .../endpoints/{id} answers; kind READ_WRITE or
    READ_ONLY."""
    return {"name": f"projects/{project}/branches/{branch}/endpoints/{endpoint_id}",
            "status": {"endpoint_type": f"ENDPOINT_TYPE_{kind}", "current_state": "ACTIVE",
                       "hosts": {"host": host}}}


def _not_found(message: str) -> Answer:
    return 404, {"error_code": "NOT_FOUND", "message": message}


def _kind_of(method: str, path: str) -> str:
    if path == TOKEN_PATH:
        return "token"
    if method == "POST":
        return "credential"
    return "user" if path == ME_PATH else "host"


class FakeDatabricks:
    def __init__(self, workdir: Path, pg: Any, *, instance: str = "inst-1",
                 endpoint: str = "projects/p1/branches/main/endpoints/ep1",
                 cred_lifetime_s: float = 3600, ws_token_lifetime_s: float = 3600,
                 slow_s: float = 3.0) -> None:
        self.pg = pg
        self.user = pg.user
        self.instance = instance
        self.endpoint = endpoint
        self.client_id = "app-" + uuid.uuid4().hex[:8]
        self.client_secret = "cs-" + secrets.token_urlsafe(24)
        self.pat = "dapi" + secrets.token_hex(16)
        self.cred_lifetime_s = cred_lifetime_s
        self.ws_token_lifetime_s = ws_token_lifetime_s
        self.slow_s = slow_s
        # name -> GET answer
        self.instances: dict[str, dict[str, Any]] = {instance: {
            "name": instance, "state": "AVAILABLE", "read_write_dns": "127.0.0.1",
            "capacity": "CU_1"}}
        # project id -> {"default_branch": branch name, "endpoints": [endpoint_answer()]},
        # the endpoints being the default branch's
        _, project, _, branch, _, endpoint_id = endpoint.split("/")
        self.projects: dict[str, dict[str, Any]] = {project: {
            "default_branch": f"projects/{project}/branches/{branch}",
            "endpoints": [endpoint_answer(project, branch, endpoint_id, "READ_WRITE",
                                          "127.0.0.1")]}}
        self.db_tokens: list[str] = []           # every credential issued, in order
        self.ws_tokens: dict[str, float] = {}    # workspace token -> expiry (monotonic)
        self.requests: list[Request] = []
        self._failures: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._server = self._serve(workdir)

    def _serve(self, workdir: Path) -> ThreadingHTTPServer:
        crt, key = make_server_cert(workdir, self.pg.ca_file, self.pg.ca_key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    # ---- for tests --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def state(self) -> str:
        """The first instance's state."""
        return self.instances[self.instance]["state"]

    @state.setter
    def state(self, state: str) -> None:
        self.instances[self.instance]["state"] = state

    @property
    def host_answer(self) -> str:
        """The host of the first instance and of the first endpoint."""
        return self.instances[self.instance]["read_write_dns"]

    @host_answer.setter
    def host_answer(self, host: str) -> None:
        self.instances[self.instance]["read_write_dns"] = host
        self._find_endpoint(self.endpoint)["status"]["hosts"]["host"] = host

    def secrets(self) -> list[str]:
        """Everything that must never appear in a log."""
        with self._lock:
            return [*self.db_tokens, *self.ws_tokens, self.client_secret, self.pat]

    def fail_next(self, kind: str, *modes: str) -> None:
        """Queue failures for kind: token, host, credential or user; modes from FAILURES."""
        assert all(m in FAILURES for m in modes), modes
        with self._lock:
            self._failures.setdefault(kind, []).extend(modes)

    def count(self, kind: str, path: str | None = None) -> int:
        """Requests of kind seen so far; only those for path if given."""
        with self._lock:
            return sum(1 for r in self.requests
                       if r.kind == kind and (path is None or r.path == path))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- answers ----------------------------------------------------------------------------

    def _take_failure(self, kind: str) -> str | None:
        with self._lock:
            queue = self._failures.get(kind) or []
            return queue.pop(0) if queue else None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _issue_ws_token(self) -> dict[str, Any]:
        token = "wst-" + secrets.token_urlsafe(24)
        with self._lock:
            self.ws_tokens[token] = time.monotonic() + self.ws_token_lifetime_s
        return {"access_token": token, "token_type": "Bearer", "scope": "all-apis",
                "expires_in": int(self.ws_token_lifetime_s)}

    def _issue_db_token(self, expiry_key: str) -> dict[str, Any]:
        token = "dbt-" + secrets.token_urlsafe(32)
        # The old token stops working for new logins now, as a revoked one would.
        self.pg.set_password(token)
        with self._lock:
            self.db_tokens.append(token)
        expires = time.time_ns() + int(self.cred_lifetime_s * 1e9)
        return {"token": token, expiry_key: rfc3339(expires)}

    def workspace_auth_ok(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        token = header[len("Bearer "):]
        with self._lock:
            return token == self.pat or self.ws_tokens.get(token, 0) > time.monotonic()

    def basic_auth_ok(self, header: str) -> bool:
        want = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return header == f"Basic {want}"

    def _find_endpoint(self, name: Any) -> dict[str, Any] | None:
        for project in self.projects.values():
            for endpoint in project["endpoints"]:
                if endpoint["name"] == name:
                    return endpoint
        return None

    def answer_token(self, form: bytes, authorization: str) -> Answer:
        if not self.basic_auth_ok(authorization):
            return 401, {"error": "invalid_client"}
        if form != b"grant_type=client_credentials&scope=all-apis":
            return 400, {"error": "invalid_request"}
        return 200, self._issue_ws_token()

    def answer_post(self, path: str, body: dict[str, Any]) -> Answer:
        if path == "/api/2.0/database/credentials":
            if not _is_uuid4(body.get("request_id")):
                return 400, {"error_code": "INVALID_PARAMETER_VALUE",
                             "message": f"request_id {body.get('request_id')!r} is not a UUID"}
            names = body.get("instance_names")
            if not names or any(n not in self.instances for n in names):
                return _not_found(f"no instances {names}")
            return 200, self._issue_db_token("expiration_time")
        if path == "/api/2.0/postgres/credentials":
            if self._find_endpoint(body.get("endpoint")) is None:
                return _not_found(f"no endpoint {body.get('endpoint')}")
            return 200, self._issue_db_token("expire_time")
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path}

    def answer_get(self, path: str) -> Answer:
        if path == ME_PATH:
            return 200, {"userName": self.user, "id": "1"}
        if path.startswith(INSTANCES_PATH):
            name = path[len(INSTANCES_PATH):]
            instance = self.instances.get(name)
            return (200, instance) if instance else _not_found(
                f"Database instance {name} not found")
        if path.startswith(POSTGRES_PATH + "projects/"):
            return self._answer_postgres(path[len(POSTGRES_PATH):])
        return _not_found(f"no such resource {path}")

    def _answer_postgres(self, name: str) -> Answer:
        """GET of an autoscaling resource, name "projects/{id}[/...]"."""
        project_id = name.split("/")[1]
        project = self.projects.get(project_id)
        if project is None:
            return _not_found(f"project {project_id} not found")
        if name == f"projects/{project_id}":
            return 200, {"name": name, "status": {"default_branch": project["default_branch"]}}
        if name == f"projects/{project_id}/branches":
            return 200, {"branches": [{"name": project["default_branch"],
                                       "status": {"default": True}}]}
        if name == f"{project['default_branch']}/endpoints":
            return 200, {"endpoints": project["endpoints"]}
        endpoint = self._find_endpoint(name)
        return (200, endpoint) if endpoint else _not_found(f"no such resource {name}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None
                      ) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting (the "slow" knob)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _failed(self, kind: str) -> bool:
                """Answers with a queued failure; False if none is queued."""
                mode = fake._take_failure(kind)
                if mode is None:
                    return False
                if mode == "slow":
                    # Longer than the proxy waits; no credential is issued (it would
                    # revoke the one in use without the proxy ever seeing the new one).
                    time.sleep(fake.slow_s)
                    self._send(503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                                     "message": "too late"})
                elif mode == "500":
                    self._send(500, {"error_code": "INTERNAL_ERROR",
                                     "message": "fake outage"})
                elif mode == "429":
                    self._send(429, {"error_code": "REQUEST_LIMIT_EXCEEDED",
                                     "message": "slow down"}, {"Retry-After": "2"})
                elif mode == "401":
                    self._send(401, {"error": "invalid_client",
                                     "error_description": "Client authentication failed"})
                elif mode == "malformed":
                    self._send(200, b'{"token": "dbt-half-')
                else:  # wrong_types
                    self._send(200, {"token": 12345, "expiration_time": 3600,
                                     "expire_time": 3600, "state": 7,
                                     "access_token": ["x"], "expires_in": "soon"})
                return True

            def _call(self, method: str, path: str, body: Any,
                      answer: Callable[[], Answer]) -> None:
                """Records the request, then answers with a queued failure or answer()."""
                kind = _kind_of(method, path)
                fake._record(Request(kind, method, path, body))
                if kind != "token" and not fake.workspace_auth_ok(
                        self.headers.get("Authorization", "")):
                    return self._send(401, {"error_code": "UNAUTHENTICATED",
                                            "message": "bad workspace token"})
                if not self._failed(kind):
                    self._send(*answer())

            def do_POST(self) -> None:
                raw = self._body()
                path = self.path.split("?")[0]
                if path == TOKEN_PATH:
                    auth = self.headers.get("Authorization", "")
                    return self._call("POST", path, raw.decode(errors="replace"),
                                      lambda: fake.answer_token(raw, auth))
                body = json.loads(raw or b"{}")
                self._call("POST", path, body, lambda: fake.answer_post(path, body))

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                self._call("GET", path, None, lambda: fake.answer_get(path))

        return Handler
