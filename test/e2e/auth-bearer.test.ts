// Bearer tokens (plugins/auth-bearer): the admin.token bootstrap, token create/list/revoke, expiry, hashes only
// in the database, lock-out per address (core's), the audit trail, and coexistence with another auth scheme.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import type { TokenInfo } from '../../plugins/auth-bearer/tokens.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { apiCall, echoService, request, servePlugins, sleep } from '../helpers.ts';

const TOKEN_SHAPE = /^tnm_[A-Za-z0-9_-]{43}$/;

interface Created {
  id: string;
  name: string;
  kind: 'admin' | 'tenant';
  tenant: string | null;
  token: string;
  createdAt: number;
  expiresAt: number | null;
}

type Listed = TokenInfo;

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const adminFile = (kernel: TestKernel): string => path.join(kernel.config.settings.dataDir, 'admin.token');
const adminToken = (kernel: TestKernel): string => readFileSync(adminFile(kernel), 'utf8').trim();


async function createToken(kernel: TestKernel, by: Record<string, string>, body: Record<string, unknown>): Promise<Created> {
  const reply = await apiCall(kernel, 'POST', '/api/tokens', by, body);
  assert.equal(reply.status, 201, reply.body);
  return JSON.parse(reply.body) as Created;
}

async function listTokens(kernel: TestKernel, by: Record<string, string>): Promise<{ raw: string; tokens: Listed[] }> {
  const reply = await apiCall(kernel, 'GET', '/api/tokens', by);
  assert.equal(reply.status, 200, reply.body);
  return { raw: reply.body, tokens: (JSON.parse(reply.body) as { tokens: Listed[] }).tokens };
}

async function bearerKernel(t: TestContext, extra: Parameters<typeof createTestKernel>[0]['plugins'] = []): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: [authBearer, ...extra] });
  t.after(() => kernel.close());
  return kernel;
}

/** A data dir the test owns, so a kernel can be restarted on it. */
function ownDataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tenement-bearer-'));
}

test('the admin token is written to admin.token with mode 0600 and works', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const file = adminFile(kernel);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const token = adminToken(kernel);
  assert.match(token, TOKEN_SHAPE);
  assert.deepEqual(
    readdirSync(kernel.config.settings.dataDir).filter((name) => name.includes('admin.token')),
    ['admin.token'],
    'no temporary file is left behind',
  );
  const { tokens } = await listTokens(kernel, bearer(token));
  assert.equal(tokens.length, 1);
  assert.equal(tokens[0]!.name, 'admin');
  assert.equal(tokens[0]!.kind, 'admin');
  assert.equal(tokens[0]!.tenant, null);
  assert.equal(tokens[0]!.revokedAt, null);
  assert.ok(tokens[0]!.lastUsedAt !== null, 'using a token records when');
  // The scheme name is case-insensitive.
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', { authorization: `bearer ${token}` })).status, 200);
});

test('a restart on the same data dir keeps the admin token; a revoked one is replaced', { timeout: 60_000 }, async (t) => {
  const dataDir = ownDataDir();
  const boot = () => createTestKernel({ plugins: [authBearer], config: { settings: { dataDir } } });

  const first = await boot();
  const token = adminToken(first);
  const before = statSync(adminFile(first));
  await first.close();

  const second = await boot();
  // One hook, closing before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
  t.after(() => second.close().finally(() => rmSync(dataDir, { recursive: true, force: true })));
  const after = statSync(adminFile(second));
  assert.equal(adminToken(second), token);
  assert.equal(after.ino, before.ino, 'the file was not rewritten');
  assert.equal(after.mtimeMs, before.mtimeMs);
  const { tokens } = await listTokens(second, bearer(token));
  assert.equal(tokens.filter((k) => k.kind === 'admin').length, 1, 'no second admin token was made');

  // Revoke the admin token with itself; the next start writes a new one.
  const revoked = await apiCall(second, 'DELETE', `/api/tokens/${tokens[0]!.id}`, bearer(token));
  assert.equal(revoked.status, 200);
  assert.equal((await apiCall(second, 'GET', '/api/tokens', bearer(token))).status, 401);
  await second.close();

  const third = await boot();
  t.after(() => third.close());
  const renewed = adminToken(third);
  assert.notEqual(renewed, token);
  assert.equal(statSync(adminFile(third)).mode & 0o777, 0o600);
  const listed = await listTokens(third, bearer(renewed));
  assert.deepEqual(
    listed.tokens.map((k) => [k.name, k.kind, k.revokedAt === null]),
    [
      ['admin', 'admin', false],
      ['admin', 'admin', true],
    ].sort((a, b) => Number(a[2]) - Number(b[2])),
  );
  assert.equal((await apiCall(third, 'GET', '/api/tokens', bearer(token))).status, 401, 'the revoked one stays revoked');
});

