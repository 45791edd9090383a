"""The official MCP Python SDK (PyPI `mcp`, 2.x) on the fleet connector (`/mcp` with
multicluster.fleet_endpoint): one connection, the tools of every cluster, a query on
each cluster by the `cluster` argument.

Usage: fleet_client.py URL TOKEN_FILE CLUSTER...
Each check prints `ok <name>` or `FAIL <name>: why`; the exit code is the number of failures.
"""

import sys

import httpx2
from checks import check, run_checks
from mcp import Client
from mcp.client.streamable_http import streamable_http_client



async def run(url: str, token: str, clusters: list[str]) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client:
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        for c in clusters:
            check(f"tools/list has cluster {c}'s view tool", f"{c}__v_analytics_whoami" in names, f"got {sorted(names)}")
        check("tools/list has list_clusters", "list_clusters" in names, f"got {sorted(names)}")
        eq = next((t for t in tools.tools if t.name == "execute_query"), None)
        prop = (eq.input_schema or {}).get("properties", {}).get("cluster", {}) if eq else {}
        check("execute_query takes a cluster from the allow-list", prop.get("enum") == clusters, f"cluster={prop!r}")

        r = await client.call_tool("list_clusters", {})
        got = [(c.get("name"), c.get("status")) for c in (r.structured_content or {}).get("clusters", [])]
        check("list_clusters: every cluster reachable", got == [(c, "ok") for c in clusters], f"got {got!r}")

        for c in clusters:
            r = await client.call_tool("execute_query", {"cluster": c, "query": "SELECT 1 AS one"})
            sc = r.structured_content or {}
            check(f"SELECT 1 on cluster {c}", not r.is_error and sc.get("rows") == [[1]] and sc.get("cluster") == c,
                  f"result={r!r}")
            r = await client.call_tool(f"{c}__v_analytics_whoami", {})
            sc = r.structured_content or {}
            check(f"{c}__v_analytics_whoami answers from server {c}", sc.get("rows") == [[c]], f"result={r!r}")


def main() -> int:
    url, token_file, clusters = sys.argv[1], sys.argv[2], sys.argv[3:]
    token = open(token_file).read().strip()
    return run_checks(run(url, token, clusters))


if __name__ == "__main__":
    sys.exit(main())
