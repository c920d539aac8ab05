// A real OpenID provider for the OIDC sign-in tests (tests/oidcd.py starts it): the npm package
// oidc-provider (installed by tests/oidcd.py or scripts/ci-services.sh into ~/.cache/boom-console/oidc-provider),
// one confidential client, the accounts of OIDC_ACCOUNTS with a `groups` claim, and the package's development
// login and consent forms (any password is accepted: the user typed is the account).
//
//   OIDC_MODULE=<folder with node_modules/oidc-provider> OIDC_PORT=... OIDC_CLIENT_ID=... OIDC_CLIENT_SECRET=...
//   OIDC_REDIRECT_URI=... OIDC_ACCOUNTS='{"alice": {"email": ..., "groups": [...]}}' node tests/oidc_provider.mjs
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const env = process.env;
const { default: Provider } = await import(
  pathToFileURL(join(env.OIDC_MODULE, 'node_modules', 'oidc-provider', 'lib', 'index.js')).href);
const accounts = JSON.parse(env.OIDC_ACCOUNTS);
const issuer = `http://127.0.0.1:${env.OIDC_PORT}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-key' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env.OIDC_CLIENT_ID,
    client_secret: env.OIDC_CLIENT_SECRET,
    redirect_uris: [env.OIDC_REDIRECT_URI],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, email_verified: true, ...account }; } };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['boom-console-test-cookie-key'] },
});
provider.listen(Number(env.OIDC_PORT), '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
