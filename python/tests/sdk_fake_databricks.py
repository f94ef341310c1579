"""A local HTTP server speaking the few documented Databricks REST endpoints discovery uses.

The SDK is used unchanged: it is pointed at this server with host=http://127.0.0.1:<port>.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple


class FakeDatabricks:
    def __init__(self, pg_host: str, user: str, token_lifetime_s: float = 3600) -> None:
        self.instances: Dict[str, Dict[str, Any]] = {}
        self.projects: Dict[str, Dict[str, Any]] = {}  # project id -> {"default_branch", "endpoints"}
        self.user = user
        self.token = "token-0"
        self.token_lifetime_s = token_lifetime_s
        self.requests: List[Tuple[str, str, Optional[dict]]] = []
        self.pg_host = pg_host
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeDatabricks":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p.startswith(path_prefix))

    # ---- routes -------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Optional[dict]) -> Tuple[int, dict]:
        parts = path.split("?")[0].strip("/").split("/")
        if method == "GET" and parts[:4] == ["api", "2.0", "database", "instances"] and len(parts) == 5:
            inst = self.instances.get(parts[4])
            return (200, inst) if inst else _not_found(f"Database instance {parts[4]} not found")
        if method == "POST" and parts == ["api", "2.0", "database", "credentials"]:
            expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + self.token_lifetime_s))
            return 200, {"token": self.token, "expiration_time": expiry + ".123456789Z"}
        if method == "POST" and parts == ["api", "2.0", "postgres", "credentials"]:
            expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + self.token_lifetime_s))
            return 200, {"token": self.token, "expire_time": expiry + "Z"}
        if method == "GET" and parts == ["api", "2.0", "preview", "scim", "v2", "Me"]:
            return 200, {"userName": self.user, "id": "1"}
        if method == "GET" and parts[:4] == ["api", "2.0", "postgres", "projects"]:
            return self._project_route(parts[4:])
        return _not_found(f"no route {method} {path}")

    def _project_route(self, rest: List[str]) -> Tuple[int, dict]:
        project = self.projects.get(rest[0]) if rest else None
        if project is None:
            return _not_found(f"project {rest[:1]} not found")
        name = f"projects/{rest[0]}"
        if len(rest) == 1:
            return 200, {"name": name, "status": {"default_branch": project["default_branch"]}}
        if rest[1:] == ["branches"]:
            return 200, {"branches": [{"name": project["default_branch"], "status": {"default": True}}]}
        if len(rest) == 4 and rest[3] == "endpoints" and f"{name}/branches/{rest[2]}" == project["default_branch"]:
            return 200, {"endpoints": project["endpoints"]}
        return _not_found(f"no such resource {'/'.join(rest)}")

    def _handler(self) -> type:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((method, self.path, body))
                if self.headers.get("Authorization") != "Bearer test-pat":
                    status, payload = 401, {"error_code": "UNAUTHENTICATED", "message": "bad token"}
                else:
                    status, payload = fake.route(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _not_found(message: str) -> Tuple[int, dict]:
    return 404, {"error_code": "NOT_FOUND", "message": message}


def endpoint(project: str, branch: str, endpoint_id: str, kind: str, host: str) -> dict:
    return {"name": f"projects/{project}/branches/{branch}/endpoints/{endpoint_id}",
            "status": {"endpoint_type": f"ENDPOINT_TYPE_{kind}", "current_state": "ACTIVE",
                       "hosts": {"host": host}}}
