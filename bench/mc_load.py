"""Multi-cluster load for bench/run.sh: many distinct bearer tokens on `/mcp/{cluster}`.

Usage:
  mc_load.py storm URL[,URL...] TOKENS OUT_JSON
      TOKENS distinct tokens arrive at once: every connection is opened first, then every
      `tools/list` is sent in the same instant (clients spread over the URLs round-robin).
  mc_load.py fill URL[,URL...] TOKENS CONNECTIONS OUT_JSON
      TOKENS distinct tokens, one `tools/list` each, over CONNECTIONS keep-alive
      connections (kept at or under the gateway's 16 concurrent discoveries, so every
      token is discovered and cached rather than served static-only).

Every answer is classified: `full` (HTTP 200, a tools list with dynamic `v_` tools),
`static_only` (HTTP 200, a tools list without them: discovery was saturated or failed),
or a failure (any other status, a JSON-RPC error, a dropped connection, a timeout).
Tokens are unsigned test JWTs with the same claims bar `sub`, so all of them have the same
grants: the bench gateway runs with `validate_tokens: false` and
`trust_clickhouse_token_checks: true` (bench/lib.sh), as in front of a ClickHouse whose token
processor checks every token, and then sends them as Bearer only and reads none of their claims.
Standard library only; bounded by a timeout on every step.
"""

import asyncio
import base64
import json
import sys
import time
from urllib.parse import urlsplit

from http1 import read_response

TIMEOUT = 60.0
EXP = int(time.time()) + 6 * 3600
HEAD = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()


def token(i, run):
    claims = json.dumps({"sub": f"bench-{run}-{i}", "preferred_username": f"bench{i}", "exp": EXP},
                        separators=(",", ":")).encode()
    return f"{HEAD}.{base64.urlsafe_b64encode(claims).rstrip(b'=').decode()}.c2lnbmF0dXJl"


def request(host, port, path, tok, rid):
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/list"}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
            f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def classify(status, data):
    if status != 200:
        return f"http_{status}", 0
    try:
        msg = json.loads(data)
    except ValueError:
        return "bad_json", 0
    if "error" in msg:
        return f"jsonrpc_error_{msg['error'].get('code')}", 0
    tools = msg.get("result", {}).get("tools")
    if not isinstance(tools, list):
        return "no_tools", 0
    full = any(t.get("name", "").startswith("v_") for t in tools)
    return ("full" if full else "static_only"), len(tools)


def target(url):
    u = urlsplit(url)
    return u.hostname, u.port or 80, u.path


def summarize(records, started, extra):
    counts, tool_counts = {}, {}
    for outcome, n, _ in records:
        counts[outcome] = counts.get(outcome, 0) + 1
        if n:
            tool_counts.setdefault(outcome, set()).add(n)
    lat = sorted(l for _, _, l in records)
    out = {
        "requests": len(records), "seconds": round(time.time() - started, 2), "outcomes": counts,
        "answered": counts.get("full", 0) + counts.get("static_only", 0),
        "failed": sum(v for k, v in counts.items() if k not in ("full", "static_only")),
        "tools_per_catalog": {k: sorted(v) for k, v in tool_counts.items()},
        "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
        # The storm's target: full catalogs answered within 5 s of the burst.
        "full_within_5s": sum(1 for o, _, l in records if o == "full" and l <= 5.0),
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
    }
    out.update(extra)
    return out


async def storm(urls, n, out):
    run = f"storm{int(time.time())}"
    conns = []

    async def connect(i):
        host, port, path = target(urls[i % len(urls)])
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
            return (r, w, host, port, path)
        except (OSError, asyncio.TimeoutError) as e:
            return e

    conns = await asyncio.gather(*(connect(i) for i in range(n)))
    go = asyncio.Event()
    records = []

    async def one(i, c):
        if isinstance(c, BaseException):
            records.append((f"connect_failed_{type(c).__name__}", 0, 0.0))
            return
        r, w, host, port, path = c
        await go.wait()
        t0 = time.time()
        try:
            w.write(request(host, port, path, token(i, run), i))
            await w.drain()
            status, data, _ = await asyncio.wait_for(read_response(r), TIMEOUT)
            outcome, count = classify(status, data)
        except asyncio.TimeoutError:
            outcome, count = "timeout", 0
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
            outcome, count = f"dropped_{type(e).__name__}", 0
        records.append((outcome, count, time.time() - t0))
        w.close()

    tasks = [asyncio.create_task(one(i, c)) for i, c in enumerate(conns)]
    await asyncio.sleep(0.2)  # every task is parked on the event
    started = time.time()
    go.set()
    await asyncio.gather(*tasks)
    json.dump(summarize(records, started, {"mode": "storm", "tokens": n, "routes": urls}), open(out, "w"))


async def fill(urls, n, conns, out):
    run = f"fill{int(time.time())}"
    records = []
    next_i = iter(range(n))

    async def worker(k):
        host, port, path = target(urls[k % len(urls)])
        r = w = None
        for i in next_i:
            t0 = time.time()
            try:
                if w is None:
                    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
                w.write(request(host, port, path, token(i, run), i))
                await w.drain()
                status, data, _ = await asyncio.wait_for(read_response(r), TIMEOUT)
                outcome, count = classify(status, data)
            except asyncio.TimeoutError:
                outcome, count, w = "timeout", 0, None
            except (ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
                outcome, count, w = f"dropped_{type(e).__name__}", 0, None
            records.append((outcome, count, time.time() - t0))
        if w is not None:
            w.close()

    started = time.time()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    s = summarize(records, started, {"mode": "fill", "tokens": n, "connections": conns, "routes": urls})
    s["rps"] = round(len(records) / max(s["seconds"], 1e-9), 1)
    json.dump(s, open(out, "w"))


def main():
    mode, urls = sys.argv[1], sys.argv[2].split(",")
    if mode == "storm":
        asyncio.run(storm(urls, int(sys.argv[3]), sys.argv[4]))
    elif mode == "fill":
        asyncio.run(fill(urls, int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")
    print(open(sys.argv[-1]).read())


if __name__ == "__main__":
    main()
