import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';
import { AuthError, Policy, createJoseVerifier } from '../internal/auth/index.js';
import { TopicPattern } from '../internal/topic/index.js';

const SECRET = 'a-very-long-shared-secret-for-hs256-tests!';
const hs = new TextEncoder().encode(SECRET);
const inAMinute = () => Math.floor(Date.now() / 1000) + 60;

async function token(
  claims: Record<string, unknown>,
  key: Parameters<SignJWT['sign']>[0] = hs,
  header: Record<string, unknown> = { alg: 'HS256' },
) {
  return new SignJWT(claims)
    .setProtectedHeader(header as { alg: string })
    .setSubject('alice')
    .setExpirationTime(inAMinute())
    .sign(key);
}

async function refused(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  return (err as AuthError).code;
}

describe('jose verifier', () => {
  it('accepts a valid HS256 token and compiles its scopes', async () => {
    const v = await createJoseVerifier({ algorithms: ['HS256'], keys: { kind: 'secret', secret: SECRET }, issuer: 'hub', audience: 'gw' });
    const p = await v.verify(
      await new SignJWT({ scopes: 'publish:orders.* subscribe:orders.**' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setIssuer('hub')
        .setAudience('gw')
        .setExpirationTime(inAMinute())
        .sign(hs),
    );
    expect(p.subject).toBe('alice');
    expect(p.policy.canPublish('orders.created')).toBe(true);
    expect(p.policy.canPublish('orders.eu.created')).toBe(false);
    expect(p.policy.canSubscribe(TopicPattern.compile('orders.eu.*'))).toBe(true);
  });

  it('refuses alg none, expired tokens, wrong issuer or audience, tampered signatures and missing claims', async () => {
    const v = await createJoseVerifier({
      algorithms: ['HS256'],
      keys: { kind: 'secret', secret: SECRET },
      issuer: 'hub',
      audience: 'gw',
      clockToleranceS: 5,
    });
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: inAMinute(), iss: 'hub', aud: 'gw' })}.`;
    expect(await refused(v.verify(none))).toBe('ALG_NOT_ALLOWED');

    const base = () => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuer('hub').setAudience('gw');
    expect(
      await refused(
        v.verify(
          await base()
            .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
            .sign(hs),
        ),
      ),
    ).toBe('TOKEN_EXPIRED');
    expect(await refused(v.verify(await base().setIssuer('evil').setExpirationTime(inAMinute()).sign(hs)))).toBe('BAD_ISSUER');
    expect(await refused(v.verify(await base().setAudience('other').setExpirationTime(inAMinute()).sign(hs)))).toBe('BAD_AUDIENCE');
    const good = await base().setExpirationTime(inAMinute()).sign(hs);
    const [h, payload, sig] = good.split('.') as [string, string, string];
    const forged = b64({ ...(JSON.parse(Buffer.from(payload, 'base64url').toString()) as object), sub: 'mallory' });
    expect(await refused(v.verify(`${h}.${forged}.${sig}`))).toBe('SIGNATURE_INVALID');
    expect(
      await refused(
        v.verify(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setIssuer('hub').setAudience('gw').sign(hs)),
      ),
    ).toBe('CLAIMS_INVALID');
    expect(await refused(v.verify('not.a.token'))).toBe('TOKEN_MALFORMED');
    expect(await refused(v.verify(''))).toBe('TOKEN_MISSING');
  });

  it('refuses HS256 tokens signed with the RS256 public key (key confusion)', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const v = await createJoseVerifier({ algorithms: ['RS256'], keys: { kind: 'pem', pem } });
    expect((await v.verify(await token({}, privateKey, { alg: 'RS256' }))).subject).toBe('alice');
    const confused = await token({}, new TextEncoder().encode(pem), { alg: 'HS256' });
    expect(await refused(v.verify(confused))).toBe('ALG_NOT_ALLOWED');
  });

  it('verifies ES256 and EdDSA with PEM keys', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
      const v = await createJoseVerifier({ algorithms: [alg], keys: { kind: 'pem', pem: await exportSPKI(publicKey) } });
      expect((await v.verify(await token({}, privateKey, { alg }))).subject).toBe('alice');
    }
  });

  it('refuses unsafe configurations', async () => {
    await expect(createJoseVerifier({ algorithms: ['HS256'], keys: { kind: 'secret', secret: 'short' } })).rejects.toMatchObject({
      code: 'VERIFIER_CONFIG',
    });
    await expect(createJoseVerifier({ algorithms: ['HS256', 'RS256'], keys: { kind: 'secret', secret: SECRET } })).rejects.toMatchObject({
      code: 'VERIFIER_CONFIG',
    });
    await expect(
      createJoseVerifier({ algorithms: ['HS256'], keys: { kind: 'secret', secret: SECRET }, clockToleranceS: 3600 }),
    ).rejects.toMatchObject({ code: 'VERIFIER_CONFIG' });
  });

  describe('remote JWKS', () => {
    let server: Server;
    let keys: JWK[] = [];
    let fetches = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        fetches++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    });
    afterAll(async () => new Promise<void>((r) => server.close(() => r())));

    it('follows key rotation, refuses unknown kids, and refetches at most once per cooldown', async () => {
      const one = await generateKeyPair('ES256', { extractable: true });
      const two = await generateKeyPair('ES256', { extractable: true });
      keys = [{ ...(await exportJWK(one.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }];
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const v = await createJoseVerifier({
        algorithms: ['ES256'],
        keys: { kind: 'jwks', url, timeoutMs: 2000, cooldownMs: 0, cacheMaxAgeMs: 60_000 },
      });
      expect((await v.verify(await token({}, one.privateKey, { alg: 'ES256', kid: 'k1' }))).subject).toBe('alice');
      expect(await refused(v.verify(await token({}, two.privateKey, { alg: 'ES256', kid: 'k2' })))).toBe('UNKNOWN_KEY');
      keys = [...keys, { ...(await exportJWK(two.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' }];
      expect((await v.verify(await token({}, two.privateKey, { alg: 'ES256', kid: 'k2' }))).subject).toBe('alice');

      const slow = await createJoseVerifier({
        algorithms: ['ES256'],
        keys: { kind: 'jwks', url, timeoutMs: 2000, cooldownMs: 60_000, cacheMaxAgeMs: 60_000 },
      });
      await slow.verify(await token({}, one.privateKey, { alg: 'ES256', kid: 'k1' }));
      const before = fetches;
      for (let i = 0; i < 5; i++)
        expect(await refused(slow.verify(await token({}, two.privateKey, { alg: 'ES256', kid: 'k9' })))).toBe('UNKNOWN_KEY');
      expect(fetches - before).toBeLessThanOrEqual(1);
    });

    it('stops verifying a key removed from the set once the cache age has passed', async () => {
      const one = await generateKeyPair('ES256', { extractable: true });
      const two = await generateKeyPair('ES256', { extractable: true });
      keys = [
        { ...(await exportJWK(one.publicKey)), kid: 'old', alg: 'ES256', use: 'sig' },
        { ...(await exportJWK(two.publicKey)), kid: 'new', alg: 'ES256', use: 'sig' },
      ];
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const v = await createJoseVerifier({
        algorithms: ['ES256'],
        keys: { kind: 'jwks', url, timeoutMs: 2000, cooldownMs: 60_000, cacheMaxAgeMs: 300 },
      });
      const oldToken = await token({}, one.privateKey, { alg: 'ES256', kid: 'old' });
      expect((await v.verify(oldToken)).subject).toBe('alice');
      keys = keys.filter((k) => k.kid !== 'old');
      await new Promise((r) => setTimeout(r, 400));
      expect(await refused(v.verify(oldToken))).toBe('UNKNOWN_KEY');
      expect((await v.verify(await token({}, two.privateKey, { alg: 'ES256', kid: 'new' }))).subject).toBe('alice');
    });

    it('reports an unreachable key set as KEYS_UNAVAILABLE', async () => {
      const v = await createJoseVerifier({
        algorithms: ['ES256'],
        keys: { kind: 'jwks', url: 'http://127.0.0.1:1/jwks.json', timeoutMs: 500, cooldownMs: 0, cacheMaxAgeMs: 60_000 },
      });
      const { privateKey } = await generateKeyPair('ES256');
      expect(await refused(v.verify(await token({}, privateKey, { alg: 'ES256', kid: 'k1' })))).toBe('KEYS_UNAVAILABLE');
    });
  });
});

describe('policy', () => {
  it('lets deny win and refuses a wide filter under a narrow grant', () => {
    const p = Policy.fromClaims({
      scopes: ['subscribe:orders.*', 'publish:orders.created', 'read:other-resource'],
      policy: {
        allow: [{ action: '*', topic: 'audit.**' }],
        deny: [
          { action: 'subscribe', topic: 'audit.secret.**' },
          { action: 'publish', topic: 'audit.locked' },
        ],
      },
    });
    expect(p.canPublish('orders.created')).toBe(true);
    expect(p.canPublish('orders.deleted')).toBe(false);
    expect(p.canPublish('audit.locked')).toBe(false);
    expect(p.canPublish('audit.open')).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('orders.*'))).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('orders.**'))).toBe(false);
    expect(p.canSubscribe(TopicPattern.compile('audit.public.*'))).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('audit.**'))).toBe(false);
    expect(p.canSubscribe(TopicPattern.compile('audit.*.x'))).toBe(false);
  });

  it('accepts the rules shape and grants groups: deny wins, groups not granted are denied once any rule names groups', () => {
    const orders = TopicPattern.compile('orders.*');
    const p = Policy.fromClaims({
      policy: {
        rules: [
          { effect: 'allow', action: 'publish', topics: ['orders.*'] },
          { effect: 'allow', action: 'subscribe', topics: ['orders.*', 'invoices.*'], groups: ['billing', 'audit'] },
          { effect: 'allow', action: '*', topics: ['audit.**'], groups: ['*'] },
          { effect: 'deny', action: 'subscribe', topics: ['audit.secret.**'], groups: ['reporting'] },
          { effect: 'deny', action: 'subscribe', topics: ['orders.internal'] },
        ],
      },
    });
    expect(p.canPublish('orders.created')).toBe(true);
    expect(p.canPublish('audit.x')).toBe(true);
    expect(p.canPublish('invoices.created')).toBe(false);
    // Groups named by an allow rule that covers the filter.
    expect(p.canSubscribe(TopicPattern.compile('orders.created'), 'billing')).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('invoices.paid'), 'audit')).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('orders.created'), 'shipping')).toBe(false);
    expect(p.canSubscribe(TopicPattern.compile('audit.x.y'), 'anything')).toBe(true);
    // Deny wins: for the groups it names, or for every subscription when it names none.
    expect(p.canSubscribe(TopicPattern.compile('audit.secret.x'), 'reporting')).toBe(false);
    expect(p.canSubscribe(TopicPattern.compile('audit.secret.x'), 'ops')).toBe(true);
    expect(p.canSubscribe(TopicPattern.compile('audit.secret.x'))).toBe(true);
    expect(p.canSubscribe(orders, 'billing')).toBe(false);
    expect(p.canSubscribe(orders)).toBe(false);
    // Live subscriptions are decided by topic alone.
    expect(p.canSubscribe(TopicPattern.compile('invoices.*'))).toBe(true);

    // Without any rule naming groups, a topic grant allows any group (tokens issued before group grants).
    const legacy = Policy.fromClaims({
      scopes: 'subscribe:orders.*',
      policy: { rules: [{ effect: 'allow', action: 'subscribe', topics: ['x.*'] }] },
    });
    expect(legacy.canSubscribe(orders, 'whatever')).toBe(true);
    // Once one does, topic-only rules no longer grant groups.
    const scoped = Policy.fromClaims({
      scopes: 'subscribe:orders.*',
      policy: { allow: [{ action: 'subscribe', topic: 'x.*', groups: ['g'] }] },
    });
    expect(scoped.canSubscribe(orders)).toBe(true);
    expect(scoped.canSubscribe(orders, 'g')).toBe(false);
    expect(scoped.canSubscribe(TopicPattern.compile('x.*'), 'g')).toBe(true);
  });

  it('refuses malformed policy claims with CLAIMS_INVALID', () => {
    for (const claims of [
      { scopes: 7 },
      { scopes: ['publish:a..b'] },
      { policy: { allow: [{ action: 'delete', topic: 'a' }] } },
      { policy: { deny: 'x' } },
      { policy: [] },
      { policy: { rules: {} } },
      { policy: { rules: [{ effect: 'permit', action: 'publish', topics: ['a'] }] } },
      { policy: { rules: [{ effect: 'allow', action: 'publish', topics: [] }] } },
      { policy: { rules: [{ effect: 'allow', action: 'publish', topic: 'a' }] } },
      { policy: { rules: [{ effect: 'allow', action: 'subscribe', topics: ['a.**.b.'] }] } },
      { policy: { rules: [{ effect: 'allow', action: 'subscribe', topics: ['a'], groups: 'billing' }] } },
      { policy: { rules: [{ effect: 'allow', action: 'subscribe', topics: ['a'], groups: ['bad group'] }] } },
      { policy: { rules: [{ effect: 'allow', action: 'publish', topics: ['a'], groups: ['billing'] }] } },
      { policy: { rules: [{ effect: 'allow', action: '*', topics: Array.from({ length: 300 }, (_, i) => `t${i}`) }] } },
    ]) {
      expect(() => Policy.fromClaims(claims)).toThrow(expect.objectContaining({ code: 'CLAIMS_INVALID' }) as Error);
    }
  });
});
