// A real OpenID Provider (npm `oidc-provider`) for chmcp's integration tests.
//
// Usage: node server.js STATE_DIR
//
// It listens on a free loopback port chosen by the kernel (no port race with other
// tests), then prints one line `IDP_READY {json}` on stdout with the issuer and where it
// wrote its keys. Tests read that line and nothing else.
//
// Tokens are issued headlessly with the client_credentials grant: every test client is
// bound to one test account (see ACCOUNTS), and `extraTokenClaims` copies that account's
// email claims into the JWT access token. That lets each negative test get a token the
// real IdP signed whose claims differ in exactly one way (unverified email, foreign
// domain...), without driving login pages.
//
// STATE_DIR receives:
//   signing-key.pem  the PKCS#8 private key the IdP signs with (kid in the ready line), so
//                    tests can mint tokens the IdP "could have" issued but will not
//                    (already expired, another issuer)
//   foreign-key.pem  a key the IdP never had, for the wrong-signature tests
//
// IDP_ROTATE_REFRESH=1 in the environment turns refresh token rotation on for every client.
//
// GET /__test/stats answers {"jwks": N}: how many times the JWKS was fetched, so a test
// can prove that a flood of unknown `kid`s caused exactly one refetch.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

import Provider, { errors } from 'oidc-provider';

const stateDir = process.argv[2];
if (!stateDir) {
  console.error('usage: node server.js STATE_DIR');
  process.exit(2);
}
fs.mkdirSync(stateDir, { recursive: true });

// The audience the verifier is configured with, and a second one for "wrong audience".
const RESOURCES = ['https://mcp.example.com/', 'https://other.example.com/'];
const RESOURCE_SCOPES = 'mcp:read mcp:write';
const ACCESS_TOKEN_TTL = 600;

// client_id → account. One client per claim variation the tests need.
const ACCOUNTS = {
  alice: { sub: 'alice', email: 'alice@example.com', email_verified: true, preferred_username: 'alice' },
  bob: { sub: 'bob', email: 'bob@example.com', email_verified: false, preferred_username: 'bob' },
  eve: { sub: 'eve', email: 'eve@elsewhere.test', email_verified: true, preferred_username: 'eve' },
};
const CLIENT_SECRET = 'test-secret';

// The gateway's upstream client in OAuth broker mode (tests/broker.rs, e2e/broker): a
// signed-in account, authorization code + PKCE, refresh tokens. A native application,
// so its loopback redirect URI matches on any port (RFC 8252 §7.3): test gateways listen
// on free ports chosen at run time.
const BROKER_CLIENT = {
  client_id: 'chmcp-broker',
  client_secret: CLIENT_SECRET,
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/oauth/callback'],
  token_endpoint_auth_method: 'client_secret_post',
};

function newKey(kid) {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  return { jwk, pem };
}

const kid = `idp-${crypto.randomBytes(6).toString('hex')}`;
const signing = newKey(kid);
const foreign = newKey('foreign');
fs.writeFileSync(path.join(stateDir, 'signing-key.pem'), signing.pem, { mode: 0o600 });
fs.writeFileSync(path.join(stateDir, 'foreign-key.pem'), foreign.pem, { mode: 0o600 });

const stats = { jwks: 0 };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    jwks: { keys: [signing.jwk] },
    clients: Object.keys(ACCOUNTS).map((clientId) => ({
      client_id: clientId,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: RESOURCE_SCOPES,
    })).concat([BROKER_CLIENT]),
    scopes: ['openid', 'offline_access', 'email', 'profile', 'mcp:read', 'mcp:write'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username'],
    },
    // For flows with a signed-in account (authorization code), not used by the
    // client_credentials tests but kept so other suites can log in as these accounts.
    findAccount: async (_ctx, sub) => {
      const account = Object.values(ACCOUNTS).find((a) => a.sub === sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ ...account }) };
    },
    // IDP_ROTATE_REFRESH=1: every refresh answers a new refresh token and consumes the
    // old one (reuse of a consumed one revokes the grant), as Auth0/Okta with rotation on.
    // Otherwise oidc-provider's default: a confidential client keeps its refresh token.
    ...(process.env.IDP_ROTATE_REFRESH === '1' ? { rotateRefreshToken: () => true } : {}),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCES[0],
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (!RESOURCES.includes(resourceIndicator)) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPES,
            audience: resourceIndicator,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // The access token carries the account's email claims: real IdPs (Auth0 rules,
    // Keycloak mappers, Entra optional claims) are configured to do the same.
    extraTokenClaims: async (_ctx, token) => {
      const account = ACCOUNTS[token.accountId] || ACCOUNTS[token.clientId];
      if (!account) return undefined;
      const { sub, ...claims } = account;
      return claims;
    },
  });

  provider.use(async (ctx, next) => {
    if (ctx.path === '/__test/stats') {
      ctx.body = stats;
      return;
    }
    if (ctx.path === '/jwks') stats.jwks += 1;
    await next();
  });

  server.on('request', provider.callback());
  const ready = {
    issuer,
    port,
    kid,
    signing_key: path.join(stateDir, 'signing-key.pem'),
    foreign_key: path.join(stateDir, 'foreign-key.pem'),
    audience: RESOURCES[0],
    other_audience: RESOURCES[1],
    client_secret: CLIENT_SECRET,
    broker_client_id: BROKER_CLIENT.client_id,
  };
  process.stdout.write(`IDP_READY ${JSON.stringify(ready)}\n`);
});

// The harness closes our stdin when it is done (or dies): exit then, so no orphan IdP
// outlives a crashed test run.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
