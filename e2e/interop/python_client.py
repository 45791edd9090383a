"""The official MCP Python SDK (PyPI `mcp`, 2.x) against a running gateway.

Usage: python_client.py URL MODE
  MODE legacy      the `initialize` handshake (2025-era, byte-identical to 1.x clients)
  MODE auto        the SDK's default: probe `server/discover`, adopt 2026-07-28 when offered
  MODE 2026-07-28  stateless: adopt the version without any handshake

Each check prints `ok <name>` or `FAIL <name>: why`; the exit code is the number of failures.
"""

import asyncio
import json
import sys

from checks import check, failures
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {"execute_query", "list_databases", "list_tables", "describe_table"}
# What each mode must end up speaking.
EXPECTED_VERSION = {"legacy": "2025-11-25", "auto": "2026-07-28", "2026-07-28": "2026-07-28"}



def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def run(url: str, mode: str) -> None:
    # The transport is built explicitly with streamable_http_client, as a client that
    # configures its own HTTP layer would; `Client(url)` builds the same thing.
    async with Client(streamable_http_client(url), mode=mode, cache=None) as client:
        check("protocol version", client.protocol_version == EXPECTED_VERSION[mode],
              f"negotiated {client.protocol_version!r}, expected {EXPECTED_VERSION[mode]!r}")
        if mode != "2026-07-28":  # a pinned version skips discover, so there is no server identity to read
            info = client.server_info
            check("server identifies itself", info is not None and info.name == "chmcp-gateway", f"server_info={info!r}")

        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        check("tools/list has the static tools", EXPECTED_TOOLS <= names, f"got {sorted(names)}")
        eq = next((t for t in tools.tools if t.name == "execute_query"), None)
        check("execute_query declares an outputSchema", eq is not None and bool(eq.output_schema), f"tool={eq!r}")
        check("execute_query is read-only", eq is not None and eq.annotations is not None and eq.annotations.read_only_hint is True,
              f"annotations={getattr(eq, 'annotations', None)!r}")

        r = await client.call_tool("execute_query", {"query": "SELECT 1 AS one"})
        sc = r.structured_content
        check("SELECT 1 succeeds", not r.is_error, text_of(r)[:300])
        check("SELECT 1 structuredContent rows", isinstance(sc, dict) and sc.get("rows") == [[1]] and sc.get("row_count") == 1,
              f"structuredContent={sc!r}")
        check("SELECT 1 structuredContent columns", isinstance(sc, dict) and [c.get("name") for c in sc.get("columns", [])] == ["one"],
              f"structuredContent={sc!r}")
        try:
            lines = r.content[0].text.splitlines()
            same = lines[:2] == ["one", "1"] and "one UInt8" in lines[2]
        except (AttributeError, IndexError):
            same = False
        check("text block carries the same rows (compact CSV with a header line)", same, f"content={r.content!r}")
        r = await client.call_tool("execute_query", {"query": "SELECT 1 AS one", "result_format": "json"})
        try:
            same = json.loads(r.content[0].text)["rows"] == r.structured_content["rows"]
        except (AttributeError, IndexError, ValueError, KeyError, TypeError):
            same = False
        check("result_format json: the text block carries the JSON", same, f"content={r.content!r}")

        r = await client.call_tool("execute_query", {"query": "SELECT * FROM no_such_db_interop.no_such_table"})
        check("SQL error is a tool result with isError", r.is_error, f"result={r!r}")
        check("SQL error carries ClickHouse's code", "81" in text_of(r) and "no_such_db_interop" in text_of(r),
              text_of(r)[:300])

        r = await client.call_tool("execute_query", {"query": "DROP TABLE analytics.events"})
        check("a write through execute_query is refused", r.is_error, f"result={r!r}")

        r = await client.call_tool("list_tables", {"database": "analytics"})
        check("list_tables sees analytics.events", not r.is_error and "events" in text_of(r), text_of(r)[:300])

        res = await client.list_resources()
        uris = {str(x.uri) for x in res.resources}
        check("resources/list has clickhouse://schema", "clickhouse://schema" in uris, f"got {sorted(uris)}")
        tpl = await client.list_resource_templates()
        tpls = {t.uri_template for t in tpl.resource_templates}
        check("table resource template listed", "clickhouse://table/{database}/{table}" in tpls, f"got {sorted(tpls)}")
        rd = await client.read_resource("clickhouse://table/analytics/events")
        body = "".join(getattr(c, "text", "") for c in rd.contents)
        check("resources/read of a table lists its columns", "amount" in body and "user" in body, body[:300])


def main() -> int:
    url, mode = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(run(url, mode))
    except Exception as e:  # a transport or protocol failure is a failed check, with its reason
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]  # anyio task groups wrap the real error
        check("session", False, f"{type(e).__name__}: {e}")
    return failures()


if __name__ == "__main__":
    sys.exit(main())
