// openid-client (panva) as a real relying party against any OAuth 2.0 / OIDC server.
//
// Runs discovery, then the requested flows: client_credentials, the authorization-code
// flow with PKCE (S256), refresh with rotation and reuse detection, and the device flow
// (RFC 8628). The user's side (login, consent, the device page) is driven over plain
// HTTP with fetch: GET a page, fill and POST its HTML form, follow redirects with a small
// cookie jar. Each access token can be used against an API (--api), introspected
// (--introspect) and revoked (--revoke). Prints one JSON object on stdout; exits 1 (with
// {"error": ...}) when a step fails. See README.md for the options.
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';

const { values: opts } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'client-auth': { type: 'string', default: 'basic' },
    'redirect-uri': { type: 'string', default: 'http://127.0.0.1:1/callback' },
    flow: { type: 'string', multiple: true, default: ['client_credentials'] },
    scope: { type: 'string' },
    resource: { type: 'string' },
    login: { type: 'string', default: 'alice' },
    password: { type: 'string', default: 'correct horse battery staple' },
    field: { type: 'string', multiple: true, default: [] },
    'auth-param': { type: 'string', multiple: true, default: [] },
    'allow-http': { type: 'boolean', default: false },
    'max-steps': { type: 'string', default: '20' },
    api: { type: 'string' },
    userinfo: { type: 'boolean', default: false },
    introspect: { type: 'boolean', default: false },
    revoke: { type: 'boolean', default: false },
    'device-decision': { type: 'string', default: 'allow' },
  },
  strict: true,
});

for (const required of ['issuer', 'client-id']) {
  if (!opts[required]) fail(`--${required} is required`);
}
const FLOWS = new Set(['client_credentials', 'authorization_code', 'refresh', 'device']);
for (const flow of opts.flow) if (!FLOWS.has(flow)) fail(`unknown --flow ${flow}`);
if (opts.flow.includes('refresh') && !opts.flow.includes('authorization_code')) {
  fail('--flow refresh needs --flow authorization_code (it refreshes that grant)');
}

function fail(message, extra = {}) {
  console.log(JSON.stringify({ error: message, ...extra }));
  process.exit(1);
}

// ["a=1", "b=2"] -> {a: "1", b: "2"}
const pairs = (items) => Object.fromEntries(items.map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));

function clientAuth() {
  const secret = opts['client-secret'];
  switch (opts['client-auth']) {
    case 'basic': return client.ClientSecretBasic(secret);
    case 'post': return client.ClientSecretPost(secret);
    case 'none': return client.None();
    default: return fail(`unknown --client-auth ${opts['client-auth']}`);
  }
}

function tokenSummary(tokens) {
  const out = {
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    expires_in: tokens.expiresIn?.(),
    scope: tokens.scope,
  };
  if (tokens.refresh_token) out.refresh_token = tokens.refresh_token;
  if (tokens.id_token) {
    out.id_token = tokens.id_token;
    out.id_token_claims = tokens.claims();
    out.at_hash_ok = atHashMatches(tokens.access_token, out.id_token_claims.at_hash, tokens.id_token);
  }
  return out;
}

// OIDC Core §3.1.3.8: at_hash is the left half of the hash of the access token, base64url.
// openid-client checks the ID token's signature (enableNonRepudiationChecks below), iss,
// aud, azp, exp, iat and nonce; at_hash is optional in the code flow and oauth4webapi does
// not check it, so it is checked here.
function atHashMatches(accessToken, atHash, idToken) {
  if (atHash === undefined) return null;
  const { alg } = JSON.parse(Buffer.from(idToken.split('.')[0], 'base64url').toString());
  const bits = { 256: 'sha256', 384: 'sha384', 512: 'sha512' }[alg.slice(2)] ?? 'sha512';
  const digest = createHash(bits).update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url') === atHash;
}

