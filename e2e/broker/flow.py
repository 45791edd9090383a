"""End to end: the official MCP Python SDK (2.x) signs in through chmcp's OAuth broker.

The SDK's OAuth client provider starts with no token against the gateway's MCP URL and
follows 401 -> metadata -> dynamic registration -> /oauth/authorize. Its redirect handler
plays the user's browser headlessly (a cookie-keeping HTTP client): it approves the
gateway's consent page, signs in at the real IdP (npm oidc-provider's dev login and
consent pages), follows the IdP back to the gateway's /oauth/callback, and hands the code
the gateway sends to the client's redirect URI back to the SDK, which redeems it.
Then: tools/list and execute_query (through the ClickHouse stand-in and the real
verifier to the real ClickHouse); then the token is refreshed and the query runs again.

MODE is the gateway's `token_mode`. `sealed`: the token the SDK holds is the gateway's
own (not a JWT), and ClickHouse was never shown it, only the upstream token inside it.
`passthrough`: the SDK holds the IdP's JWT and ClickHouse is shown that same token.

Usage: python flow.py MCP_URL STANDIN_STATS_URL [sealed|passthrough]
Exit code 0 on success; every step prints one line.
"""

import asyncio
import hashlib
import html
import re
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

# Never contacted: the browser stops at the redirect and reads the code from it.
CLIENT_REDIRECT = "http://127.0.0.1:9/callback"


def step(msg: str) -> None:
    print(f"[broker-e2e] {msg}", flush=True)


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class HeadlessBrowser:
    """The user: approves consent, signs in as alice at the IdP, returns the code."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None
        self.allowed = True

    async def open(self, authorization_url: str) -> None:
        assert self.allowed, "the SDK started a new sign-in instead of refreshing"
        step(f"browser opens {authorization_url.split('?')[0]}")
        async with httpx2.AsyncClient(follow_redirects=False, timeout=15) as b:
            r = await b.get(authorization_url)
            assert r.status_code == 200, f"consent page: {r.status_code} {r.text}"
            assert r.headers.get("x-frame-options") == "DENY"
            assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", "")
            ticket = re.search(r'name="ticket" value="([^"]+)"', r.text)
            assert ticket, f"no consent ticket in: {r.text}"
            step("consent page shown; approving")
            r = await b.post(urljoin(str(r.url), "/oauth/authorize"), data={"ticket": html.unescape(ticket.group(1)), "action": "approve"})
            for _ in range(25):
                if r.status_code in (301, 302, 303, 307, 308):
                    location = urljoin(str(r.url), r.headers["location"])
                    if location.startswith(CLIENT_REDIRECT):
                        q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                        assert "code" in q, f"the gateway answered with an error: {q}"
                        self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
                        step("the gateway redirected back to the client with a code")
                        return
                    r = await b.get(location)
                    continue
                assert r.status_code == 200, f"{r.url}: {r.status_code} {r.text[:500]}"
                onward = re.search(r'id="continue" href="([^"]+)"', r.text)
                if 'http-equiv="refresh"' in r.text and onward:
                    # The gateway's "continuing" page after the consent POST: a browser
                    # follows its meta refresh.
                    r = await b.get(urljoin(str(r.url), html.unescape(onward.group(1))))
                    continue
                form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
                assert form, f"no form at {r.url}: {r.text[:500]}"
                action = urljoin(str(r.url), html.unescape(form.group(1)))
                if 'name="login"' in r.text:
                    step("IdP login page: signing in as alice")
                    r = await b.post(action, data={"prompt": "login", "login": "alice", "password": "any"})
                else:
                    step("IdP consent page: continuing")
                    r = await b.post(action, data={"prompt": "consent"})
            raise AssertionError("the sign-in did not finish within 25 steps")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None, "no code received"
        result, self.result = self.result, None
        return result


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def run_query(provider: OAuthClientProvider, mcp_url: str, label: str) -> None:
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            tools = await client.list_tools()
            names = [t.name for t in tools.tools]
            step(f"{label}: tools/list -> {names}")
            assert "execute_query" in names, names
            result = await client.call_tool("execute_query", {"query": "SELECT 40 + 2 AS answer, version() AS v"})
            assert not result.is_error, text_of(result)
            step(f"{label}: execute_query -> {text_of(result)[:200]}")
            assert "42" in text_of(result) + str(result.structured_content), result


def is_jwt(token: str) -> bool:
    return token.count(".") == 2


async def main(mcp_url: str, standin_stats: str, mode: str) -> None:
    storage = MemoryStorage()
    browser = HeadlessBrowser()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[CLIENT_REDIRECT],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="chmcp broker e2e",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )

    await run_query(provider, mcp_url, "first sign-in")
    assert storage.client is not None and storage.tokens is not None
    step(f"registered client_id length {len(storage.client.client_id)}; got a refresh token: {storage.tokens.refresh_token is not None}")
    assert storage.tokens.refresh_token, "the broker handed out no refresh token"
    first_access = storage.tokens.access_token
    if mode == "sealed":
        assert not is_jwt(first_access) and first_access.startswith("chmcp_at."), "sealed mode must hand out the gateway's own token"
        step(f"the SDK holds a sealed token (not a JWT), expires_in {storage.tokens.expires_in}")
    else:
        assert is_jwt(first_access), "passthrough hands out the IdP's JWT"
        step("the SDK holds the IdP's JWT (passthrough)")

    # Pretend the access token expired: the SDK must refresh (no browser this time).
    provider.context.token_expiry_time = 1.0
    browser.allowed = False
    await run_query(provider, mcp_url, "after refresh")
    assert storage.tokens.access_token != first_access, "the token was not refreshed"
    step("the refreshed token is a new one")

    async with httpx2.AsyncClient(timeout=5) as h:
        stats = (await h.get(standin_stats)).json()
    seen = set(stats.pop("token_sha256"))
    step(f"ClickHouse stand-in: {stats}; {len(seen)} distinct tokens shown to it")
    assert stats["verified"] >= 2 and stats["refused"] == 0, stats
    held = {hashlib.sha256(t.encode()).hexdigest() for t in (first_access, storage.tokens.access_token)}
    if mode == "sealed":
        assert len(seen) >= 2 and not held & seen, "ClickHouse must see the upstream tokens, never the client's"
        step("ClickHouse saw only upstream tokens, never the one the client holds")
    else:
        assert held <= seen, "passthrough: ClickHouse sees the client's token itself"
        step("ClickHouse saw the very token the client holds (passthrough)")
    step("OK")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "sealed"))
