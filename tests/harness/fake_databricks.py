"""A local HTTPS server speaking the Databricks endpoints the proxy's control plane calls.

Endpoints, as documented: POST /oidc/v1/token (OAuth M2M, HTTP Basic), GET
/api/2.0/database/instances/{name}, POST /api/2.0/database/credentials, GET
/api/2.0/postgres/{endpoint}, POST /api/2.0/postgres/credentials. Every database credential
it issues becomes the harness role's password (pg.set_password), so a login works only with
the newest one. The certificate is signed by the harness CA (openssl CLI) for localhost and
127.0.0.1. Knobs: fail_next() queues failures per endpoint; state and host_answer change
what the lookups say.
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
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Failure modes for fail_next(); each answers one request.
FAILURES = ("500", "429", "malformed", "wrong_types", "slow", "401")


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


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeDatabricks:
    def __init__(self, workdir: Path, pg: Any, *, instance: str = "inst-1",
                 endpoint: str = "projects/p1/branches/main/endpoints/ep1",
                 cred_lifetime_s: float = 3600, ws_token_lifetime_s: float = 3600,
                 slow_s: float = 3.0) -> None:
        self.pg = pg
        self.instance = instance
        self.endpoint = endpoint
        self.client_id = "app-" + uuid.uuid4().hex[:8]
        self.client_secret = "cs-" + secrets.token_urlsafe(24)
        self.pat = "dapi" + secrets.token_hex(16)
        self.cred_lifetime_s = cred_lifetime_s
        self.ws_token_lifetime_s = ws_token_lifetime_s
        self.slow_s = slow_s
        self.state = "AVAILABLE"
        self.host_answer = "127.0.0.1"
        self.db_tokens: list[str] = []           # every credential issued, in order
        self.ws_tokens: dict[str, float] = {}    # workspace token -> expiry (monotonic)
        self.requests: list[tuple[str, str, Any]] = []
        self._failures: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        crt, key = make_server_cert(workdir, pg.ca_file, pg.ca_key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # ---- for tests --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def secrets(self) -> list[str]:
        """Everything that must never appear in a log."""
        with self._lock:
            return [*self.db_tokens, *self.ws_tokens, self.client_secret, self.pat]

    def fail_next(self, kind: str, *modes: str) -> None:
        """Queue failures for kind: token, host or credential; modes from FAILURES."""
        assert all(m in FAILURES for m in modes), modes
        with self._lock:
            self._failures.setdefault(kind, []).extend(modes)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for k, _, _ in self.requests if k == kind)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- answers ----------------------------------------------------------------------------

    def _take_failure(self, kind: str) -> str | None:
        with self._lock:
            queue = self._failures.get(kind) or []
            return queue.pop(0) if queue else None

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
        expires = datetime.now(timezone.utc) + timedelta(seconds=self.cred_lifetime_s)
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

            def _record(self, kind: str, body: Any) -> None:
                with fake._lock:
                    fake.requests.append((kind, self.path, body))

            def do_POST(self) -> None:
                raw = self._body()
                if self.path == "/oidc/v1/token":
                    self._record("token", raw.decode(errors="replace"))
                    if self._failed("token"):
                        return
                    if not fake.basic_auth_ok(self.headers.get("Authorization", "")):
                        return self._send(401, {"error": "invalid_client"})
                    if raw != b"grant_type=client_credentials&scope=all-apis":
                        return self._send(400, {"error": "invalid_request"})
                    return self._send(200, fake._issue_ws_token())
                body = json.loads(raw or b"{}")
                self._record("credential", body)
                if not fake.workspace_auth_ok(self.headers.get("Authorization", "")):
                    return self._send(401, {"error_code": "UNAUTHENTICATED",
                                            "message": "bad workspace token"})
                if self._failed("credential"):
                    return
                if self.path == "/api/2.0/database/credentials":
                    uuid.UUID(body["request_id"], version=4)
                    if body.get("instance_names") != [fake.instance]:
                        return self._send(404, {"error_code": "NOT_FOUND", "message": "no"})
                    return self._send(200, fake._issue_db_token("expiration_time"))
                if self.path == "/api/2.0/postgres/credentials":
                    if body.get("endpoint") != fake.endpoint:
                        return self._send(404, {"error_code": "NOT_FOUND", "message": "no"})
                    return self._send(200, fake._issue_db_token("expire_time"))
                self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

            def do_GET(self) -> None:
                self._record("host", None)
                if not fake.workspace_auth_ok(self.headers.get("Authorization", "")):
                    return self._send(401, {"error_code": "UNAUTHENTICATED",
                                            "message": "bad workspace token"})
                if self._failed("host"):
                    return
                if self.path == f"/api/2.0/database/instances/{fake.instance}":
                    return self._send(200, {"name": fake.instance, "state": fake.state,
                                            "read_write_dns": fake.host_answer,
                                            "capacity": "CU_1"})
                if self.path == f"/api/2.0/postgres/{fake.endpoint}":
                    return self._send(200, {"name": fake.endpoint, "status": {
                        "current_state": "ACTIVE", "hosts": {"host": fake.host_answer}}})
                self._send(404, {"error_code": "NOT_FOUND",
                                 "message": f"no such resource {self.path}"})

        return Handler
