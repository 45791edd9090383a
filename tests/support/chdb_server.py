"""A MODERN-CLICKHOUSE DOUBLE: ClickHouse's HTTP interface in front of PyPI `chdb`.

This is a test double, not a ClickHouse server. `chdb` runs current ClickHouse (26.x)
in-process: its parser, planner, table functions (`eval`, `url`, `dictionary`, ...),
settings and `EXPLAIN ESTIMATE` on MergeTree data are the real engine's. What a real
server would do differently, and this double does not:
- **no users, no authentication, no grants**: `Authorization` and `user`/`password` are
  ignored; every query runs as the one local user (a real server applies the user's
  profile, quotas and grants, and answers 401/403/516 for a bad credential);
- **no `system.query_log`**: what reached the engine is kept here instead, in memory, and
  served at `GET /double/log` (query id, text, settings, whether it ran);
- **one query at a time**: chdb serializes queries in one process, so a `KILL QUERY` waits
  for the query it names (a real server runs them side by side);
- no progress headers, no compression, no sessions, no `X-ClickHouse-Progress`.
What it does as a modern server does: settings in the URL (`readonly=2` included, applied
before the caller's own `SETTINGS` clause, which modern ClickHouse lets override every
setting but `readonly`), `query_id`, `default_format`, `param_*` query parameters,
`X-ClickHouse-Query-Id` / `X-ClickHouse-Summary` / `X-ClickHouse-Exception-Code`
headers, error bodies `Code: N. DB::Exception: ... (NAME) (version ...)` with the HTTP
status a modern server gives that code.

Usage: chdb_server.py PORT [--path DIR] [--init FILE.sql]
  --path   where MergeTree data lives (default: a fresh temporary folder)
  --init   statements run once at start, unrestricted, one per `;`-ended line group
Loopback only. Prints `ready PORT` on stdout when it listens.
"""

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

try:
    from chdb import _chdb
except ImportError:
    print("chdb is not installed in this python: run scripts/deps.sh chdb", file=sys.stderr)
    sys.exit(3)

# URL parameters of ClickHouse's HTTP interface that are not settings.
NOT_SETTINGS = {"query", "query_id", "database", "user", "password", "quota_key", "session_id",
                "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query"}
CODE = re.compile(r"Code: (\d+)\. DB::Exception: .*?\(([A-Z_0-9]+)\)", re.S)
# The statuses modern ClickHouse's HTTP handler gives these codes (others: 500).
STATUS_BY_CODE = {
    62: 400, 27: 400, 26: 400, 6: 400, 38: 400, 41: 400, 46: 400, 47: 400, 53: 400, 115: 400, 36: 400,
    60: 404, 81: 404, 16: 404,
    164: 403, 497: 403, 516: 403, 192: 401, 193: 401, 194: 401,
    158: 500, 159: 500, 307: 500,
}


class Engine:
    """One chdb data folder; every request opens its own connection (settings die with it)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.log = []

    def run(self, sql, settings, params, fmt, query_id, record=True):
        entry = {"query_id": query_id, "query": sql, "settings": settings, "ran": False, "error": None}
        with self.lock:
            if record:
                self.log.append(entry)
            conn = _chdb.connect(self.path)
            try:
                # readonly last: after readonly=1 no other SET would be accepted.
                ordered = sorted(settings.items(), key=lambda kv: kv[0] == "readonly")
                for name, value in ordered:
                    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                        raise RuntimeError(f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)")
                    res = conn.query(f"SET {name} = {literal(value)}", "TSV")
                    if res.has_error():
                        raise RuntimeError(res.error_message())
                started = time.monotonic()
                res = conn.query(sql, fmt, params=params or {})
                if res.has_error():
                    raise RuntimeError(res.error_message())
                entry["ran"] = True
                return res.bytes(), {
                    "read_rows": str(res.storage_rows_read()),
                    "read_bytes": str(res.storage_bytes_read()),
                    "written_rows": str(res.rows_written()),
                    "written_bytes": str(res.bytes_written()),
                    "result_rows": str(res.rows_read()),
                    "result_bytes": str(res.bytes_read()),
                    "elapsed_ns": str(int((time.monotonic() - started) * 1e9)),
                }
            except RuntimeError as e:
                entry["error"] = str(e).splitlines()[0][:300] if str(e) else "error"
                raise
            finally:
                conn.close()


def literal(text):
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def format_of(sql, settings):
    fmt = settings.pop("default_format", None) or "TabSeparated"
    return fmt


def handler_for(engine):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status, body, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path in ("/ping", "/"):
                if url.path == "/" and "query" in dict(parse_qsl(url.query)):
                    return self.do_POST()
                return self.reply(200, b"Ok.\n")
            if url.path == "/double/log":
                return self.reply(200, json.dumps(engine.log).encode(), [("Content-Type", "application/json")])
            self.reply(404, b"Code: 1000. DB::Exception: no such handler in the chdb double. (UNKNOWN)\n")

        def do_POST(self):
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            args = parse_qsl(url.query, keep_blank_values=True)
            query = dict(args).get("query", "")
            sql = (query + ("\n" if query and body else "") + body).strip()
            query_id = dict(args).get("query_id") or f"double-{len(engine.log)}"
            params = {k[len("param_"):]: v for k, v in args if k.startswith("param_")}
            settings = {k: v for k, v in args if k not in NOT_SETTINGS and not k.startswith("param_")}
            fmt = format_of(sql, settings)
            headers = [("X-ClickHouse-Query-Id", query_id), ("X-ClickHouse-Server-Display-Name", "chdb-double")]
            try:
                out, summary = engine.run(sql, settings, params, fmt, query_id)
            except RuntimeError as e:
                message = str(e).strip() or "Code: 1001. DB::Exception: unknown error. (STD_EXCEPTION)"
                m = CODE.search(message)
                code = int(m.group(1)) if m else 1001
                text = f"{message} (version 26.x chdb double)\n"
                return self.reply(STATUS_BY_CODE.get(code, 500), text.encode(),
                                  headers + [("X-ClickHouse-Exception-Code", str(code)),
                                             ("Content-Type", "text/plain; charset=UTF-8")])
            headers.append(("X-ClickHouse-Summary", json.dumps(summary)))
            headers.append(("X-ClickHouse-Format", fmt))
            self.reply(200, out, headers)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--path", default=None)
    ap.add_argument("--init", default=None)
    a = ap.parse_args()
    path = a.path or tempfile.mkdtemp(prefix="chdb-double-")
    engine = Engine(path)
    if a.init:
        with open(a.init) as f:
            for statement in [s.strip() for s in f.read().split(";\n") if s.strip()]:
                engine.run(statement.rstrip(";"), {}, {}, "TSV", "init", record=False)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler_for(engine))
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
