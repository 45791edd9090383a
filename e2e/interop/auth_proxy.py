"""A loopback-only HTTP proxy that adds `Authorization: Bearer <token>` to every request.

The conformance CLI cannot send credentials, and `/mcp/{cluster}` routes always need a
bearer (multicluster.md), so e2e/interop.sh puts this in front of the gateway to run the
suite against a cluster route. Everything else (method, path, headers including Origin
and Host, body, status, response headers) passes through unchanged.

Usage: auth_proxy.py LISTEN_PORT UPSTREAM_PORT TOKEN_FILE
"""

import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, TOKEN_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(TOKEN_FILE) as f:
    TOKEN = f.read().strip()
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; the token never reaches a log either way
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        headers.setdefault("Authorization", f"Bearer {TOKEN}")
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            self.send_error(502, f"upstream: {e}")
            return
        finally:
            conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_OPTIONS = do_PUT = forward


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
