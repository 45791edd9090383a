"""The official MCP Python SDK against the gateway running inside its image.

Usage: sdk_select.py URL
Lists the tools and runs `SELECT 1` through `execute_query`; prints both, exits 1 when
either is wrong.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {"execute_query", "list_databases", "list_tables", "describe_table"}


async def run(url: str) -> int:
    async with Client(streamable_http_client(url), cache=None) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        print("tools/list:", ", ".join(tools))
        result = await client.call_tool("execute_query", {"query": "SELECT 1"})
        print("execute_query SELECT 1 -> isError:", result.is_error,
              "structuredContent:", json.dumps(result.structured_content))
        sc = result.structured_content or {}
        ok = EXPECTED_TOOLS <= set(tools) and not result.is_error and sc.get("rows") == [[1]]
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1])))
