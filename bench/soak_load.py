"""Load for bench/soak.sh: many concurrent MCP clients on loopback, every answer classified.

Usage: soak_load.py URL[,URL...] CLIENTS SECONDS EVENTS_FILE OUT_JSON
  URL          one or more MCP endpoints (clients are spread over them round-robin)
  EVENTS_FILE  soak.sh appends `<unix time> <label>` lines (e.g. `... ch_down`); read at the
               end to split the counts into phases
  OUT_JSON     the result: totals by outcome, per phase, and per second

Standard library only: a small HTTP/1.1 keep-alive client on asyncio streams, so that a
dropped connection (reset, EOF, timeout) is told apart from an HTTP status, a JSON-RPC
error and a tool error (`isError: true`). Bounded: stops after SECONDS.
JSON-RPC ids are unique across clients by default; SOAK_IDS=per-client numbers each
client's ids from 1, as SDK clients do (several clients then share ids).
SOAK_TOKENS_FILE (one bearer token a line): client i sends `Authorization: Bearer` with
token i mod their number (multi-cluster routes need one). Counts are also kept per URL
(`per_route`), for a report per cluster.
"""

import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import urlsplit

from http1 import read_response

URLS = sys.argv[1].split(",")
CLIENTS, SECONDS = int(sys.argv[2]), float(sys.argv[3])
EVENTS, OUT = sys.argv[4], sys.argv[5]
UNIQUE_IDS = os.environ.get("SOAK_IDS", "unique") == "unique"
TIMEOUT = 60.0
TOKENS = []
if os.environ.get("SOAK_TOKENS_FILE"):
    TOKENS = [t.strip() for t in open(os.environ["SOAK_TOKENS_FILE"]) if t.strip()]

QUERIES = [
    ("tools/call", {"name": "execute_query", "arguments": {"query": "SELECT count() FROM analytics.events WHERE id % 7 = {n}"}}),
    ("tools/call", {"name": "execute_query", "arguments": {"query": "SELECT kind, sum(amount) FROM analytics.events GROUP BY kind"}}),
    ("tools/call", {"name": "execute_query", "arguments": {"query": "SELECT 1"}}),
    ("tools/call", {"name": "list_tables", "arguments": {"database": "analytics"}}),
    ("tools/list", None),
]

records = []  # (t_end, outcome, latency_s, route index)
samples = {}  # outcome -> a few answer texts, to say what the errors were


async def http_post(conn, host, path, body, token=None):
    reader, writer = conn
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    return await read_response(reader)


def classify(status, data):
    if status == 202:
        return "ok", ""
    if status != 200:
        return f"http_{status}", data[:200].decode(errors="replace")
    try:
        msg = json.loads(data)
    except ValueError:
        return "bad_json", data[:200].decode(errors="replace")
    if "error" in msg:
        return f"jsonrpc_error_{msg['error'].get('code')}", str(msg["error"].get("message"))[:200]
    if msg.get("result", {}).get("isError"):
        content = msg["result"].get("content") or [{}]
        return "tool_error", str(content[0].get("text"))[:200]
    return "ok", ""


async def client(idx, deadline):
    route = idx % len(URLS)
    u = urlsplit(URLS[route])
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    token = TOKENS[idx % len(TOKENS)] if TOKENS else None
    conn = None
    n = 0
    rnd = random.Random(idx)
    while time.time() < deadline:
        n += 1
        method, params = rnd.choice(QUERIES)
        if params and "{n}" in json.dumps(params):
            params = json.loads(json.dumps(params).replace("{n}", str(n % 7)))
        rid = f"{idx}-{n}" if UNIQUE_IDS else n
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params:
            msg["params"] = params
        body = json.dumps(msg).encode()
        t0 = time.time()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
            status, data, close = await asyncio.wait_for(http_post(conn, f"{host}:{port}", path, body, token), TIMEOUT)
            outcome, text = classify(status, data)
            if text and len(samples.setdefault(outcome, {})) < 5:
                samples[outcome].setdefault(text[:40], text)  # one text per distinct beginning
            if close:
                conn[1].close()
                conn = None
        except ConnectionRefusedError:
            outcome, conn = "dropped_connection_refused", None
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            outcome = "dropped_connection"
            conn = None
        except asyncio.TimeoutError:
            outcome, conn = "dropped_timeout", None
        records.append((time.time(), outcome, time.time() - t0, route))
        if outcome.startswith("dropped"):
            await asyncio.sleep(0.05)
    if conn is not None:
        conn[1].close()


async def main():
    deadline = time.time() + SECONDS
    start = time.time()
    await asyncio.gather(*(client(i, deadline) for i in range(CLIENTS)))
    events = []
    if os.path.exists(EVENTS):
        for line in open(EVENTS):
            t, _, label = line.strip().partition(" ")
            events.append((float(t), label))
    events.sort()

    def phase(t):
        name = "before"
        for et, label in events:
            if t >= et:
                name = label
        return name

    totals, phases, per_sec, per_route = {}, {}, {}, {}
    for t, outcome, _, route in records:
        totals[outcome] = totals.get(outcome, 0) + 1
        p = phases.setdefault(phase(t), {})
        p[outcome] = p.get(outcome, 0) + 1
        rp = per_route.setdefault(URLS[route], {}).setdefault(phase(t), {})
        rp[outcome] = rp.get(outcome, 0) + 1
        s = per_sec.setdefault(int(t - start), {})
        s[outcome] = s.get(outcome, 0) + 1
    oks = sorted(lat for _, o, lat, _ in records if o == "ok")
    first_ok_after = {}
    for et, label in events:
        later = [t for t, o, _, _ in records if o == "ok" and t >= et]
        first_ok_after[label] = round(min(later) - et, 2) if later else None
    first_ok_after_route = {}
    for r, url in enumerate(URLS):
        for et, label in events:
            later = [t for t, o, _, rr in records if o == "ok" and rr == r and t >= et]
            first_ok_after_route.setdefault(url, {})[label] = round(min(later) - et, 2) if later else None
    json.dump({
        "start": start, "seconds": round(time.time() - start, 1), "clients": CLIENTS, "requests": len(records),
        "totals": totals, "phases": phases, "events": events, "first_ok_after": first_ok_after,
        "ok_p50_ms": round(oks[len(oks) // 2] * 1000, 2) if oks else None,
        "ok_p99_ms": round(oks[int(len(oks) * 0.99)] * 1000, 2) if oks else None,
        "per_second": per_sec, "routes": URLS, "per_route": per_route,
        "first_ok_after_route": first_ok_after_route,
        "samples": {k: sorted(v.values()) for k, v in samples.items()},
    }, open(OUT, "w"))


asyncio.run(main())
