"""STAND-IN for a modern ClickHouse's HTTP authentication (NOT ClickHouse).

ClickHouse 18.16, the only server installable here, cannot check a freshly issued JWT.
A modern ClickHouse can: for a user created
`IDENTIFIED WITH http SERVER 'chmcp_verify' SCHEME 'BASIC'` it sends the request's Basic
credentials to its HTTP authentication server (the real `chmcp-gateway verify`) and runs
the query only on 200, applying the settings the verifier returns to the session.

This proxy does exactly that step and nothing else, in front of the real 18.16:
  * `Authorization: Basic base64(user:jwt)` is passed to the verifier unchanged;
  * `Authorization: Bearer <jwt>` (what the gateway sends in single-cluster OAuth mode) is
    turned into the Basic form a ClickHouse user would present - the username read from
    the token's `email` claim WITHOUT verification; the verifier then checks everything,
    including that the username equals the token's claim;
  * on 200 the SQL is forwarded to the real ClickHouse as its `default` user, with the
    verifier's settings added as URL parameters; on 401/403 the client gets a
    ClickHouse-style authentication error (code 516), as a modern server answers.

Usage: python ch_standin.py --port P --clickhouse http://127.0.0.1:CH --verifier http://127.0.0.1:V
"""

import argparse
import base64
import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None


def basic_credentials(header: str):
    """(user, token) from a Bearer or Basic Authorization header, or None."""
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            user, _, token = base64.b64decode(value).decode().partition(":")
        except Exception:
            return None
        return (user, token) if token else None
    if scheme.lower() == "bearer" and value:
        try:
            payload = value.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except Exception:
            return None
        user = claims.get("email")
        return (user, value) if isinstance(user, str) else None
    return None


def verify(user: str, token: str):
    """Asks the verifier as ClickHouse would: GET /verify with Basic user:token."""
    basic = base64.b64encode(f"{user}:{token}".encode()).decode()
    req = urllib.request.Request(f"{ARGS.verifier}/verify", headers={"Authorization": f"Basic {basic}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # no request lines with query text on stderr
        pass

    def answer(self, status: int, body: bytes, ctype: str = "text/plain; charset=UTF-8", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        creds = basic_credentials(self.headers.get("Authorization", ""))
        if creds is None:
            return self.answer(401, b"Code: 194. DB::Exception: Password required for user default (REQUIRED_PASSWORD)\n")
        status, verdict = verify(*creds)
        STATS["verified" if status == 200 else "refused"] += 1
        # Which tokens ClickHouse was shown, as hashes only (e2e/broker/flow.py compares
        # them with the token the MCP client holds).
        digest = hashlib.sha256(creds[1].encode()).hexdigest()
        if digest not in STATS["token_sha256"]:
            STATS["token_sha256"].append(digest)
        if status != 200:
            msg = f"Code: 516. DB::Exception: {creds[0]}: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n"
            return self.answer(401 if status in (401, 403) else 500, msg.encode())
        # Forward as `default`, with the verifier's session settings and nothing of the
        # caller's credentials.
        parts = urllib.parse.urlsplit(self.path)
        params = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in ("user", "password")]
        params += [(k, str(v)) for k, v in (verdict.get("settings") or {}).items()]
        params.append(("user", "default"))
        url = f"{ARGS.clickhouse}{parts.path}?{urllib.parse.urlencode(params)}"
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "content-length", "connection")}
        req = urllib.request.Request(url, data=body if self.command == "POST" else None, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                data, code, rh = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            data, code, rh = e.read(), e.code, e.headers
        keep = {k: v for k, v in rh.items() if k.lower().startswith("x-clickhouse")}
        self.answer(code, data, rh.get("Content-Type", "text/plain; charset=UTF-8"), keep)

    def do_GET(self):
        if self.path == "/__standin/stats":
            return self.answer(200, json.dumps(STATS).encode(), "application/json")
        self.handle_any()

    def do_POST(self):
        self.handle_any()


STATS = {"verified": 0, "refused": 0, "token_sha256": []}


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clickhouse", required=True)
    p.add_argument("--verifier", required=True)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print(f"STANDIN_READY {ARGS.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
