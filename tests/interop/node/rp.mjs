// openid-client (panva) as a real relying party against any OAuth 2.0 / OIDC server.
//
// Runs discovery, then client_credentials and/or the authorization-code flow with PKCE
// (S256). The login is driven over plain HTTP with fetch: GET the authorization URL,
// fill and POST each HTML form met (login, consent), follow redirects with a small
// cookie jar until the redirect_uri is reached, then exchange the code. Prints one JSON
// object on stdout; exits 1 (with {"error": ...}) when any step fails.
// See README.md for the options.
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
    'allow-http': { type: 'boolean', default: false },
    'max-steps': { type: 'string', default: '20' },
  },
  strict: true,
});

for (const required of ['issuer', 'client-id']) {
  if (!opts[required]) fail(`--${required} is required`);
}
const FLOWS = new Set(['client_credentials', 'authorization_code']);
for (const flow of opts.flow) if (!FLOWS.has(flow)) fail(`unknown --flow ${flow}`);

function fail(message, extra = {}) {
  console.log(JSON.stringify({ error: message, ...extra }));
  process.exit(1);
}

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
  }
  return out;
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

function firstForm(html, baseUrl) {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!match) return null;
  const formAttrs = attributes(match[1]);
  const fields = new URLSearchParams();
  const extra = new Map(opts.field.map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  let submitted = false;
  for (const [tag, kind] of match[2].matchAll(/<(input|button)\b[^>]*>/gi)) {
    const a = attributes(tag.slice(kind.length + 1));
    const type = (a.type ?? (kind.toLowerCase() === 'button' ? 'submit' : 'text')).toLowerCase();
    if (!a.name) continue;
    if (extra.has(a.name)) {
      fields.set(a.name, extra.get(a.name));
    } else if (type === 'password') {
      fields.set(a.name, opts.password);
    } else if (['text', 'email'].includes(type) && /login|user|email|name/i.test(a.name)) {
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

async function loginAndConsent(authorizationUrl, redirectUri) {
  const browser = new Browser();
  const steps = [];
  let url = authorizationUrl.href;
  let init = {};
  for (let step = 0; step < Number(opts['max-steps']); step += 1) {
    const response = await browser.request(url, init);
    steps.push(`${init.method ?? 'GET'} ${new URL(url).pathname} -> ${response.status}`);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const next = new URL(location, url);
      if (next.href.startsWith(redirectUri)) return { callback: next, steps };
      url = next.href;
      init = {};
      continue;
    }
    const body = await response.text();
    const form = response.ok ? firstForm(body, url) : null;
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
  return fail('too many steps before the redirect_uri', { steps });
}

// ---- the flows ---------------------------------------------------------------------

const execute = opts['allow-http'] ? [client.allowInsecureRequests] : [];
const result = { issuer: opts.issuer };
let config;
try {
  config = await client.discovery(
    new URL(opts.issuer),
    opts['client-id'],
    undefined,
    clientAuth(),
    { execute },
  );
  const meta = config.serverMetadata();
  result.discovery = {
    issuer: meta.issuer,
    token_endpoint: meta.token_endpoint,
    authorization_endpoint: meta.authorization_endpoint,
    jwks_uri: meta.jwks_uri,
  };

  if (opts.flow.includes('client_credentials')) {
    const params = {};
    if (opts.scope) params.scope = opts.scope;
    if (opts.resource) params.resource = opts.resource;
    result.client_credentials = tokenSummary(await client.clientCredentialsGrant(config, params));
  }

  if (opts.flow.includes('authorization_code')) {
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
    };
    if (opts.resource) params.resource = opts.resource;
    const { callback, steps } = await loginAndConsent(
      client.buildAuthorizationUrl(config, params),
      opts['redirect-uri'],
    );
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: params.scope.split(' ').includes('openid'),
    });
    result.authorization_code = { ...tokenSummary(tokens), steps };
  }
} catch (err) {
  fail(err.message ?? String(err), {
    code: err.code,
    oauth_error: err.error,
    error_description: err.error_description,
    partial: result,
  });
}
console.log(JSON.stringify(result));
