"""The official MCP Python SDK (PyPI `mcp`, 2.x) on the fleet connector with
`server.tools_listing: searched` (e2e/context.sh): search and call by name across two
real ClickHouse 18.16 servers, grants that hide a database, prompts, completions, and
the message a typo gets.

Usage: context_client.py URL TOKEN_FILE MODE   (MODE: legacy | 2026-07-28)
Each check prints `ok <name>` or `FAIL <name>: why`; the exit code is the number of failures.
"""

import asyncio
import sys

import httpx2
from checks import check, failures
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PromptReference, ResourceTemplateReference


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def run(url: str, token: str, mode: str) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
        tag = f"[{mode}]"
        tools = await client.list_tools()
        names = sorted(t.name for t in tools.tools)
        check(f"{tag} searched tools/list: static tools, list_clusters, search_tools, call_tool, no view tool",
              {"execute_query", "list_clusters", "search_tools", "call_tool"} <= set(names)
              and not any("__" in n for n in names), f"got {names}")

        # By a column name of a view (18.16 views have no comments): on both clusters.
        r = await client.call_tool("search_tools", {"query": "revenue"})
        found = [m["tool"] for m in (r.structured_content or {}).get("matches", [])]
        check(f"{tag} search by column name finds the view on both clusters",
              {"east__v_analytics_daily_sales", "west__v_analytics_daily_sales"} <= set(found), f"found {found}; {text_of(r)}")
        check(f"{tag} search results name their cluster",
              all(m.get("cluster") in ("east", "west") for m in r.structured_content["matches"]), f"{r.structured_content}")

        # By a word of a column comment (the insert tool of analytics.orders).
        r = await client.call_tool("search_tools", {"query": "turnover euros", "cluster": "west"})
        found = [m["tool"] for m in (r.structured_content or {}).get("matches", [])]
        check(f"{tag} search by a word of a column comment, one cluster",
              found[:1] == ["west__i_analytics_orders"] and not any(f.startswith("east__") for f in found),
              f"found {found}; {text_of(r)}")

        # What the grants hide: `hidden` is readable on west only.
        r = await client.call_tool("search_tools", {"query": "payroll"})
        found = [m["tool"] for m in (r.structured_content or {}).get("matches", [])]
        check(f"{tag} a caller never finds what their grants hide",
              found == ["west__v_hidden_payroll_totals"], f"found {found}")

        # The found tool runs, through call_tool and directly.
        r = await client.call_tool("call_tool", {"name": "east__v_analytics_daily_sales"})
        sc = r.structured_content or {}
        check(f"{tag} call_tool runs the found view on its cluster",
              not r.is_error and sc.get("cluster") == "east" and len(sc.get("rows", [])) == 2
              and all(row[2] == "east" for row in sc["rows"]), f"result={r!r}")
        r = await client.call_tool("call_tool", {"name": "east__v_hidden_payroll_totals"})
        check(f"{tag} call_tool cannot run what the grants hide", r.is_error or "error" in str(r).lower(), f"result={r!r}")
        r = await client.call_tool("call_tool", {"name": "west__v_analytics_whoami", "arguments": {"nope": 1}})
        check(f"{tag} call_tool checks arguments as when listed",
              r.is_error and "nope" in text_of(r) and "inputSchema" in text_of(r), text_of(r))

        # A typo gets a syntax message, not an invitation to write.
        r = await client.call_tool("execute_query", {"cluster": "east", "query": "SELEC 1"})
        t = text_of(r)
        check(f"{tag} SELEC 1 is a syntax error that does not mention write_query",
              r.is_error and "syntax error" in t and "SELECT" in t and "write_query" not in t, t)
        r = await client.call_tool("execute_query", {"cluster": "east", "query": "SELECT * FROM analytics.nope"})
        check(f"{tag} a ClickHouse error ends with what to try next", r.is_error and "list_tables" in text_of(r), text_of(r))

        # Prompts, filled from what the caller can see.
        p = await client.list_prompts()
        pnames = [x.name for x in p.prompts]
        check(f"{tag} prompts/list", pnames == ["explore_database", "investigate_table", "draft_query"], f"got {pnames}")
        g = await client.get_prompt("investigate_table", {"cluster": "west", "database": "analytics", "table": "orders"})
        body = " ".join(getattr(m.content, "text", "") for m in g.messages)
        check(f"{tag} investigate_table names the table's columns and comments",
              "revenue_eur Float64" in body and "gross turnover in euros" in body, body[:400])
        g = await client.get_prompt("explore_database", {"cluster": "east", "database": "hidden"})
        body = " ".join(getattr(m.content, "text", "") for m in g.messages)
        check(f"{tag} explore_database shows no table the grants hide", "payroll" not in body, body[:400])

        # Completions: clusters, databases, tables narrowed by the chosen database.
        c = await client.complete(PromptReference(type="ref/prompt", name="explore_database"), {"name": "cluster", "value": "w"})
        check(f"{tag} completion of cluster", c.completion.values == ["west"], f"{c.completion}")
        c = await client.complete(PromptReference(type="ref/prompt", name="explore_database"),
                                  {"name": "database", "value": ""}, {"cluster": "west"})
        check(f"{tag} completion of database follows the grants (west)",
              c.completion.values == ["analytics", "hidden"], f"{c.completion}")
        c = await client.complete(PromptReference(type="ref/prompt", name="investigate_table"),
                                  {"name": "table", "value": "d"}, {"cluster": "east", "database": "analytics"})
        check(f"{tag} completion of table narrowed by database and prefix", c.completion.values == ["daily_sales"], f"{c.completion}")


async def modern_double(url: str) -> None:
    """modern_double: a view's comment (modern servers only) finds its tool, which runs."""
    async with Client(streamable_http_client(url), mode="legacy", cache=None) as client:
        r = await client.call_tool("search_tools", {"query": "courier"})
        found = [m["tool"] for m in (r.structured_content or {}).get("matches", [])]
        check("[modern double] search by a word of a view's comment", found == ["v_default_carrier_counts"],
              f"found {found}; {text_of(r)}")
        r = await client.call_tool("call_tool", {"name": "v_default_carrier_counts"})
        sc = r.structured_content or {}
        check("[modern double] the found view runs", not r.is_error and sc.get("row_count") == 2, f"result={r!r}")
        check("[modern double] its text is CSV with a header line", text_of(r).startswith("carrier,n\n"), text_of(r))


def main() -> int:
    url, token_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "modern-double":
        try:
            asyncio.run(modern_double(url))
        except Exception as e:
            check("[modern double] the client ran to the end", False, f"{type(e).__name__}: {e}")
        return failures()
    token = open(token_file).read().strip()
    try:
        asyncio.run(run(url, token, mode))
    except Exception as e:  # a transport or protocol failure is a failed check, with its reason
        check(f"[{mode}] the client ran to the end", False, f"{type(e).__name__}: {e}")
    return failures()


if __name__ == "__main__":
    sys.exit(main())