// ---- a tiny browser: cookies, redirects, HTML forms --------------------------------

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#x2F': '/' };
const unescapeHtml = (text) => text.replace(/&(#?\w+);/g, (all, name) => ENTITIES[name] ?? all);

function attributes(tag) {
  const attrs = {};
  for (const [, name, dq, sq, bare] of tag.matchAll(/([\w:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    attrs[name.toLowerCase()] = unescapeHtml(dq ?? sq ?? bare ?? '');
  }
  return attrs;
}

// The address of a page's <meta http-equiv="refresh" content="0;url=...">, if any.
function metaRefresh(html, baseUrl) {
  for (const match of html.matchAll(/<meta\b([^>]*)>/gi)) {
    const attrs = attributes(match[1]);
    const found = /^\s*\d+\s*[;,]\s*url\s*=\s*(.+)$/i.exec(attrs.content ?? '');
    if ((attrs['http-equiv'] ?? '').toLowerCase() === 'refresh' && found) return new URL(found[1], baseUrl);
  }
  return null;
}

function firstForm(html, baseUrl) {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!match) return null;
  const formAttrs = attributes(match[1]);
  const fields = new URLSearchParams();
  const extra = new Map(Object.entries(pairs(opts.field)));
  let submitted = false;
  for (const [tag, kind] of match[2].matchAll(/<(input|button)\b[^>]*>/gi)) {
    const a = attributes(tag.slice(kind.length + 1));
    const type = (a.type ?? (kind.toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase();
    if (!a.name) continue;
    if (extra.has(a.name)) {
      fields.set(a.name, extra.get(a.name));
    } else if (type === 'password') {
      fields.set(a.name, opts.password);
    } else if (['text', 'email'].includes(type) && /login|user|email|name/i.test(a.name)
               && !/code/i.test(a.name) && !a.value) {
      fields.set(a.name, opts.login);
    } else if (type === 'submit') {
      if (!submitted) fields.set(a.name, a.value ?? '');
      submitted = true;
    } else if (type !== 'checkbox' || 'checked' in a) {
      fields.set(a.name, a.value ?? '');
    }
  }
  for (const [name, value] of extra) if (!fields.has(name)) fields.set(name, value);
  return {
    action: new URL(formAttrs.action || baseUrl, baseUrl).href,
    method: (formAttrs.method || 'get').toUpperCase(),
    fields,
  };
}

class Browser {
  cookies = new Map();

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || pair.slice(eq + 1) === '';
      if (expired) this.cookies.delete(name); else this.cookies.set(name, pair.slice(eq + 1).trim());
    }
    return response;
  }
}

// Acts as the user: GET url, follow redirects, submit each HTML form met. Stops at the
// first redirect to `redirectUri` ({callback}) or, when `redirectUri` is null, at the first
// page without a form ({page}).
async function browse(url, redirectUri, browser = new Browser()) {
  const steps = [];
  let init = {};
  for (let step = 0; step < Number(opts['max-steps']); step += 1) {
    const response = await browser.request(url, init);
    steps.push(`${init.method ?? 'GET'} ${new URL(url).pathname} -> ${response.status}`);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, url);
      if (redirectUri && next.href.startsWith(redirectUri)) return { callback: next, steps };
      url = next.href;
      init = {};
      continue;
    }
    const body = await response.text();
    // A page that moves on by itself (bastion answers a form post that leaves for the
    // client this way): the browser follows its <meta http-equiv="refresh">.
    const refresh = response.ok ? metaRefresh(body, url) : null;
    if (refresh) {
      steps.push('meta refresh');
      if (redirectUri && refresh.href.startsWith(redirectUri)) return { callback: refresh, steps };
      url = refresh.href;
      init = {};
      continue;
    }
    const form = response.ok ? firstForm(body, url) : null;
    if (!form && redirectUri === null) return { page: { status: response.status, text: text(body) }, steps };
    if (!form) fail('no form and no redirect to follow', { steps, status: response.status, body: body.slice(0, 500) });
    if (form.method === 'POST') {
      url = form.action;
      init = {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.fields.toString(),
      };
    } else {
      const target = new URL(form.action);
      for (const [k, v] of form.fields) target.searchParams.set(k, v);
      url = target.href;
      init = {};
    }
    steps.push(`form ${[...form.fields.keys()].join(',')}`);
  }
  return fail('too many steps', { steps });
}

// The visible text of a page (for reports), without tags and with spaces collapsed.
const text = (html) => unescapeHtml(html.replace(/<(style|title)[\s\S]*?<\/\1>/gi, '').replace(/<[^>]+>/g, ' '))
  .replace(/\s+/g, ' ').trim().slice(0, 300);

// ---- what is done with each token -----------------------------------------------------

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// The error an openid-client call failed with, as data (the flows expect some failures).
function failure(err) {
  return {
    error: err.message ?? String(err),
    code: err.code,
    oauth_error: err.error,
    status: err.status ?? err.response?.status,
  };
}

async function expectFailure(promise) {
  try {
    await promise;
    return { error: null };
  } catch (err) {
    return failure(err);
  }
}

// GET --api with the token through openid-client's fetchProtectedResource; the status,
// and what the gateway told the upstream (the demo echo API returns the headers it saw).
async function callApi(config, accessToken) {
  let response;
  try {
    response = await client.fetchProtectedResource(
      config, accessToken, new URL(opts.api, opts.issuer), 'GET',
    );
  } catch (err) {
    if (!err.response) throw err;
    response = err.response; // a 401 with a WWW-Authenticate challenge
    return { status: response.status, www_authenticate: response.headers.get('www-authenticate') };
  }
  const out = { status: response.status };
  if (response.ok && (response.headers.get('content-type') ?? '').includes('json')) {
    const seen = (await response.json()).headers ?? {};
    out.subject = seen['x-bastion-subject'];
    out.client = seen['x-bastion-client'];
  }
  return out;
}

async function introspect(config, token) {
  const body = await client.tokenIntrospection(config, token);
  const { active, sub, client_id: clientId, scope, token_type: tokenType, exp } = body;
  return { active, sub, client_id: clientId, scope, token_type: tokenType, exp };
}

// --api, --introspect, --userinfo and --revoke for one grant's tokens, in that order;
// after revocation the API and introspection are asked again.
async function useTokens(config, tokens, out) {
  const access = tokens.access_token;
  if (opts.api) out.api = await callApi(config, access);
  if (opts.introspect) out.introspection = await introspect(config, access);
  if (opts.userinfo && out.id_token_claims) {
    out.userinfo = await client.fetchUserInfo(config, access, out.id_token_claims.sub);
  }
  if (!opts.revoke) return;
  await client.tokenRevocation(config, access, { token_type_hint: 'access_token' });
  out.revoked = true;
  if (opts.api) out.api_after_revoke = await callApi(config, access);
  if (opts.introspect) out.introspection_after_revoke = await introspect(config, access);
}

// RFC 6749 §6 with rotation (RFC 9700 §4.14.2): refresh once; the old refresh token,
// presented again, must be refused and take the new one (and its access token) with it.
async function refresh(config, previous) {
  const tokens = await client.refreshTokenGrant(config, previous.refresh_token);
  const out = tokenSummary(tokens);
  out.rotated = Boolean(tokens.refresh_token) && tokens.refresh_token !== previous.refresh_token;
  if (opts.api) out.api = await callApi(config, tokens.access_token);
  if (opts.introspect) out.introspection = await introspect(config, tokens.access_token);
  out.reuse = await expectFailure(client.refreshTokenGrant(config, previous.refresh_token));
  if (tokens.refresh_token) {
    out.new_refresh_after_reuse = await expectFailure(
      client.refreshTokenGrant(config, tokens.refresh_token),
    );
  }
  if (opts.api) out.api_after_reuse = await callApi(config, tokens.access_token);
  if (opts.introspect) out.introspection_after_reuse = await introspect(config, tokens.access_token);
  return out;
}

// Revoking a refresh token (RFC 7009 §2.1): it cannot be used afterwards.
async function revokeRefresh(config, refreshToken) {
  await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
  return expectFailure(client.refreshTokenGrant(config, refreshToken));
}

// ---- the flows ---------------------------------------------------------------------

async function authorizationCode(config) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: opts['redirect-uri'],
    scope: opts.scope ?? 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...pairs(opts['auth-param']),
  };
  if (opts.resource) params.resource = opts.resource;
  const { callback, steps } = await browse(
    client.buildAuthorizationUrl(config, params).href,
    opts['redirect-uri'],
  );
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: params.scope.split(' ').includes('openid'),
  });
  return { tokens, out: { ...tokenSummary(tokens), nonce, steps } };
}

