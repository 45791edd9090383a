"""The official MCP Python SDK (PyPI `mcp`, 2.x) calling one tool with a progress
callback, for the progress test in tests/budget.rs.

Usage: progress_client.py URL MODE SQL
  MODE legacy | 2026-07-28 (the two protocol eras)
Prints one JSON line: {"progress": [[progress, total, message], ...], "is_error": bool,
"text": "...", "notes_before_result": N}.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, mode: str, sql: str) -> None:
    seen = []
    done = False
    before = 0

    async def on_progress(progress, total, message):
        nonlocal before
        seen.append([progress, total, message])
        if not done:
            before += 1

    async with Client(streamable_http_client(url), mode=mode, cache=None) as client:
        r = await client.call_tool("execute_query", {"query": sql}, progress_callback=on_progress)
        done = True
        text = "\n".join(getattr(c, "text", "") for c in r.content)
    print(json.dumps({"progress": seen, "is_error": bool(r.is_error), "text": text[:500],
                      "notes_before_result": before}))


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3]))
