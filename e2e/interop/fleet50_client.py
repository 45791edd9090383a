"""The official MCP Python SDK (PyPI `mcp`, 2.x) on a fleet of many cluster names: the
first `tools/list` must reach every cluster's view tool or name the cluster as pending
(in the `list_clusters` tool's description and the result's `_meta`); a second listing,
within the gateway's stated budget (queue 2 s + discovery 3 s), must reach them all.

Usage: fleet50_client.py URL TOKEN_FILE SERVER_NAME CLUSTER...
SERVER_NAME is what `analytics.whoami` answers on the one server behind every name.
Each check prints `ok <name>` or `FAIL <name>: why`; the exit code is the number of failures.
"""

import sys
import time

import httpx2
from checks import check, run_checks
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

BUDGET_S = 5.0  # the gateway's QUEUE_BUDGET + DISCOVERY_BUDGET


def reached(tools, clusters):
    names = {t.name for t in tools}
    return [c for c in clusters if f"{c}__v_analytics_whoami" in names]


def pending_named(result):
    lc = next((t for t in result.tools if t.name == "list_clusters"), None)
    described = (lc.description or "") if lc else ""
    meta = (result.meta or {}).get("chmcp/pendingClusters", []) if hasattr(result, "meta") else []
    return described, set(meta or [])


async def run(url: str, token: str, server: str, clusters: list[str]) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        t0 = time.monotonic()
        first = await client.list_tools()
        took = time.monotonic() - t0
        got = reached(first.tools, clusters)
        missing = [c for c in clusters if c not in got]
        described, meta = pending_named(first)
        unnamed = [c for c in missing if c not in meta or f" {c}" not in described]
        print(f"first tools/list: {len(got)} of {len(clusters)} clusters' views, {len(first.tools)} tools, {took:.2f} s; not reached {missing}")
        check(f"first tools/list reaches all {len(clusters)} clusters or names the rest pending",
              not unnamed, f"missing and not named pending: {unnamed}")
        check("first tools/list answers within the budget", took <= BUDGET_S + 1.0, f"{took:.2f} s")

        r = await client.call_tool("list_clusters", {})
        rows = (r.structured_content or {}).get("clusters", [])
        statuses = {row.get("name"): row.get("status") for row in rows}
        check("list_clusters names every cluster, each ok or pending",
              sorted(statuses) == sorted(clusters) and set(statuses.values()) <= {"ok", "pending"},
              f"got {statuses!r}")

        second = await client.list_tools()
        got2 = reached(second.tools, clusters)
        check(f"second tools/list reaches all {len(clusters)} clusters", len(got2) == len(clusters),
              f"missing {[c for c in clusters if c not in got2]}")
        _, meta2 = pending_named(second)
        check("second tools/list names nothing pending", not meta2, f"pending {sorted(meta2)}")

        last = clusters[-1]
        r = await client.call_tool(f"{last}__v_analytics_whoami", {})
        sc = r.structured_content or {}
        check(f"{last}__v_analytics_whoami answers from the shared server", sc.get("rows") == [[server]], f"result={r!r}")


def main() -> int:
    url, token_file, server, clusters = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    token = open(token_file).read().strip()
    return run_checks(run(url, token, server, clusters))


if __name__ == "__main__":
    sys.exit(main())
