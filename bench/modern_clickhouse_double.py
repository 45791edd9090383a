"""A modern-ClickHouse HTTP DOUBLE for the multi-cluster bench and soak. Not ClickHouse.

The only real server on this machine is Debian's ClickHouse 18.16, which refuses a Bearer
header and has no token users, so it cannot stand for a fleet where thousands of users
each bring their own JWT. This double plays a modern ClickHouse built with a JWT token
processor, just far enough for the gateway's multi-cluster paths:

- `Authorization: Bearer <jwt>` is accepted for any JWT (no signature check: a real
  server validates it against its IdP), unless the JWT's `sub` starts with one of the
  `--reject-sub` prefixes: then HTTP 403 with
  `Code: 516. DB::Exception: user: Authentication failed. (AUTHENTICATION_FAILED)`.
  `Basic` whose password is a JWT is treated the same way; anything else is refused.
- It answers, in `JSONCompact` (the gateway posts SQL in the body and asks for
  `default_format=JSONCompact` in the URL), exactly the queries the gateway sends:
  `SELECT 1` (the identity probe), `SELECT name FROM system.columns WHERE database =
  'system' AND table = '...'` (which columns system.tables / system.columns have), the
  discovery queries on `system.tables` and `system.columns` (a fixed set of VIEWS in the
  `analytics` database, so a `{type: read, view_regexp: 'analytics\\..*'}` rule gives
  every catalog the same tools), `SELECT version()`, `KILL QUERY` (empty). Any other
  statement gets a one-row, one-column result `[[1]]`: the double runs no SQL.
- Answers are precomputed bytes; an optional delay (`--delay-ms`, or at run time
  `GET /double/config?delay_ms=N`) is applied to the discovery queries only, to stand
  for the milliseconds a real server spends on its system tables.
- `GET /ping` says `Ok.` like ClickHouse; `GET /double/stats` returns query counts by kind
  and, while a delay is set, `peak_discovery_inflight`: the most discovery queries it
  held at once (what "at once on one server" means for the gateway's per-server cap).
- `--distinct` gives every JWT `sub` one more view of its own, so no two callers'
  catalogs are alike (the bench's memory-per-entry figure with distinct catalogs).

Loopback only, standard library only (asyncio protocol, HTTP/1.1 keep-alive).

Usage: modern_clickhouse_double.py PORT [--views N] [--delay-ms MS] [--reject-sub PREFIX]... [--distinct]
"""

import argparse
import asyncio
import base64
import json
import re
from urllib.parse import parse_qs, urlsplit

VERSION = "25.3.2.39"  # what the double claims to be, in `SELECT version()`

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--views", type=int, default=16, help="views in `analytics` (each one dynamic tool)")
ap.add_argument("--delay-ms", type=float, default=0.0, help="added to every discovery query")
ap.add_argument("--reject-sub", action="append", default=[], help="403/516 for JWTs whose sub starts with this")
ap.add_argument("--distinct", action="store_true",
                help="every JWT sub also sees a view of its own, so no two callers' catalogs are alike")
ARGS = ap.parse_args()

STATS = {}
INFLIGHT = {"discovery": 0}
DELAY = {"s": ARGS.delay_ms / 1000.0}


def compact(columns, rows):
    """A JSONCompact document laid out as ClickHouse writes it (`"data":` on its own line)."""
    meta = ",\n".join('\t\t{\n\t\t\t"name": %s,\n\t\t\t"type": %s\n\t\t}' % (json.dumps(n), json.dumps(t))
                      for n, t in columns)
    data = ",\n".join("\t\t" + json.dumps(r, ensure_ascii=False) for r in rows)
    text = ('{\n\t"meta":\n\t[\n%s\n\t],\n\n\t"data":\n\t[\n%s\n\t],\n\n\t"rows": %d,\n\n'
            '\t"statistics":\n\t{\n\t\t"elapsed": 0.000123,\n\t\t"rows_read": %d,\n\t\t"bytes_read": 0\n\t}\n}\n'
            % (meta, data, len(rows), len(rows)))
    return text.encode()


# The fixed schema: N parameterized views and one table in `analytics`.
VIEWS = [f"daily_{i:02d}" for i in range(ARGS.views)]
TABLES = [("analytics", "events", "MergeTree",
           "CREATE TABLE analytics.events (id UInt64, at DateTime, user String, kind String, amount Float64) "
           "ENGINE = MergeTree ORDER BY (at, id)", "raw events")]
for v in VIEWS:
    TABLES.append(("analytics", v, "View",
                   f"CREATE VIEW analytics.{v} AS SELECT kind, count() AS n, sum(amount) AS total "
                   f"FROM analytics.events WHERE toDate(at) = {{day:Date}} AND kind = {{kind:String}} GROUP BY kind",
                   f"Daily totals, variant {v[-2:]}"))
VIEW_COLUMNS = [("kind", "String", "event kind"), ("n", "UInt64", "events"), ("total", "Float64", "sum of amount")]
EVENT_COLUMNS = [("id", "UInt64", ""), ("at", "DateTime", ""), ("user", "String", ""),
                 ("kind", "String", ""), ("amount", "Float64", "")]

