// ctx.tokens (core/token-sync.ts) and the keeper side of auth-bearer (TokenStore.applyRemote, isTokenRecord), and
// the bucket envelope of plugins/fleet/tokens.ts: no NATS needed. The fleet end to end is fleet-tokens.test.ts.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Store } from '../../core/store.ts';
import { TokenSync, type TokenRecord } from '../../core/token-sync.ts';
import { TokenStore, isTokenRecord } from '../../plugins/auth-bearer/tokens.ts';
import { decodeEnvelope, encodeEnvelope, mergeRecords } from '../../plugins/fleet/tokens.ts';

function tempTokens(t: TestContext, onChange?: (record: TokenRecord) => void): TokenStore {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-token-sync-'));
  const store = new Store(path.join(dir, 'tenement.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return new TokenStore({ migrate: (steps) => store.migrateOwner('auth-bearer', steps), db: store.db }, onChange);
}

const secretOf = (): string => `tnm_${randomBytes(32).toString('base64url')}`;
const sha = (value: string): string => createHash('sha256').update(value).digest('hex');

function remote(overrides: Partial<TokenRecord> = {}): { record: TokenRecord; secret: string } {
  const secret = secretOf();
  return {
    secret,
    record: { id: `tok_${randomBytes(8).toString('hex')}`, name: 'remote', kind: 'tenant', tenant: 'alice', hash: sha(secret), createdAt: 1000, expiresAt: null, revokedAt: null, ...overrides },
  };
}

test('a token made or revoked here is reported (with its hash, never the secret); applied ones are not', (t) => {
  const changes: TokenRecord[] = [];
  const tokens = tempTokens(t, (record) => changes.push(record));
  const made = tokens.create({ name: 'ci', tenant: null, expiresInMs: null });
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.hash, sha(made.token));
  assert.ok(!JSON.stringify(changes).includes(made.token));
  tokens.revoke(made.id);
  tokens.revoke(made.id);
  assert.equal(changes.length, 2, 'revoking twice reports once');
  assert.notEqual(changes[1]!.revokedAt, null);
  tokens.applyRemote(remote().record);
  assert.equal(changes.length, 2);
});

test('applyRemote: a new token works here with its scope; a revocation is taken, never undone; clashes are refused', (t) => {
  const tokens = tempTokens(t);
  const { record, secret } = remote();
  assert.deepEqual(tokens.applyRemote(record), record);
  assert.equal(tokens.find(secret)?.tenant, 'alice');
  // Scope, name and expiry of a known token do not change.
  assert.equal(tokens.applyRemote({ ...record, kind: 'admin', tenant: null, name: 'root', expiresAt: 1 })?.kind, 'tenant');
  assert.equal(tokens.find(secret)?.kind, 'tenant');
  assert.equal(tokens.applyRemote({ ...record, revokedAt: 5000 })?.revokedAt, 5000);
  assert.equal(tokens.find(secret), undefined);
  assert.equal(tokens.applyRemote({ ...record, revokedAt: 9000 })?.revokedAt, 5000, 'the earliest revocation stays');
  assert.equal(tokens.applyRemote({ ...record, revokedAt: 3000 })?.revokedAt, 3000);
  assert.equal(tokens.applyRemote({ ...record, revokedAt: null })?.revokedAt, 3000, 'never un-revoked');
  assert.equal(tokens.find(secret), undefined);
  // Same id with another hash; same hash under another id.
  assert.equal(tokens.applyRemote({ ...record, hash: sha(secretOf()) }), null);
  assert.equal(tokens.applyRemote({ ...record, id: 'tok_0123456789abcdef' }), null);
  const local = tokens.create({ name: 'local', tenant: null, expiresInMs: null });
  assert.equal(tokens.applyRemote({ ...remote().record, hash: sha(local.token) }), null);
  assert.equal(tokens.find(local.token)?.name, 'local');
});

test('isTokenRecord refuses every malformed or hostile shape', () => {
  const { record } = remote();
  assert.ok(isTokenRecord(record));
  assert.ok(isTokenRecord({ ...record, kind: 'admin', tenant: null }));
  const bad: unknown[] = [
    null,
    'tok',
    [],
    { ...record, id: '__proto__' },
    { ...record, id: 'tok_../../etc' },
    { ...record, hash: 'x'.repeat(64) },
    { ...record, hash: record.hash.toUpperCase() },
    { ...record, kind: 'root' },
    { ...record, kind: 'admin' },
    { ...record, tenant: null },
    { ...record, tenant: 'Alice' },
    { ...record, tenant: 'a'.repeat(64) },
    { ...record, name: '' },
    { ...record, name: 'x'.repeat(65) },
    { ...record, createdAt: -1 },
    { ...record, createdAt: '1' },
    { ...record, expiresAt: Number.NaN },
    { ...record, revokedAt: 1e300 },
  ];
  for (const value of bad) assert.equal(isTokenRecord(value), false, JSON.stringify(value));
});

test('bucket envelopes: only the fleet secret signs; the key must be the id; merging keeps the earliest revocation', () => {
  const { record } = remote();
  const value = encodeEnvelope('fleet-secret', record);
  assert.deepEqual(decodeEnvelope('fleet-secret', { key: record.id, value }), record);
  assert.equal(decodeEnvelope('other-secret', { key: record.id, value }), null);
  assert.equal(decodeEnvelope('fleet-secret', { key: 'tok_ffffffffffffffff', value }), null);
  const tampered = JSON.parse(new TextDecoder().decode(value)) as { record: TokenRecord };
  tampered.record.kind = 'admin';
  assert.equal(decodeEnvelope('fleet-secret', { key: record.id, value: new TextEncoder().encode(JSON.stringify(tampered)) }), null);
  assert.equal(decodeEnvelope('fleet-secret', { key: record.id, value: new Uint8Array(10_000) }), null);
  assert.equal(decodeEnvelope('fleet-secret', { key: record.id, value: new TextEncoder().encode('{"v":1,"record":null,"mac":"00"}') }), null);
  assert.equal(mergeRecords({ ...record, revokedAt: 5 }, { ...record, revokedAt: null })?.revokedAt, 5);
  assert.equal(mergeRecords({ ...record, revokedAt: null }, { ...record, revokedAt: 7 })?.revokedAt, 7);
  assert.equal(mergeRecords({ ...record, revokedAt: 9 }, { ...record, revokedAt: 7 })?.revokedAt, 7);
  assert.equal(mergeRecords(record, { ...record, hash: sha('x') }), null);
});

test('TokenSync: one keeper; a replicator that subscribes or waits gets served, a throwing listener is contained', () => {
  const sync = new TokenSync();
  const order: string[] = [];
  assert.deepEqual(sync.list(), []);
  assert.equal(sync.apply(remote().record), null);
  sync.whenServed(() => order.push('served'));
  const { record } = remote();
  sync.serve({ list: () => [record], apply: (r) => r });
  assert.deepEqual(order, ['served']);
  sync.whenServed(() => order.push('at once'));
  assert.deepEqual(order, ['served', 'at once']);
  assert.throws(() => sync.serve({ list: () => [], apply: () => null }));
  const seen: string[] = [];
  sync.subscribe(() => {
    throw new Error('replicator bug');
  });
  const off = sync.subscribe((r) => seen.push(r.id));
  sync.changed(record);
  off();
  sync.changed(record);
  assert.deepEqual(seen, [record.id]);
  assert.deepEqual(sync.list(), [record]);
});