test('missing, unknown and malformed tokens get 401', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const valid = adminToken(kernel);
  // An unknown token of the right shape: the last character changed.
  const unknown = valid.slice(0, -1) + (valid.endsWith('A') ? 'B' : 'A');
  const attempts: Array<Record<string, string>> = [
    {},
    bearer(unknown),
    bearer('tnm_short'),
    bearer(valid.slice(4)),
    { authorization: 'Bearer' },
    { authorization: `Basic ${Buffer.from(`admin:${valid}`).toString('base64')}` },
    { authorization: `Bearer ${valid} extra` },
  ];
  for (const headers of attempts) {
    const reply = await apiCall(kernel, 'GET', '/api/tokens', headers);
    assert.equal(reply.status, 401, `${JSON.stringify(headers)} → ${reply.status}`);
    assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_UNAUTHORIZED');
    assert.match(String(reply.headers['www-authenticate']), /Bearer/);
  }
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(valid))).status, 200);
});

test('an admin creates tenant tokens; they work and get 403 on token management', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const admin = bearer(adminToken(kernel));
  const created = await createToken(kernel, admin, { name: 'alice laptop', tenant: 'alice', expiresIn: '30d' });
  assert.deepEqual(Object.keys(created).sort(), ['createdAt', 'expiresAt', 'id', 'kind', 'name', 'tenant', 'token']);
  assert.equal(created.kind, 'tenant');
  assert.equal(created.tenant, 'alice');
  assert.equal(created.name, 'alice laptop');
  assert.match(created.token, TOKEN_SHAPE);
  assert.equal(created.expiresAt! - created.createdAt, 30 * 86_400_000);

  const alice = bearer(created.token);
  assert.equal((await apiCall(kernel, 'GET', '/api/audit', alice)).status, 200, 'a tenant token is a valid token');
  for (const [method, url, body] of [
    ['GET', '/api/tokens', undefined],
    ['POST', '/api/tokens', { name: 'mine', tenant: 'alice' }],
    ['DELETE', `/api/tokens/${created.id}`, undefined],
  ] as const) {
    const reply = await apiCall(kernel, method, url, alice, body);
    assert.equal(reply.status, 403, `${method} ${url}`);
    assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_FORBIDDEN');
  }
  assert.equal((await apiCall(kernel, 'GET', '/api/audit', alice)).status, 200, 'still valid after the 403s');

  // An admin token is one made without a tenant; expiresIn also takes milliseconds.
  const second = await createToken(kernel, admin, { name: 'ci', expiresIn: 3_600_000 });
  assert.equal(second.kind, 'admin');
  assert.equal(second.tenant, null);
  assert.equal(second.expiresAt! - second.createdAt, 3_600_000);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(second.token))).status, 200);
  const forever = await createToken(kernel, admin, { name: 'no expiry', tenant: 'bob' });
  assert.equal(forever.expiresAt, null);

  // Bad input is a 400 naming the field.
  for (const [body, field] of [
    [{ name: '' }, 'body.name'],
    [{ name: 'x'.repeat(65) }, 'body.name'],
    [{ name: 'x', tenant: 'Not_A_Label' }, 'body.tenant'],
    [{ name: 'x', expiresIn: 'soon' }, 'body.expiresIn'],
    [{ name: 'x', expiresIn: 0 }, 'body.expiresIn'],
    [{ name: 'x', kind: 'admin' }, 'body'],
  ] as const) {
    const reply = await apiCall(kernel, 'POST', '/api/tokens', admin, body);
    assert.equal(reply.status, 400, JSON.stringify(body));
    assert.match(JSON.parse(reply.body).error.message, new RegExp(field.replace('.', '\\.')));
  }
});

