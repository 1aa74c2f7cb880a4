// panva's oidc-provider as a real external identity provider for bastion's tests.
//
// Listens on 127.0.0.1 only. Issues RFC 9068 JWT access tokens (resourceIndicators,
// RFC 8707) for the resources named on the command line, signed with keys generated at
// start (one EC P-256 and one RSA-2048 key; ID tokens use RS256). One confidential
// client may use client_credentials and authorization_code (+ PKCE); the login form is
// oidc-provider's devInteractions (any login, any password).
//
// Prints one JSON line on stdout when it listens: {"ready": true, "issuer": ..., ...}.
// See README.md for the options.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.IDP_PORT ?? '0' },
    'client-id': { type: 'string', default: 'bastion-test' },
    'client-secret': { type: 'string', default: 'bastion-test-secret-0123456789abcdef' },
    'redirect-uri': { type: 'string', multiple: true, default: ['http://127.0.0.1:1/callback'] },
    resource: { type: 'string', multiple: true, default: ['https://api.bastion.test/'] },
    scope: { type: 'string', default: 'orders:read orders:write' },
    alg: { type: 'string', default: 'ES256' },
    ttl: { type: 'string', default: '300' },
    'ttl-for': { type: 'string', multiple: true, default: [] },
    roles: { type: 'string', default: '' },
    // With a domain, every account has a verified email <login>@<domain> (scope email).
    'email-domain': { type: 'string', default: '' },
    // Pages carry `form-action 'self'` plus the redirect URIs' origins, as strict
    // providers do: Chromium applies it to every redirect after the sign-in form's post.
    'strict-form-action': { type: 'boolean', default: false },
  },
  strict: true,
});

if (!['ES256', 'RS256'].includes(opts.alg)) {
  console.error(`--alg must be ES256 or RS256, not ${opts.alg}`);
  process.exit(2);
}

function generatedJwk(type, alg) {
  const options = type === 'ec' ? { namedCurve: 'P-256' } : { modulusLength: 2048 };
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: `${alg.toLowerCase()}-${randomUUID()}`, alg, use: 'sig' };
}

const ttlFor = new Map(
  opts['ttl-for'].map((item) => {
    const at = item.lastIndexOf('=');
    return [item.slice(0, at), Number(item.slice(at + 1))];
  }),
);
const resources = new Set([...opts.resource, ...ttlFor.keys()]);
const roles = opts.roles ? opts.roles.split(',') : [];
const defaultTtl = Number(opts.ttl);

const server = createServer();
await new Promise((resolve) => { server.listen(Number(opts.port), '127.0.0.1', resolve); });
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: opts['client-id'],
      client_secret: opts['client-secret'],
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: opts['redirect-uri'],
      scope: `openid offline_access email ${opts.scope}`,
    },
  ],
  scopes: ['openid', 'offline_access', 'email', ...opts.scope.split(' ')],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({
      sub: id,
      ...(opts['email-domain'] ? { email: `${id}@${opts['email-domain']}`, email_verified: true } : {}),
    }),
  }),
  jwks: { keys: [generatedJwk('ec', 'ES256'), generatedJwk('rsa', 'RS256')] },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf ?? opts.resource[0],
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (!resources.has(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: opts.scope,
          audience: resourceIndicator,
          accessTokenTTL: ttlFor.get(resourceIndicator) ?? defaultTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: opts.alg } },
        };
      },
    },
  },
  extraTokenClaims: () => (roles.length ? { realm_access: { roles } } : undefined),
  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? defaultTtl,
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? defaultTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 3600,
  },
  cookies: { keys: [randomUUID()] },
});
// A bug in this harness must show in the test log, not only as a 500.
provider.on('server_error', (ctx, err) => console.error(err));

if (opts['strict-form-action']) {
  const origins = [...new Set(opts['redirect-uri'].map((uri) => new URL(uri).origin))];
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.response.is('html')) ctx.set('Content-Security-Policy', `form-action 'self' ${origins.join(' ')}`);
  });
}

server.on('request', provider.callback());
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

console.log(JSON.stringify({
  ready: true,
  issuer,
  port,
  discovery_url: `${issuer}/.well-known/openid-configuration`,
  token_endpoint: `${issuer}/token`,
  client_id: opts['client-id'],
  resources: [...resources],
  alg: opts.alg,
  node: process.version,
}));
