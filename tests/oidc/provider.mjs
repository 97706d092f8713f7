// A small, real OpenID Connect provider for the integration tests, built on
// `oidc-provider` (a certified OIDC implementation). See README.md.
//
//   OIDC_PORT=PORT OIDC_REDIRECT_URIS=uri[,uri...] node tests/oidc/provider.mjs
//
// Prints exactly one line `READY http://127.0.0.1:PORT` to stdout once it is
// listening; everything else (oidc-provider notices, errors) goes to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints its NOTICEs with console.info (stdout); keep stdout for
// the READY line alone.
console.info = (...args) => console.error(...args);

function required(name) {
  const value = process.env[name];
  if (!value || !value.trim()) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value.trim();
}

const port = Number.parseInt(required('OIDC_PORT'), 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`OIDC_PORT is not a valid port: ${process.env.OIDC_PORT}`);
  process.exit(2);
}
const redirectUris = required('OIDC_REDIRECT_URIS')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (redirectUris.length === 0) {
  console.error('OIDC_REDIRECT_URIS has no URI');
  process.exit(2);
}

const issuer = `http://127.0.0.1:${port}`;

// Signing key generated at every start (the tests fetch the JWKS from the
// provider, so nothing needs it to be stable across runs).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: 'test-rs256',
  alg: 'RS256',
  use: 'sig',
};

const ID_TOKEN_TTL = { expiring: 1 };

const baseClient = {
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: redirectUris,
};

// The login_hint (an email address) picks the account. oidc-provider always
// sets the ID token's `sub` to the account's accountId, so the accountId is
// "sub-" + email; findAccount accepts either the email or that form.
function emailOf(id) {
  return id.startsWith('sub-') ? id.slice('sub-'.length) : id;
}

const configuration = {
  clients: [
    { ...baseClient, client_id: 'switchboard', client_secret: 'switchboard-secret' },
    { ...baseClient, client_id: 'expiring', client_secret: 'expiring-secret' },
  ],
  jwks: { keys: [signingKey] },
  cookies: {
    keys: ['switchboard-test-oidc-cookie-key-1', 'switchboard-test-oidc-cookie-key-2'],
  },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url(_ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    IdToken(_ctx, _token, client) {
      return ID_TOKEN_TTL[client?.clientId] ?? 3600;
    },
  },
  async findAccount(_ctx, id) {
    const email = emailOf(String(id));
    return {
      accountId: `sub-${email}`,
      async claims() {
        return {
          sub: `sub-${email}`,
          email,
          email_verified: !email.startsWith('unverified'),
          name: 'OIDC User',
        };
      },
    };
  },
  renderError(ctx, out, error) {
    console.error('oidc error:', error?.message ?? error, out);
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, err) => console.error('server_error:', err));

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;

  if (prompt.name === 'login') {
    const email = params.login_hint || 'default@example.com';
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: `sub-${emailOf(String(email))}` } },
      { mergeWithLastSubmission: false },
    );
    return;
  }

  if (prompt.name === 'consent') {
    const accountId = session.accountId;
    const clientId = params.client_id;
    let grant;
    if (details.grantId) {
      grant = await provider.Grant.find(details.grantId);
    }
    grant ||= new provider.Grant({ accountId, clientId });

    const {
      missingOIDCScope,
      missingOIDCClaims,
      missingResourceScopes,
    } = prompt.details;
    // addOIDCScope does not de-duplicate the first scope string it is given.
    const scope = new Set(['openid', 'email', 'profile', ...(missingOIDCScope || [])]);
    grant.addOIDCScope([...scope].join(' '));
    if (missingOIDCClaims?.length) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { consent: { grantId } },
      { mergeWithLastSubmission: true },
    );
    return;
  }

  res.statusCode = 400;
  res.setHeader('Content-Type', 'text/plain');
  res.end(`unexpected prompt ${prompt.name}`);
}

// Token responses to the `expiring` client leave only after its ID token
// (1 s lifetime) has expired, so a relying party must refuse it. The token
// is minted first (`await next()`), then the response waits.
const EXPIRING_DELAY_MS = Number(process.env.OIDC_EXPIRING_DELAY_MS ?? 2500);
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.oidc?.client?.clientId === 'expiring') {
    await new Promise((resolve) => setTimeout(resolve, EXPIRING_DELAY_MS));
  }
});

const callback = provider.callback();

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(url.pathname)) {
    interaction(req, res).catch((err) => {
      console.error('interaction failed:', err);
      if (!res.headersSent) {
        res.statusCode = 400;
        res.setHeader('Content-Type', 'text/plain');
      }
      res.end(`interaction failed: ${err?.message ?? err}`);
    });
    return;
  }
  callback(req, res);
});

server.on('error', (err) => {
  console.error('listen failed:', err);
  process.exit(1);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