test('an expired token gets 401', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const admin = bearer(adminToken(kernel));
  const short = await createToken(kernel, admin, { name: 'short', tenant: 'alice', expiresIn: '3s' });
  assert.equal(short.expiresAt! - short.createdAt, 3_000);
  // Only meaningful while the token is still young; a very slow machine skips this check rather than flake.
  if (Date.now() < short.expiresAt! - 500) assert.equal((await apiCall(kernel, 'GET', '/api/audit', bearer(short.token))).status, 200);
  await sleep(Math.max(0, short.expiresAt! - Date.now()) + 100);
  const reply = await apiCall(kernel, 'GET', '/api/audit', bearer(short.token));
  assert.equal(reply.status, 401);
  assert.match(JSON.parse(reply.body).error.message, /expired/);
  const { tokens } = await listTokens(kernel, admin);
  assert.ok(tokens.some((k) => k.id === short.id && k.revokedAt === null), 'expired tokens stay listed');
});

test('a revoked token gets 401 at once; revoking an unknown id is 404', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const admin = bearer(adminToken(kernel));
  const made = await createToken(kernel, admin, { name: 'temp', tenant: 'bob' });
  assert.equal((await apiCall(kernel, 'GET', '/api/audit', bearer(made.token))).status, 200);
  const revoked = await apiCall(kernel, 'DELETE', `/api/tokens/${made.id}`, admin);
  assert.equal(revoked.status, 200);
  assert.deepEqual(JSON.parse(revoked.body), { id: made.id, revoked: true });
  assert.equal((await apiCall(kernel, 'GET', '/api/audit', bearer(made.token))).status, 401);
  const { tokens } = await listTokens(kernel, admin);
  const entry = tokens.find((k) => k.id === made.id)!;
  assert.ok(entry.revokedAt !== null && entry.revokedAt >= made.createdAt);
  // Revoking again is harmless and keeps the first time.
  assert.equal((await apiCall(kernel, 'DELETE', `/api/tokens/${made.id}`, admin)).status, 200);
  assert.equal((await listTokens(kernel, admin)).tokens.find((k) => k.id === made.id)!.revokedAt, entry.revokedAt);
  const missing = await apiCall(kernel, 'DELETE', '/api/tokens/tok_0000000000000000', admin);
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.code, 'TNM_ERR_NOT_FOUND');
});

test('secrets appear only in the create response: never in the list, the audit log or the database', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const adminSecret = adminToken(kernel);
  const admin = bearer(adminSecret);
  const secrets = [adminSecret];
  for (const [name, tenantId] of [['one', 'alice'], ['two', 'bob'], ['three', undefined]] as const) {
    secrets.push((await createToken(kernel, admin, { name, ...(tenantId ? { tenant: tenantId } : {}) })).token);
  }
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');

  const { raw, tokens } = await listTokens(kernel, admin);
  assert.equal(tokens.length, 4);
  for (const token of tokens) {
    assert.deepEqual(Object.keys(token).sort(), ['createdAt', 'expiresAt', 'id', 'kind', 'lastUsedAt', 'name', 'revokedAt', 'tenant']);
  }
  const audit = (await apiCall(kernel, 'GET', '/api/audit', admin)).body;
  for (const secret of secrets) {
    assert.ok(!raw.includes(secret), 'the list holds no secret');
    assert.ok(!raw.includes(sha(secret)), 'the list holds no hash');
    assert.ok(!raw.includes(secret.slice(4)), 'not even without its prefix');
    assert.ok(!audit.includes(secret) && !audit.includes(sha(secret)), 'the audit log holds no secret');
  }

  // The table holds SHA-256 hashes, and no byte of the database files (WAL included) holds a secret.
  const db = new Database(kernel.store.file, { readonly: true, fileMustExist: true });
  const rows = db.prepare('SELECT * FROM auth_bearer_tokens').all() as Array<Record<string, unknown>>;
  db.close();
  assert.deepEqual(rows.map((r) => r.hash).sort(), secrets.map(sha).sort());
  const dump = JSON.stringify(rows);
  const dataDir = kernel.config.settings.dataDir;
  const files = readdirSync(dataDir).filter((name) => name.startsWith('tenement.db'));
  assert.ok(files.includes('tenement.db'));
  const bytes = Buffer.concat(files.map((name) => readFileSync(path.join(dataDir, name))));
  for (const secret of secrets) {
    assert.ok(!dump.includes(secret));
    assert.equal(bytes.indexOf(secret), -1, 'plaintext token found in the database files');
    assert.equal(bytes.indexOf(secret.slice(4)), -1);
  }
});

