// Broker sign-in in Chromium (issue 19), run by signin.test.sh. Every page a person sees
// on the way: the gateway's consent page, the IdP's login and consent pages, the
// gateway's error pages. The MCP client is played here: a loopback redirect URI and a
// Client ID Metadata Document served by this script, the token exchange and the MCP
// calls made with fetch (what a client does outside the browser).
//
// Env: GATEWAY_URL, IDP_URL, CLIENT_PORT, INSPECTOR_PORT, CLUSTER.
// Exit 0 when every case passed; each case prints `ok - ...` or `FAIL - ...`.
import crypto from "node:crypto";
import http from "node:http";
import { launch, shot } from "./chromium.mjs";

const SUITE = "signin";
const GW = process.env.GATEWAY_URL;
const IDP = process.env.IDP_URL;
const CLIENT_PORT = Number(process.env.CLIENT_PORT);
const CLUSTER = process.env.CLUSTER || "otel";
const CLIENT = `http://127.0.0.1:${CLIENT_PORT}`;
const REDIRECT = `${CLIENT}/cb`;
const CIMD_URL = `${CLIENT}/client.json`;
const RESOURCE = `${GW}/mcp/${CLUSTER}`;

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL - ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The MCP client's side of the browser: its redirect URI, its metadata document, and
// two hostile pages (a cross-origin form POST, a frame) on another origin than the
// gateway's.
const client = http.createServer((req, res) => {
  const u = new URL(req.url, CLIENT);
  const html = (body) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>client</title></head><body>${body}</body></html>`);
  };
  if (u.pathname === "/client.json") {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=60" });
    res.end(JSON.stringify({
      client_id: CIMD_URL,
      client_name: "Metadata-document test client",
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    }));
  } else if (u.pathname === "/cb") {
    html(`<h1>The client received its answer</h1><pre>${[...u.searchParams.keys()].join(", ")}</pre>`);
  } else if (u.pathname === "/evil-post") {
    // Another origin POSTs a consent ticket it obtained (with the victim's cookie).
    const ticket = u.searchParams.get("ticket") || "";
    html(`<form id="f" method="post" action="${GW}/oauth/authorize">
<input type="hidden" name="ticket" value="${ticket.replace(/"/g, "&quot;")}">
<input type="hidden" name="action" value="approve"></form>
<script>document.getElementById("f").submit()</script>`);
  } else if (u.pathname === "/frame") {
    html(`<h1>A page framing the consent page</h1><iframe id="victim" width="600" height="400" src="${(u.searchParams.get("src") || "").replace(/"/g, "&quot;")}"></iframe>`);
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => client.listen(CLIENT_PORT, "127.0.0.1", r));

// A browser-based MCP client's origin (http://localhost:INSPECTOR_PORT, listed in the
// gateway's server.allowed_origins): its page does discovery, registration, the token
// exchange and the MCP calls with fetch(), so every one is a CORS request.
const BROWSER_APP = `http://localhost:${process.env.INSPECTOR_PORT}`;
const app = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end("<!doctype html><html><head><meta charset=\"utf-8\"><title>in-browser MCP client</title></head><body><h1>in-browser MCP client</h1></body></html>");
});
await new Promise((r) => app.listen(Number(process.env.INSPECTOR_PORT), "127.0.0.1", r));

function pkce() {
  const verifier = crypto.randomBytes(32).toString("base64url");
  const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
  return { verifier, challenge };
}

