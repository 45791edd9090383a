// The result view (ui://chmcp/result) in real chromium, fed real results from a real
// ClickHouse 18.16 through a running gateway (started by result_view.test.sh).
//   node result_view.mjs GATEWAY_MCP_URL
// The MCP side is the official TypeScript client; the host side is the reference
// AppBridge from @modelcontextprotocol/ext-apps in result_view_host.html, served from
// this directory on a private loopback port. Every request the page makes is
// intercepted: the host's own files are served, anything else fails the run.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import assert from "node:assert/strict";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { launch, screenshotDir, shot } from "./chromium.mjs";

const SUITE = "result_view";
const HERE = path.dirname(new URL(import.meta.url).pathname);
const MODULES = path.join(HERE, "node_modules");
const gatewayUrl = process.argv[2];
if (!gatewayUrl) throw new Error("usage: node result_view.mjs GATEWAY_MCP_URL");

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`  pass  ${name}`);
  } catch (e) {
    failed++;
    console.log(`  FAIL  ${name}\n        ${String(e && e.stack || e).split("\n").slice(0, 6).join("\n        ")}`);
  }
}

// --- the MCP side: the view document and real tool results -----------------------
const client = new Client({ name: "chmcp-result-view-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(gatewayUrl)));
const { tools } = await client.listTools();
const { resources } = await client.listResources();
const read = await client.readResource({ uri: "ui://chmcp/result" });
const viewHtml = read.contents[0].text;
const call = (query) => client.callTool({ name: "execute_query", arguments: { query } });

const Q = {
  table: "SELECT id, user, kind, amount, 18446744073709551600 + id AS big, toDecimal64(amount, 4) AS exact FROM analytics.events ORDER BY id LIMIT 12",
  series: "SELECT toStartOfHour(at) AS hour, count() AS events, round(sum(amount), 2) AS amount FROM analytics.events GROUP BY hour ORDER BY hour",
  bars: "SELECT kind, count() AS events, round(avg(amount), 2) AS avg_amount FROM analytics.events GROUP BY kind ORDER BY events DESC",
  capped: "SELECT id, user, at FROM analytics.events ORDER BY id",
  broken: "SELECT no_such_column FROM analytics.events",
  hostile: "SELECT '<img src=x onerror=\"parent.postMessage(1, \\'*\\')\">' AS `<b>name</b>`, 1 AS n",
};
const results = {};
for (const [k, q] of Object.entries(Q)) results[k] = await call(q);
const VIEW_TOOL = "analytics_events_by_user";
results.viewTool = await client.callTool({ name: VIEW_TOOL, arguments: {} });

// --- the host page, served locally ------------------------------------------------
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  let file = null;
  if (url.pathname === "/host.html") file = path.join(HERE, "result_view_host.html");
  else if (url.pathname.startsWith("/node_modules/")) {
    const p = path.normalize(path.join(MODULES, decodeURIComponent(url.pathname.slice("/node_modules/".length))));
    if (p.startsWith(MODULES + path.sep)) file = p;
  }
  if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  const type = file.endsWith(".html") ? "text/html" : "text/javascript";
  res.writeHead(200, { "content-type": `${type}; charset=utf-8` }).end(fs.readFileSync(file));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await launch();
const page = await browser.newPage();
const problems = []; // console errors and page errors, from every frame
const stray = []; // requests that are not the host page's own files
page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
await page.setRequestInterception(true);
page.on("request", (r) => {
  const u = r.url();
  if (u.startsWith(origin + "/host.html") || u.startsWith(origin + "/node_modules/") || u.startsWith("about:")) {
    r.continue();
  } else {
    stray.push(`${r.frame() === page.mainFrame() ? "host" : "view"}: ${u}`);
    r.abort();
  }
});
await page.setViewport({ width: 900, height: 700 });
await page.goto(`${origin}/host.html`);
await page.waitForFunction(() => window.hostReady === true);

function viewFrame() {
  const f = page.frames().find((x) => x !== page.mainFrame());
  assert.ok(f, "the view's iframe is there");
  return f;
}
async function mount(result, query, { theme = "light", width = 760, toolName = "execute_query", styles } = {}) {
  await page.evaluate((a) => window.mount(a), {
    html: viewHtml, permissions: read.contents[0]._meta.ui.permissions, theme, width, toolName,
    input: query === null ? {} : { query }, result, styles,
  });
  const f = viewFrame();
  await f.waitForFunction(() => document.getElementById("waiting").hidden);
  // Let the host apply the view's size before a screenshot.
  await page.waitForFunction(() => document.querySelector("iframe").dataset.sized === "1");
  return f;
}
const sc = (r) => r.structuredContent;

// --- checks -----------------------------------------------------------------------
await check("execute_query links to the view; other tools do not", async () => {
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  assert.equal(byName.execute_query._meta?.ui?.resourceUri, "ui://chmcp/result");
  assert.equal(byName[VIEW_TOOL]?._meta?.ui?.resourceUri, "ui://chmcp/result", "the view tool links too");
  for (const n of ["write_query", "list_databases", "list_tables", "describe_table"]) assert.equal(byName[n]._meta?.ui, undefined, n);
  const listed = resources.find((r) => r.uri === "ui://chmcp/result");
  assert.equal(listed?.mimeType, "text/html;profile=mcp-app");
  assert.equal(read.contents[0].mimeType, "text/html;profile=mcp-app");
  assert.deepEqual(read.contents[0]._meta.ui.csp.connectDomains, []);
  console.log(`        view document: ${Buffer.byteLength(viewHtml)} bytes`);
});

await check("the table has the rows and columns of the result, numbers exact and right-aligned", async () => {
  const r = sc(results.table);
  const f = await mount(results.table, Q.table);
  const got = await f.evaluate(() => ({
    heads: [...document.querySelectorAll("thead th .n")].map((e) => e.textContent),
    rows: [...document.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent)),
    align: [...document.querySelectorAll("tbody tr:first-child td")].map((td) => getComputedStyle(td).textAlign),
    toggle: !document.getElementById("toggle").hidden,
    why: document.getElementById("no-chart").hidden ? "" : document.getElementById("no-chart").textContent,
  }));
  assert.deepEqual(got.heads, r.columns.map((c) => c.name));
  assert.equal(got.rows.length, r.rows.length);
  assert.equal(got.rows.length, 12);
  assert.deepEqual(got.rows, r.rows.map((row) => row.map((v) => (v === null ? "NULL" : String(v)))));
  // As it arrived: a float would show 18446744073709552000.
  assert.equal(got.rows[0][4], "18446744073709551600");
  assert.deepEqual(got.align, ["right", "left", "left", "right", "right", "right"]);
  // A category and four numbers: bars show one or two, so no chart is forced.
  assert.equal(got.toggle, false);
  assert.match(got.why, /one or two numbers/);
  await shot(page, SUITE, "table-light-wide");
});

await check("sorting a 64-bit column orders by exact value", async () => {
  const f = viewFrame();
  await f.click("thead th:nth-child(5)");
  const asc = await f.$$eval("tbody tr td:nth-child(5)", (tds) => tds.map((td) => td.textContent));
  assert.equal(asc[0], "18446744073709551600");
  assert.equal(asc.at(-1), "18446744073709551611");
  await f.click("thead th:nth-child(5)");
  const desc = await f.$$eval("tbody tr td:nth-child(5)", (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(desc, [...asc].reverse());
  assert.equal(await f.$eval("thead th:nth-child(5)", (th) => th.getAttribute("aria-sort")), "descending");
});

await check("a time series draws a line with one point per row", async () => {
  const r = sc(results.series);
  assert.ok(r.rows.length >= 10, `expected hourly rows, got ${r.rows.length}`);
  const f = await mount(results.series, Q.series);
  const lines = await f.$$eval("svg[data-chart=line] polyline", (ps) => ps.map((p) => ({
    series: p.getAttribute("data-series"), points: p.getAttribute("points").trim().split(/\s+/).length,
  })));
  assert.deepEqual(lines, [{ series: "events", points: r.rows.length }, { series: "amount", points: r.rows.length }]);
  const labels = await f.$$eval("svg .axis-label", (ts) => ts.map((t) => t.textContent));
  assert.ok(labels.includes("hour"), `x axis label: ${labels}`);
  assert.equal(await f.$eval("#show-chart", (b) => b.getAttribute("aria-pressed")), "true");
  await shot(page, SUITE, "line-light-wide");
  // The view alone, as the README shows it (docs/result-view.png is a copy).
  const alone = path.join(screenshotDir(SUITE), "view-only-line-light.png");
  await (await page.$("iframe")).screenshot({ path: alone });
  console.log(`screenshot: ${path.relative(process.cwd(), alone)}`);
  await f.click("#show-table");
  assert.equal(await f.$$eval("tbody tr", (t) => t.length), r.rows.length);
  assert.equal(await f.$eval("#chart-pane", (p) => p.hidden), true);
});

await check("a category result draws bars, one per category and number", async () => {
  const r = sc(results.bars);
  assert.equal(r.rows.length, 3);
  const f = await mount(results.bars, Q.bars);
  const bars = await f.$$eval("svg[data-chart=bar] rect", (rs) => rs.map((x) => x.getAttribute("data-series")));
  assert.equal(bars.length, r.rows.length * 2);
  assert.deepEqual([...new Set(bars)], ["events", "avg_amount"]);
  await shot(page, SUITE, "bars-light-wide");
});

await check("a view tool's result shows the same way, the footer naming the tool", async () => {
  const r = sc(results.viewTool);
  assert.equal(r.rows.length, 8);
  const f = await mount(results.viewTool, null, { toolName: VIEW_TOOL });
  assert.equal(await f.$$eval("svg[data-chart=bar] rect", (rs) => rs.length), 8);
  assert.equal(await f.$eval("#query", (q) => q.textContent), VIEW_TOOL);
  await shot(page, SUITE, "view-tool-bars-light-wide");
});

await check("dark theme, narrow: colors follow the host and the chart fits", async () => {
  let f = await mount(results.series, Q.series, { theme: "dark", width: 360 });
  const look = await f.evaluate(() => ({
    theme: document.documentElement.dataset.theme,
    bg: getComputedStyle(document.body).backgroundColor,
    svgW: document.querySelector("svg").getBoundingClientRect().width,
    bodyW: document.body.clientWidth,
    scrollW: document.documentElement.scrollWidth,
  }));
  assert.equal(look.theme, "dark");
  const [rr, gg, bb] = look.bg.match(/\d+/g).map(Number);
  assert.ok(rr + gg + bb < 150, `dark background, got ${look.bg}`);
  assert.ok(look.svgW <= look.bodyW, `chart ${look.svgW}px within ${look.bodyW}px`);
  assert.ok(look.scrollW <= 360, `no horizontal overflow: ${look.scrollW}`);
  await shot(page, SUITE, "line-dark-narrow");
  f = await mount(results.bars, Q.bars, { theme: "dark", width: 360 });
  await shot(page, SUITE, "bars-dark-narrow");
  f = await mount(results.table, Q.table, { theme: "dark", width: 360 });
  await shot(page, SUITE, "table-dark-narrow");
  // A theme switch while the view is open.
  await page.evaluate(() => window.setTheme("light"));
  await f.waitForFunction(() => document.documentElement.dataset.theme === "light");
});

await check("the host's style variables take over the view's own colors and fonts", async () => {
  const f = await mount(results.bars, Q.bars, {
    styles: { variables: { "--color-background-primary": "#102030", "--font-sans": "serif" } },
  });
  const look = await f.evaluate(() => ({
    bg: getComputedStyle(document.body).backgroundColor,
    font: getComputedStyle(document.body).fontFamily,
  }));
  assert.deepEqual(look, { bg: "rgb(16, 32, 48)", font: "serif" });
});

await check("a capped result shows the truncation notice", async () => {
  const r = sc(results.capped);
  assert.equal(r.truncated?.reason, "max_result_rows");
  const f = await mount(results.capped, Q.capped);
  const notice = await f.$eval("#truncated", (n) => (n.hidden ? "" : n.textContent));
  assert.match(notice, new RegExp(`first ${r.row_count} rows`));
  assert.match(notice, /max_result_rows/);
  assert.equal(await f.$$eval("tbody tr", (t) => t.length), r.row_count);
  // id, user, at: the one number is an identifier, so the table stays alone.
  assert.match(await f.$eval("#no-chart", (n) => n.textContent), /identifiers \(id\)/);
  await shot(page, SUITE, "capped-light-wide");
});

await check("the footer shows the query; an error result shows the server's message", async () => {
  let f = viewFrame();
  assert.equal(await f.$eval("#query", (q) => q.textContent), Q.capped);
  assert.equal(results.broken.isError, true);
  f = await mount(results.broken, Q.broken);
  const text = await f.$eval("#failed", (n) => (n.hidden ? "" : n.textContent));
  assert.match(text, /no_such_column/);
});

await check("a fleet result names its cluster in the footer", async () => {
  // The fleet connector adds `cluster` to the structured result (tests/result_view.rs
  // checks that on a real fleet); here a real 18.16 result carries it the same way.
  const fleetResult = structuredClone(results.bars);
  fleetResult.structuredContent.cluster = "analytics-eu";
  const f = await mount(fleetResult, Q.bars);
  assert.equal(await f.$eval("#cluster", (c) => c.textContent), "cluster: analytics-eu");
});

await check("hostile cells and column names are shown as text, never as markup", async () => {
  const r = sc(results.hostile);
  assert.ok(r, JSON.stringify(results.hostile).slice(0, 300));
  const f = await mount(results.hostile, Q.hostile);
  const got = await f.evaluate(() => ({
    imgs: document.querySelectorAll("img, b").length,
    cell: document.querySelector("tbody td").textContent,
    head: document.querySelector("thead th .n").textContent,
  }));
  assert.deepEqual(got, { imgs: 0, cell: r.rows[0][0], head: "<b>name</b>" });
});

await check("copy as CSV: quoted as RFC 4180, values exact, the button reports it", async () => {
  const r = sc(results.table);
  const f = await mount(results.table, Q.table);
  const quoting = await f.evaluate(() => window.chmcpResultView.csv({
    columns: [{ name: "a,b" }, { name: "c" }], rows: [["x\"y", null], ["18446744073709551615", 1]],
  }));
  assert.equal(quoting, '"a,b",c\r\n"x""y",\r\n18446744073709551615,1\r\n');
  const csv = await f.evaluate((res) => window.chmcpResultView.csv(res), r);
  const lines = csv.trimEnd().split("\r\n");
  assert.equal(lines.length, r.rows.length + 1);
  assert.equal(lines[0], r.columns.map((c) => c.name).join(","));
  assert.ok(lines[1].includes(",18446744073709551600,"), lines[1]);
  await f.click("#copy-csv");
  await f.waitForFunction(() => document.getElementById("copy-csv").textContent !== "Copy as CSV");
  assert.equal(await f.$eval("#copy-csv", (b) => b.textContent), "Copied");
});

await check("no console errors in the host or the view", async () => {
  assert.deepEqual(problems, []);
});

await check("no request leaves the page (and the interception sees the view's requests)", async () => {
  assert.deepEqual(stray, []);
  // The probe: a request the view makes is seen, so the empty list above means something.
  await viewFrame().evaluate(() => { new Image().src = "http://192.0.2.1/probe.png"; });
  await page.waitForFunction(() => true);
  for (let i = 0; i < 50 && !stray.length; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(stray, ["view: http://192.0.2.1/probe.png"]);
});

await browser.close();
server.close();
await client.close();
console.log(`result_view: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