// RFC 8628: openid-client starts the grant and polls; meanwhile this script is the user
// on another device: it opens verification_uri_complete, signs in and approves.
async function device(config) {
  const params = {};
  if (opts.scope) params.scope = opts.scope;
  const grant = await client.initiateDeviceAuthorization(config, params);
  const polling = client.pollDeviceAuthorizationGrant(config, grant).then(
    (tokens) => ({ tokens }),
    (err) => ({ err }),
  );
  const user = await browse(grant.verification_uri_complete ?? grant.verification_uri, null);
  const { tokens, err } = await polling;
  const out = {
    user_code: grant.user_code,
    verification_uri: grant.verification_uri,
    interval: grant.interval,
    steps: user.steps,
    page: user.page,
  };
  if (err) return { tokens: null, out: { ...out, ...failure(err) } };
  return { tokens, out: { ...out, ...tokenSummary(tokens) } };
}

// Every HTTP request openid-client makes, as "METHOD /path -> status" (a device flow's
// polls show up here as repeated token requests).
const http = [];
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  http.push(`${init?.method ?? 'GET'} ${new URL(url).pathname} -> ${response.status}`);
  return response;
}

const execute = opts['allow-http'] ? [client.allowInsecureRequests] : [];
const result = { issuer: opts.issuer };
let config;
try {
  config = await client.discovery(
    new URL(opts.issuer),
    opts['client-id'],
    undefined,
    clientAuth(),
    { execute, [client.customFetch]: recordingFetch },
  );
  config[client.customFetch] = recordingFetch;
  // Verify the signatures of ID tokens (and signed responses) against the JWKS too;
  // OIDC Core §3.1.3.7 lets a client skip that for the code flow over TLS.
  client.enableNonRepudiationChecks(config);
  const meta = config.serverMetadata();
  result.discovery = {
    issuer: meta.issuer,
    token_endpoint: meta.token_endpoint,
    authorization_endpoint: meta.authorization_endpoint,
    jwks_uri: meta.jwks_uri,
    device_authorization_endpoint: meta.device_authorization_endpoint,
    revocation_endpoint: meta.revocation_endpoint,
    introspection_endpoint: meta.introspection_endpoint,
  };

  if (opts.flow.includes('client_credentials')) {
    const params = {};
    if (opts.scope) params.scope = opts.scope;
    if (opts.resource) params.resource = opts.resource;
    const tokens = await client.clientCredentialsGrant(config, params);
    result.client_credentials = tokenSummary(tokens);
    await useTokens(config, tokens, result.client_credentials);
  }

  if (opts.flow.includes('authorization_code')) {
    const { tokens, out } = await authorizationCode(config);
    result.authorization_code = out;
    await useTokens(config, tokens, out);
    if (opts.flow.includes('refresh')) {
      if (!tokens.refresh_token) throw new Error('no refresh token to refresh (scope offline_access?)');
      result.refresh = await refresh(config, tokens);
    } else if (opts.revoke && tokens.refresh_token) {
      out.refresh_after_revoke = await revokeRefresh(config, tokens.refresh_token);
    }
  }

  if (opts.flow.includes('device')) {
    const { tokens, out } = await device(config);
    result.device = out;
    if (tokens) await useTokens(config, tokens, out);
  }
} catch (err) {
  fail(err.message ?? String(err), {
    code: err.code,
    oauth_error: err.error,
    error_description: err.error_description,
    partial: result,
    http,
  });
}
result.http = http;
console.log(JSON.stringify(result));
