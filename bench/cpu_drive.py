"""Sends N identical requests to the gateway one after another on one keep-alive
connection and checks each answer (bench/cpu_per_call.sh). Stdlib only.

    python3 cpu_drive.py PORT N METHOD PATH BODY|- EXPECT [AUTHORIZATION]

AUTHORIZATION, when given, is sent as the Authorization header on every request.
"""

import http.client
import sys


def main():
    port, n, method, path, body, expect = sys.argv[1:7]
    auth = sys.argv[7] if len(sys.argv) > 7 else ""
    data = None if body == "-" else body.encode()
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    if auth:
        headers["Authorization"] = auth
    if data is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
    for i in range(int(n)):
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        if resp.status // 100 != 2 or expect not in text:
            sys.exit(f"request {i}: HTTP {resp.status}, expected {expect!r} in {text[:300]!r}")
        if resp.getheader("connection", "").lower() == "close":
            sys.exit(f"request {i}: the gateway closed the connection")
    conn.close()


if __name__ == "__main__":
    main()
