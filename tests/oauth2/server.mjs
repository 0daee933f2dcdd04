// SPDX-License-Identifier: MIT
// A real OAuth2 authorization server for the token service's tests: oidc-provider with the
// client credentials grant (RFC 6749 §4.4), client_secret_basic and tls_client_auth (RFC 8705),
// on a loopback HTTPS port. Usage: node server.mjs CONFIG.json, where CONFIG has
//   port, cert, key (the server's TLS pair), client_ca (CAs client certificates must verify to),
//   clients ([{client_id, client_secret | subject_dn, scope}]), ttl (token lifetime, seconds),
//   delay_ms (how long the token endpoint waits before answering a request that names a scope: a
//   slow issuer, which still answers the scope-less request an agent starts with).
// Prints "listening PORT" once it accepts connections, then "token request scope=SCOPE" ("-" for
// none) as each token request arrives, before it is answered: what the tests count.
import fs from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `https://127.0.0.1:${config.port}`;
const scopes = [...new Set(config.clients.flatMap((c) => c.scope.split(' ')))];

const clients = config.clients.map((c) => ({
  client_id: c.client_id,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  scope: c.scope,
  ...(c.client_secret
    ? { client_secret: c.client_secret, token_endpoint_auth_method: 'client_secret_basic' }
    : { token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: c.subject_dn }),
}));

function pem(raw) {
  const b64 = raw.toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const provider = new Provider(issuer, {
  clients,
  scopes,
  clientAuthMethods: ['client_secret_basic', 'tls_client_auth'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    mTLS: {
      enabled: true,
      tlsClientAuth: true,
      getCertificate(ctx) {
        const peer = ctx.socket.getPeerCertificate();
        return peer && peer.raw ? pem(peer.raw) : undefined;
      },
      certificateAuthorized(ctx) {
        return ctx.socket.authorized;
      },
      certificateSubjectMatches(ctx, property, expected) {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const subject = ctx.socket.getPeerCertificate().subject || {};
        return `CN=${subject.CN}` === expected;
      },
    },
  },
  ttl: { ClientCredentials: config.ttl || 60 },
});

// A connection per token request: the client certificate is checked at every handshake, so a
// certificate that expired is seen at the next request, not only when a kept-alive connection ends.
provider.use(async (ctx, next) => {
  ctx.set('Connection', 'close');
  await next();
});
provider.use(async (ctx, next) => {
  if (ctx.path === '/token' && ctx.method === 'POST') {
    const body = await new Promise((resolve) => {
      let data = '';
      ctx.req.on('data', (c) => { data += c; });
      ctx.req.on('end', () => resolve(data));
    });
    const scope = new URLSearchParams(body).get('scope');
    console.log(`token request scope=${scope ?? '-'}`); // a pipe: written before the answer is
    if (config.delay_ms && scope !== null) await new Promise((r) => setTimeout(r, config.delay_ms));
    ctx.req.body = body; // read here: oidc-provider then parses this copy
  }
  await next();
});

const server = https.createServer({
  cert: fs.readFileSync(config.cert),
  key: fs.readFileSync(config.key),
  ca: fs.readFileSync(config.client_ca),
  requestCert: true,
  rejectUnauthorized: false, // certificateAuthorized() decides, so an unverified client gets a 401
}, provider.callback());
server.listen(config.port, '127.0.0.1', () => console.log(`listening ${config.port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