test('failed attempts are throttled per token and address: 429 with Retry-After for the failing token, a valid one still works', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const valid = adminToken(kernel);
  const unknown = `tnm_${'A'.repeat(43)}`;
  for (let i = 0; i < 10; i++) {
    assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(unknown), undefined, '127.0.0.3')).status, 401);
  }
  const throttled = await apiCall(kernel, 'GET', '/api/tokens', bearer(unknown), undefined, '127.0.0.3');
  assert.equal(throttled.status, 429, 'the failing token waits');
  assert.ok(Number(throttled.headers['retry-after']) >= 1);
  assert.equal(JSON.parse(throttled.body).error.code, 'TNM_ERR_RATE_LIMITED');
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(valid), undefined, '127.0.0.3')).status, 200, 'a valid token is never refused');
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(valid), undefined, '127.0.0.2')).status, 200);
});

test('token creation and revocation are audited under the acting token name', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t);
  const admin = bearer(adminToken(kernel));
  const ci = await createToken(kernel, admin, { name: 'ci-admin' });
  const made = await createToken(kernel, bearer(ci.token), { name: 'deploy', tenant: 'alice' });
  assert.equal((await apiCall(kernel, 'DELETE', `/api/tokens/${made.id}`, admin)).status, 200);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(made.token))).status, 401);

  const audit = await apiCall(kernel, 'GET', '/api/audit?limit=10', admin);
  const entries = (JSON.parse(audit.body) as { entries: Array<{ actor: string; action: string; target: string; status: number; detail: string | null }> }).entries;
  assert.deepEqual(
    entries.map((e) => [e.actor, e.action, e.target, e.status]),
    [
      ['admin', 'DELETE /api/tokens/:id', `token:${made.id}`, 200],
      ['ci-admin', 'POST /api/tokens', `token:${made.id}`, 201],
      ['admin', 'POST /api/tokens', `token:${ci.id}`, 201],
    ],
  );
  assert.match(entries[1]!.detail ?? '', /tenant token 'deploy' for tenant alice/);
});

test('bearer tokens and another auth scheme work side by side', { timeout: 60_000 }, async (t) => {
  const kernel = await bearerKernel(t, [staticAuth]);
  // The static scheme's admin can manage bearer tokens, and what it makes works.
  const made = await createToken(kernel, ADMIN, { name: 'from-static', tenant: 'carol' });
  assert.equal((await apiCall(kernel, 'GET', '/api/audit', bearer(made.token))).status, 200);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(adminToken(kernel)))).status, 200);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', ADMIN)).status, 200);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', tenant('carol'))).status, 403);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', { authorization: 'Static nobody' })).status, 401);
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', bearer(`tnm_${'z'.repeat(43)}`))).status, 401);
  const audit = JSON.parse((await apiCall(kernel, 'GET', '/api/audit', ADMIN)).body) as { entries: Array<{ actor: string }> };
  assert.equal(audit.entries[0]!.actor, 'static:admin');
});

test('tenant traffic is not authenticated: the app sees its Authorization header and no one is locked out', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [...servePlugins, authBearer], config: { services: { echo: echoService() } } });
  t.after(() => kernel.close());
  await kernel.spawnInstance('echo', 'alice');
  const foreign = 'Bearer not-a-tenement-token';
  for (let i = 0; i < 12; i++) {
    const reply = await request(kernel, 'alice.echo.localhost', '/echo', { headers: { authorization: foreign }, localAddress: '127.0.0.4' });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body) as { headers: Record<string, string> }).headers.authorization, foreign);
  }
  const api = await apiCall(kernel, 'GET', '/api/tokens', bearer(adminToken(kernel)), undefined, '127.0.0.4');
  assert.equal(api.status, 200);
  const doc = JSON.parse((await apiCall(kernel, 'GET', '/api/openapi.json', bearer(adminToken(kernel)))).body) as {
    paths: Record<string, Record<string, { tags: string[]; 'x-tenement-access'?: string }>>;
  };
  assert.deepEqual(doc.paths['/api/tokens']!.post!.tags, ['tokens']);
  assert.equal(doc.paths['/api/tokens/{id}']!.delete!['x-tenement-access'], 'admin');
});