SYSTEM_COLUMNS = {  # what a modern server's system.tables / system.columns have (abridged)
    "tables": ["database", "name", "uuid", "engine", "is_temporary", "data_paths", "metadata_path",
               "metadata_modification_time", "dependencies_database", "dependencies_table",
               "create_table_query", "engine_full", "as_select", "partition_key", "sorting_key",
               "primary_key", "sampling_key", "storage_policy", "total_rows", "total_bytes",
               "lifetime_rows", "lifetime_bytes", "comment", "has_own_data", "loading_dependencies_database"],
    "columns": ["database", "table", "name", "type", "position", "default_kind", "default_expression",
                "data_compressed_bytes", "data_uncompressed_bytes", "marks_bytes", "comment",
                "is_in_partition_key", "is_in_sorting_key", "is_in_primary_key", "is_in_sampling_key",
                "compression_codec", "character_octet_length", "numeric_precision"],
}
ANSWERS = {
    "probe": compact([("1", "UInt8")], [[1]]),
    "version": compact([("version()", "String")], [[VERSION]]),
    "generic": compact([("result", "UInt8")], [[1]]),
    "kill": b"",
    "system_columns:tables": compact([("name", "String")], [[n] for n in SYSTEM_COLUMNS["tables"]]),
    "system_columns:columns": compact([("name", "String")], [[n] for n in SYSTEM_COLUMNS["columns"]]),
    "system_columns:other": compact([("name", "String")], []),
    "tables": compact([("database", "String"), ("name", "String"), ("engine", "String"),
                       ("create_table_query", "String"), ("comment", "String")],
                      [list(t) for t in TABLES]),
    "columns": compact([("database", "String"), ("table", "String"), ("name", "String"), ("type", "String"),
                        ("default_kind", "String"), ("comment", "String")],
                       [["analytics", "events", n, t, "", c] for n, t, c in EVENT_COLUMNS]
                       + [["analytics", v, n, t, "", c] for v in VIEWS for n, t, c in VIEW_COLUMNS]),
}
AUTH_FAILED = b"Code: 516. DB::Exception: user: Authentication failed. (AUTHENTICATION_FAILED)\n"
RE_SYSCOLS = re.compile(r"^SELECT name FROM system\.columns WHERE database = 'system' AND table = '(\w+)'")


def classify(sql):
    s = " ".join(sql.split())
    if s in ("SELECT 1", "SELECT 1;"):
        return "probe"
    m = RE_SYSCOLS.match(s)
    if m:
        t = m.group(1)
        return f"system_columns:{t}" if t in SYSTEM_COLUMNS else "system_columns:other"
    if s.startswith("SELECT database, name, engine, create_table_query") and "FROM system.tables" in s:
        return "tables"
    if s.startswith("SELECT database, table, name, type, default_kind") and "FROM system.columns" in s:
        return "columns"
    if s.lower().startswith("select version()"):
        return "version"
    if s.upper().startswith("KILL QUERY"):
        return "kill"
    return "generic"


def jwt_sub(token):
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return str(claims.get("sub", ""))
    except (IndexError, ValueError):
        return None


def bearer_sub(header):
    """The JWT `sub` of a Bearer or Basic(user:jwt) header, else None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        try:
            token = base64.b64decode(value.strip()).decode().partition(":")[2]
        except ValueError:
            return None
    else:
        return None
    return jwt_sub(token)


def authorized(header):
    """True when the credentials are a JWT that is not on the reject list."""
    sub = bearer_sub(header)
    return sub is not None and not any(sub.startswith(p) for p in ARGS.reject_sub)


def own_tables(sub):
    """--distinct: the fixed tables plus one view named after the caller."""
    tag = re.sub(r"[^a-z0-9]", "_", sub.lower())[:40]
    own = ("analytics", f"mine_{tag}", "View", f"CREATE VIEW analytics.mine_{tag} AS SELECT 1 AS one", "")
    return compact([("database", "String"), ("name", "String"), ("engine", "String"),
                    ("create_table_query", "String"), ("comment", "String")],
                   [list(t) for t in TABLES] + [list(own)])


def response(status, body, extra=b""):
    reason = {200: b"OK", 403: b"Forbidden", 404: b"Not Found"}.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
            b"X-ClickHouse-Server-Display-Name: modern-clickhouse-double\r\n%s"
            b"Content-Length: %d\r\n\r\n" % (status, reason, extra, len(body))) + body


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            method, target = head[0].split(" ")[:2]
            self.answer(method, target, headers, body)

    def answer(self, method, target, headers, body):
        url = urlsplit(target)
        if method == "GET" and url.path == "/ping":
            return self.send(response(200, b"Ok.\n"))
        if method == "GET" and url.path == "/double/stats":
            return self.send(response(200, json.dumps(STATS).encode()))
        if method == "GET" and url.path == "/double/config":
            q = parse_qs(url.query)
            if "delay_ms" in q:
                DELAY["s"] = float(q["delay_ms"][0]) / 1000.0
            return self.send(response(200, json.dumps({"delay_ms": DELAY["s"] * 1000}).encode()))
        if not authorized(headers.get("authorization")):
            STATS["auth_failed"] = STATS.get("auth_failed", 0) + 1
            return self.send(response(403, AUTH_FAILED, b"X-ClickHouse-Exception-Code: 516\r\n"))
        sql = parse_qs(url.query).get("query", [""])[0] + body.decode("utf-8", "replace")
        kind = classify(sql)
        STATS[kind] = STATS.get(kind, 0) + 1
        body = own_tables(bearer_sub(headers.get("authorization")) or "") if ARGS.distinct and kind == "tables" \
            else ANSWERS[kind]
        out = response(200, body)
        if DELAY["s"] > 0 and kind in ("tables", "columns", "system_columns:tables", "system_columns:columns"):
            # How many discovery queries this server holds at once (peak_discovery_inflight).
            INFLIGHT["discovery"] += 1
            STATS["peak_discovery_inflight"] = max(STATS.get("peak_discovery_inflight", 0), INFLIGHT["discovery"])
            asyncio.get_running_loop().call_later(DELAY["s"], self.send_discovery, out)
        else:
            self.send(out)

    def send(self, data):
        if not self.t.is_closing():
            self.t.write(data)

    def send_discovery(self, data):
        INFLIGHT["discovery"] -= 1
        self.send(data)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", ARGS.port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
