// The official TypeScript SDK client (npm @modelcontextprotocol/sdk, pinned in
// package.json) against a running gateway: initialize, tools/list, execute_query.
// Usage: node ts_client.mjs URL. Prints `ok NAME` / `FAIL NAME: why`; exit code = failures.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.argv[2]);
let failures = 0;
function check(name, ok, why = "") {
  if (ok) console.log(`ok   ${name}`);
  else {
    failures++;
    console.log(`FAIL ${name}: ${why}`);
  }
}

try {
  const client = new Client({ name: "chmcp-interop-ts", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(url);
  await client.connect(transport);
  const info = client.getServerVersion();
  check("server identifies itself", info?.name === "chmcp-gateway", JSON.stringify(info));
  check("no session id is issued", transport.sessionId === undefined, `sessionId=${transport.sessionId}`);

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const want of ["execute_query", "list_databases", "list_tables", "describe_table"]) {
    check(`tools/list has ${want}`, names.includes(want), JSON.stringify(names));
  }

  // callTool validates structuredContent against the tool's outputSchema (SDK behaviour).
  const r = await client.callTool({ name: "execute_query", arguments: { query: "SELECT 1 AS one" } });
  check("SELECT 1 succeeds", !r.isError, JSON.stringify(r).slice(0, 300));
  const sc = r.structuredContent;
  check("SELECT 1 structuredContent", JSON.stringify(sc?.rows) === "[[1]]" && sc?.row_count === 1, JSON.stringify(sc));

  const e = await client.callTool({ name: "execute_query", arguments: { query: "SELECT * FROM no_such_db_interop.t" } });
  check("SQL error is isError", e.isError === true, JSON.stringify(e).slice(0, 300));

  await client.close();
} catch (err) {
  check("session", false, `${err?.name}: ${err?.message}`);
}
process.exit(Math.min(failures, 100));
