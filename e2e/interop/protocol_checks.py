"""Version negotiation on the wire, for each protocol revision the gateway claims.

The conformance suite has no scenario of its own for 2025-03-26 (its only one, session
lifecycle, does not apply to a stateless server), so these raw HTTP checks pin down what
every revision must see. Standard library only.

Usage: protocol_checks.py URL. Prints `ok NAME` / `FAIL NAME: why`; exit code = failures.
"""

import json
import sys
import urllib.error
import urllib.request

URL = sys.argv[1]
LEGACY = ["2025-03-26", "2025-06-18", "2025-11-25"]
MODERN = "2026-07-28"
failures = 0


def check(name, ok, why=""):
    global failures
    print(f"ok   {name}" if ok else f"FAIL {name}: {why}")
    failures += 0 if ok else 1


def post(body, headers=None, method="POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers or {})
    req = urllib.request.Request(URL, data=data if method == "POST" else None, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, hdrs, parsed


def initialize(version):
    return post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": version, "capabilities": {},
                            "clientInfo": {"name": "chmcp-interop", "version": "1"}}})


def meta(version=MODERN):
    return {"io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientInfo": {"name": "chmcp-interop", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}


for v in LEGACY:
    status, hdrs, body = initialize(v)
    got = (body or {}).get("result", {}).get("protocolVersion") if isinstance(body, dict) else None
    check(f"initialize {v} is echoed", status == 200 and got == v, f"HTTP {status}, body {body!r:.300}")
    check(f"initialize {v} issues no session id", hdrs.get("Mcp-Session-Id") is None, f"Mcp-Session-Id={hdrs.get('Mcp-Session-Id')}")
    # A request of that era after the handshake, with its header.
    status, _, body = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"MCP-Protocol-Version": v})
    n = len(body.get("result", {}).get("tools", [])) if isinstance(body, dict) else 0
    check(f"tools/list with MCP-Protocol-Version {v}", status == 200 and n >= 4, f"HTTP {status}, body {body!r:.300}")

for asked in [MODERN, "1999-01-01"]:
    status, _, body = initialize(asked)
    got = (body or {}).get("result", {}).get("protocolVersion") if isinstance(body, dict) else None
    check(f"initialize {asked} is answered with a legacy version", status == 200 and got in LEGACY, f"HTTP {status}, body {body!r:.300}")

status, _, body = post({"jsonrpc": "2.0", "id": 3, "method": "server/discover", "params": {"_meta": meta()}},
                       {"MCP-Protocol-Version": MODERN, "Mcp-Method": "server/discover"})
sv = body.get("result", {}).get("supportedVersions", []) if isinstance(body, dict) else []
check("server/discover lists all four revisions", status == 200 and set(LEGACY + [MODERN]) <= set(sv), f"HTTP {status}, body {body!r:.400}")

status, _, body = post({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, {"MCP-Protocol-Version": "1999-01-01"})
check("unsupported MCP-Protocol-Version header is a 400 naming the supported ones",
      status == 400 and "2025-11-25" in json.dumps(body), f"HTTP {status}, body {body!r:.300}")

status, _, body = post({"jsonrpc": "2.0", "method": "notifications/initialized"})
check("a notification gets 202 with no body", status == 202 and body is None, f"HTTP {status}, body {body!r:.200}")

status, _, _ = post(b"", method="GET")
check("GET on the endpoint is 405", status == 405, f"HTTP {status}")

status, _, body = post(b"{not json")
code = body.get("error", {}).get("code") if isinstance(body, dict) else None
check("malformed JSON is -32700 with HTTP 400", status == 400 and code == -32700, f"HTTP {status}, body {body!r:.200}")

sys.exit(min(failures, 100))