async function register() {
  const r = await fetch(`${GW}/oauth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "Browser test client",
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
    }),
  });
  assert(r.status === 201, `registration answered ${r.status}`);
  return (await r.json()).client_id;
}

function authorizeUrl(clientId, challenge, state, resource = RESOURCE) {
  const q = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  if (resource) q.set("resource", resource);
  return `${GW}/oauth/authorize?${q}`;
}

// Plays the person at the IdP (oidc-provider's dev pages: sign in as alice, continue)
// until the browser reaches `prefix`. `onIdp(page, kind)` may act instead (abort).
async function driveUntil(page, prefix, onIdp) {
  for (let i = 0; i < 150; i += 1) {
    const url = page.url();
    if (url.startsWith(prefix)) return new URL(url);
    if (url.startsWith(IDP)) {
      const login = await page.$('input[name="login"]');
      const kind = login ? "login" : (await page.$('button[type="submit"]')) ? "consent" : null;
      if (kind && onIdp && (await onIdp(page, kind))) continue;
      if (kind === "login") {
        await shot(page, SUITE, "idp-login");
        await page.type('input[name="login"]', "alice");
        await page.type('input[name="password"]', "any");
        await Promise.all([page.waitForNavigation({ timeout: 15000 }).catch(() => {}), page.click('button[type="submit"]')]);
        continue;
      }
      if (kind === "consent") {
        await shot(page, SUITE, "idp-consent");
        await Promise.all([page.waitForNavigation({ timeout: 15000 }).catch(() => {}), page.click('button[type="submit"]')]);
        continue;
      }
    }
    await sleep(100);
  }
  throw new Error(`never reached ${prefix}; stuck at ${page.url()}`);
}

async function token(form) {
  const r = await fetch(`${GW}/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  return { status: r.status, body: await r.json() };
}

// One MCP JSON-RPC call over streamable HTTP; answers the JSON-RPC message.
async function mcp(accessToken, body, session) {
  const headers = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${accessToken}`,
    "mcp-protocol-version": "2025-06-18",
  };
  if (session) headers["mcp-session-id"] = session;
  const r = await fetch(RESOURCE, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await r.text();
  const json = (r.headers.get("content-type") || "").includes("text/event-stream")
    ? JSON.parse(text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).pop() || "null")
    : text ? JSON.parse(text) : null;
  return { status: r.status, session: r.headers.get("mcp-session-id") || session, json };
}

async function toolsList(accessToken) {
  const init = await mcp(accessToken, {
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "signin", version: "1" } },
  });
  assert(init.status === 200, `initialize answered ${init.status}: ${JSON.stringify(init.json)}`);
  await mcp(accessToken, { jsonrpc: "2.0", method: "notifications/initialized" }, init.session);
  const list = await mcp(accessToken, { jsonrpc: "2.0", id: 2, method: "tools/list" }, init.session);
  assert(list.status === 200, `tools/list answered ${list.status}`);
  const tools = list.json?.result?.tools || [];
  assert(tools.length > 0, `tools/list: ${JSON.stringify(list.json)}`);
  return tools.map((t) => t.name);
}

// Approve from the consent page at `url`; answers the client's redirect (URL).
async function approveFlow(page, url, label) {
  const consent = await page.goto(url, { waitUntil: "load" });
  assert(consent.status() === 200, `consent page answered ${consent.status()}`);
  await page.waitForSelector('button[value="approve"]');
  await shot(page, SUITE, `consent-${label}`);
  await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[value="approve"]')]);
  return driveUntil(page, REDIRECT);
}

async function redeemAndList(clientId, cb, verifier, state) {
  assert(cb.searchParams.get("state") === state, `state came back as ${cb.searchParams.get("state")}`);
  assert(cb.searchParams.get("iss") === GW, `iss (RFC 9207) came back as ${cb.searchParams.get("iss")}`);
  const code = cb.searchParams.get("code");
  assert(code, `no code at the redirect URI: ${cb}`);
  const t = await token({
    grant_type: "authorization_code", code, redirect_uri: REDIRECT, client_id: clientId,
    code_verifier: verifier, resource: RESOURCE,
  });
  assert(t.status === 200 && t.body.access_token, `token exchange: ${t.status} ${JSON.stringify(t.body)}`);
  const names = await toolsList(t.body.access_token);
  console.log(`  tools/list with the token: ${names.join(", ")}`);
  return t.body;
}

const browser = await launch();
try {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("console", (m) => { if (m.type() === "error") console.log(`  [console] ${m.text()}`); });

  await check("Approve: the redirect URI gets a code and iss; the token lists tools", async () => {
    const clientId = await register();
    const { verifier, challenge } = pkce();
    const cb = await approveFlow(page, authorizeUrl(clientId, challenge, "st-approve"), "desktop");
    await shot(page, SUITE, "client-redirect");
    await redeemAndList(clientId, cb, verifier, "st-approve");
  });

  await check("the consent page at 360 px, dark, keyboard focus visible", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    await page.setViewport({ width: 360, height: 800 });
    await page.goto(authorizeUrl(clientId, challenge, "st-mobile"), { waitUntil: "load" });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    assert(!overflow, "the page scrolls sideways at 360 px");
    await shot(page, SUITE, "consent-360px");
    const lightBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      const s = getComputedStyle(el);
      return { tag: el.tagName, value: el.value, outline: s.outlineStyle, bg: getComputedStyle(document.body).backgroundColor };
    });
    assert(focused.tag === "BUTTON", `Tab reaches the buttons: ${JSON.stringify(focused)}`);
    assert(focused.outline !== "none", `focus is visible: ${JSON.stringify(focused)}`);
    const dark = (c) => { const [r, g, b] = (c.match(/\d+/g) || [255, 255, 255]).map(Number); return r + g + b < 150; };
    assert(!dark(lightBg) && dark(focused.bg), `light ${lightBg}, dark ${focused.bg}`);
    await shot(page, SUITE, "consent-360px-dark-focus");
    await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
    await page.setViewport({ width: 1280, height: 900 });
  });

  await check("Approve with a Client ID Metadata Document client", async () => {
    const { verifier, challenge } = pkce();
    await page.goto(authorizeUrl(CIMD_URL, challenge, "st-cimd"), { waitUntil: "load" });
    const text = await page.evaluate(() => document.body.innerText);
    assert(text.includes(`127.0.0.1:${CLIENT_PORT}`), "the consent page names the document's host");
    const cb = await approveFlow(page, authorizeUrl(CIMD_URL, challenge, "st-cimd"), "cimd");
    await redeemAndList(CIMD_URL, cb, verifier, "st-cimd");
  });

  await check("Deny: access_denied with state and iss at the redirect URI", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    await page.goto(authorizeUrl(clientId, challenge, "st-deny"), { waitUntil: "load" });
    await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[value="deny"]')]);
    const cb = await driveUntil(page, REDIRECT);
    assert(cb.searchParams.get("error") === "access_denied", `error=${cb.searchParams.get("error")}`);
    assert(cb.searchParams.get("state") === "st-deny", "state");
    assert(cb.searchParams.get("iss") === GW, `iss=${cb.searchParams.get("iss")}`);
    assert(!cb.searchParams.get("code"), "no code after Deny");
  });

  await check("a consent form POSTed from another origin is refused", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    await page.goto(authorizeUrl(clientId, challenge, "st-csrf"), { waitUntil: "load" });
    const ticket = await page.$eval('input[name="ticket"]', (e) => e.value);
    // Same site (127.0.0.1), another origin (port): the SameSite cookie is sent, so the
    // origin check is what refuses it.
    const resp = await Promise.all([
      page.waitForNavigation({ timeout: 15000 }),
      page.goto(`${CLIENT}/evil-post?ticket=${encodeURIComponent(ticket)}`),
    ]).then(([nav]) => nav);
    await sleep(200);
    const url = page.url();
    assert(url.startsWith(`${GW}/oauth/authorize`), `the POST ended at ${url}`);
    assert(resp && resp.status() === 403, `answered ${resp && resp.status()}`);
    const code = await page.$eval("#error", (e) => e.textContent);
    assert(code === "access_denied", `error code on the page: ${code}`);
    await shot(page, SUITE, "error-cross-origin-post");
  });

  await check("a framed consent page is not displayed", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    const src = authorizeUrl(clientId, challenge, "st-frame");
    await page.goto(`${CLIENT}/frame?src=${encodeURIComponent(src)}`, { waitUntil: "load" });
    await sleep(500);
    const frame = page.frames().find((f) => f !== page.mainFrame());
    assert(frame, "the iframe exists");
    let button = null;
    try {
      button = await frame.$('button[value="approve"]');
    } catch {
      button = null;
    }
    assert(!button, `the consent page rendered inside the frame (${frame.url()})`);
    await shot(page, SUITE, "framed-consent-refused");
  });

  await check("an IdP-side error reaches the consented client as an error with iss; a forged or foreign callback is a gateway page", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    let callbackUrl = null;
    const seen = (req) => { if (req.url().startsWith(`${GW}/oauth/callback`)) callbackUrl = req.url(); };
    page.on("request", seen);
    await page.goto(authorizeUrl(clientId, challenge, "st-idp-error"), { waitUntil: "load" });
    await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[value="approve"]')]);
    // At the IdP: abort instead of signing in (oidc-provider's "Cancel": access_denied).
    const cb = await driveUntil(page, REDIRECT, async (p) => {
      const abort = await p.$('a[href*="/abort"]');
      if (!abort) return false;
      await Promise.all([p.waitForNavigation({ timeout: 15000 }).catch(() => {}), abort.click()]);
      return true;
    });
    page.off("request", seen);
    assert(cb.searchParams.get("error") === "access_denied", `error=${cb.searchParams.get("error")}`);
    assert(cb.searchParams.get("iss") === GW, "iss");
    assert(callbackUrl, "the IdP sent the browser through the gateway's callback");
    // The same callback in another browser (no flow cookie): a page, never a redirect.
    const other = await browser.createBrowserContext();
    const p2 = await other.newPage();
    const r2 = await p2.goto(callbackUrl, { waitUntil: "load" });
    assert(p2.url().startsWith(`${GW}/oauth/callback`), `another browser was sent to ${p2.url()}`);
    assert(r2.status() === 400, `status ${r2.status()}`);
    await shot(p2, SUITE, "error-callback-other-browser");
    // An error with a state the gateway never issued: a page at the gateway.
    const r3 = await p2.goto(`${GW}/oauth/callback?error=server_error&state=forged&error_description=x`, { waitUntil: "load" });
    assert(p2.url().startsWith(`${GW}/oauth/callback`) && r3.status() === 400, `forged: ${r3.status()} ${p2.url()}`);
    await shot(p2, SUITE, "error-callback-forged-state");
    await other.close();
  });

  await check("an unregistered redirect URI is an error page, not a redirect", async () => {
    const clientId = await register();
    const { challenge } = pkce();
    const u = authorizeUrl(clientId, challenge, "st-bad").replace(encodeURIComponent(REDIRECT), encodeURIComponent("http://127.0.0.1:9/evil"));
    const r = await page.goto(u, { waitUntil: "load" });
    assert(page.url().startsWith(GW) && r.status() === 400, `${r.status()} at ${page.url()}`);
    await shot(page, SUITE, "error-unregistered-redirect");
  });

  await check("a browser-based client on an allowed origin: discovery, registration, token and tools/list, all by fetch()", async () => {
    await page.goto(`${BROWSER_APP}/`, { waitUntil: "load" });
    const found = await page.evaluate(async (resource) => {
      const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "in-browser", version: "1" } } };
      const r = await fetch(resource, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify(init) });
      const challenge = r.headers.get("www-authenticate") || "";
      const prmUrl = (challenge.match(/resource_metadata="([^"]+)"/) || [])[1];
      const prm = await (await fetch(prmUrl)).json();
      const as = await (await fetch(`${prm.authorization_servers[0].replace(/\/$/, "")}/.well-known/oauth-authorization-server`)).json();
      const reg = await fetch(as.registration_endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ client_name: "In-browser client", redirect_uris: [`${location.origin}/cb`], token_endpoint_auth_method: "none" }),
      });
      return { status: r.status, challenge, prm, as, reg: reg.status, client: await reg.json() };
    }, RESOURCE);
    assert(found.status === 401 && found.challenge.includes("resource_metadata"), `challenge readable from the page: ${JSON.stringify(found)}`);
    assert(found.as.authorization_response_iss_parameter_supported === true, "RFC 9207 in the metadata");
    assert(found.reg === 201, `registration from the page: ${found.reg}`);
    const { verifier, challenge } = pkce();
    const q = new URLSearchParams({
      response_type: "code", client_id: found.client.client_id, redirect_uri: `${BROWSER_APP}/cb`,
      state: "st-app", code_challenge: challenge, code_challenge_method: "S256", resource: RESOURCE,
    });
    await page.goto(`${found.as.authorization_endpoint}?${q}`, { waitUntil: "load" });
    await shot(page, SUITE, "consent-browser-app");
    await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[value="approve"]')]);
    const cb = await driveUntil(page, `${BROWSER_APP}/cb`);
    assert(cb.searchParams.get("iss") === GW, "iss");
    const listed = await page.evaluate(async (args) => {
      const t = await fetch(args.token, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "authorization_code", code: args.code, redirect_uri: `${location.origin}/cb`, client_id: args.clientId, code_verifier: args.verifier, resource: args.resource }),
      });
      const tok = await t.json();
      const h = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${tok.access_token}`, "mcp-protocol-version": "2025-06-18" };
      const parse = async (r) => {
        const text = await r.text();
        return (r.headers.get("content-type") || "").includes("text/event-stream")
          ? JSON.parse(text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).pop())
          : JSON.parse(text);
      };
      const i = await fetch(args.resource, { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "in-browser", version: "1" } } }) });
      const session = i.headers.get("mcp-session-id");
      if (session) h["mcp-session-id"] = session;
      await parse(i);
      await fetch(args.resource, { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) });
      const l = await fetch(args.resource, { method: "POST", headers: h, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) });
      const body = await parse(l);
      return { token: t.status, list: l.status, tools: (body.result?.tools || []).map((x) => x.name) };
    }, { token: found.as.token_endpoint, code: cb.searchParams.get("code"), clientId: found.client.client_id, verifier, resource: RESOURCE });
    assert(listed.token === 200 && listed.list === 200 && listed.tools.length > 0, JSON.stringify(listed));
    console.log(`  tools/list from the page: ${listed.tools.join(", ")}`);
  });

  await context.close();
} finally {
  await browser.close();
  client.close();
  app.close();
}

if (failures) {
  console.log(`${failures} case(s) failed`);
  process.exit(1);
}
console.log("all sign-in cases passed");
