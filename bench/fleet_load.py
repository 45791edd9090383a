"""Fleet-connector load for bench/fleet.sh (`/mcp` with multicluster.fleet_endpoint).

Usage:
  fleet_load.py first URL OUT_JSON CLUSTER...
      One new caller, one cold `tools/list`: how many of the clusters' view tools it
      reaches, which it names pending (`_meta["chmcp/pendingClusters"]`), how long it took;
      then a second `tools/list` right after it, the same counts.
  fleet_load.py replicas URL,URL,URL CALLERS REQUESTS affinity|spread OUT_JSON
      CALLERS callers, each sending REQUESTS `tools/list` one after another; the replica
      is hash(Authorization) mod N with `affinity` (what ingress-nginx `upstream-hash-by:
      $http_authorization` does), a random one per request with `spread` (round-robin-like
      Service load balancing). At most 32 callers at once.

Tokens as in mc_load.py (unsigned JWTs the bench gateway passes through to the double).
Standard library only.
"""

import asyncio
import hashlib
import json
import random
import sys
import time

from http1 import read_response
from mc_load import TIMEOUT, target, token


def body_request(host, port, path, tok, rid):
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/list"}).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n"
            f"Authorization: Bearer {tok}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def list_tools(url, tok, rid):
    host, port, path = target(url)
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        w.write(body_request(host, port, path, tok, rid))
        await w.drain()
        status, data, _ = await asyncio.wait_for(read_response(r), TIMEOUT)
    finally:
        w.close()
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {data[:200]!r}")
    return json.loads(data)["result"]


def coverage(result, clusters):
    names = {t["name"] for t in result.get("tools", [])}
    reached = [c for c in clusters if any(n.startswith(f"{c}__v_") for n in names)]
    pending = (result.get("_meta") or {}).get("chmcp/pendingClusters", [])
    silent = [c for c in clusters if c not in reached and c not in pending]
    return {"reached": len(reached), "pending": len(pending), "silently_missing": len(silent),
            "tools": len(names), "bytes": len(json.dumps(result))}


async def first(url, out, clusters):
    tok = token(0, f"first{time.time_ns()}")
    t0 = time.time()
    one = await list_tools(url, tok, 1)
    took = time.time() - t0
    t1 = time.time()
    two = await list_tools(url, tok, 2)
    took2 = time.time() - t1
    res = {"clusters": len(clusters), "first": coverage(one, clusters), "first_s": round(took, 3),
           "second": coverage(two, clusters), "second_s": round(took2, 3)}
    json.dump(res, open(out, "w"))


async def replicas(urls, callers, reqs, mode, out):
    run = f"rep{mode}{time.time_ns()}"
    gate = asyncio.Semaphore(32)
    outcomes = {}
    rng = random.Random(7)

    async def caller(i):
        tok = token(i, run)
        h = int.from_bytes(hashlib.sha256(f"Bearer {tok}".encode()).digest()[:8], "big")
        async with gate:
            for k in range(reqs):
                url = urls[h % len(urls)] if mode == "affinity" else urls[rng.randrange(len(urls))]
                try:
                    res = await list_tools(url, tok, k)
                    full = sum(1 for t in res.get("tools", []) if "__v_" in t["name"]) > 0
                    o = "full" if full else "static_only"
                except (OSError, RuntimeError, ValueError, asyncio.TimeoutError) as e:
                    o = f"failed_{type(e).__name__}"
                outcomes[o] = outcomes.get(o, 0) + 1

    t0 = time.time()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    json.dump({"mode": mode, "callers": callers, "requests_per_caller": reqs, "outcomes": outcomes,
               "seconds": round(time.time() - t0, 2)}, open(out, "w"))


def main():
    mode = sys.argv[1]
    if mode == "first":
        asyncio.run(first(sys.argv[2], sys.argv[3], sys.argv[4:]))
    elif mode == "replicas":
        asyncio.run(replicas(sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]))
    else:
        sys.exit(f"unknown mode {mode}")
    print(open(sys.argv[3] if mode == "first" else sys.argv[6]).read())


if __name__ == "__main__":
    main()
