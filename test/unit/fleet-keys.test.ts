// Fleet mode's KV key encoding and forwarded-request signature (plugins/fleet): pure functions, no NATS.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FORWARDED_HEADER, signForward, verifyForward } from '../../plugins/fleet/forward-auth.ts';
import { decodeToken, encodeToken, parsePlacementKey, placementKey } from '../../plugins/fleet/keys.ts';
import { defaultPolicy, type CandidateNode } from '../../plugins/fleet/placement.ts';

const HOSTILE = ['__proto__', 'constructor', 'a.b', 'a_2eb', 'a_2Eb', '>', '*', 'a.>', '', '_', '_5f', 'x y', 'ünï', '\u0000', '../x', 'A-b', 'a'.repeat(300)];

test('every name encodes to one KV token of safe characters, injectively, and decodes back', () => {
  const tokens = HOSTILE.map(encodeToken);
  assert.equal(new Set(tokens).size, HOSTILE.length, 'no two names share a token');
  for (const [i, token] of tokens.entries()) {
    assert.match(token, /^[A-Za-z0-9_-]+$/, `${JSON.stringify(HOSTILE[i])} -> ${token}`);
    assert.equal(decodeToken(token), HOSTILE[i]);
  }
  assert.equal(encodeToken('alice'), 'alice', 'plain DNS labels stay readable');
  for (const bad of ['a.b', '_zz', '_2', 'a*', '>', '_41']) assert.equal(decodeToken(bad), null, `${bad} is not an encoding`);
});

test('placement keys are exactly two tokens and round-trip', () => {
  for (const service of ['app', 'a.b', '>']) {
    for (const id of HOSTILE) {
      const key = placementKey(service, id);
      assert.equal(key.split('.').length, 2, key);
      assert.deepEqual(parsePlacementKey(key), { service, id });
    }
  }
  assert.equal(parsePlacementKey('a.b.c'), null);
  assert.equal(parsePlacementKey('a'), null);
});

test('a forwarded-request signature is bound to the secret, node, time, method, host and target', () => {
  const secret = 's'.repeat(32);
  const fields = { method: 'GET', hostname: 'alice.app.example.com', target: '/a?b=1' };
  const now = 1_800_000_000_000;
  const header = signForward(secret, 'node.1', fields, now);
  assert.equal(verifyForward(secret, header, fields, now + 1000), 'node.1');
  assert.equal(verifyForward('t'.repeat(32), header, fields, now), null, 'another secret');
  assert.equal(verifyForward(secret, header, { ...fields, target: '/other' }, now), null, 'another path');
  assert.equal(verifyForward(secret, header, { ...fields, method: 'POST' }, now), null, 'another method');
  assert.equal(verifyForward(secret, header, { ...fields, hostname: 'bob.app.example.com' }, now), null, 'another host');
  assert.equal(verifyForward(secret, header, fields, now + 120_000), null, 'too old');
  for (const junk of ['', 'a', 'a.b', 'a.b.c.d', `${'x'.repeat(600)}`, header.replace(/.$/, 'A'), header.replace(/\.\d+\./, '.1e3.')]) {
    assert.equal(verifyForward(secret, junk, fields, now), null, JSON.stringify(junk));
  }
  assert.equal(FORWARDED_HEADER, FORWARDED_HEADER.toLowerCase());
});

test('the default policy spreads a service first, then fills the least loaded node', () => {
  const node = (id: string, load: number, serviceLoad: number, capacity: number | null = null): CandidateNode => ({ id, labels: {}, capacity, load, serviceLoad, state: 'active' });
  const request = (candidates: CandidateNode[]) => ({ service: 'app', id: 'x', self: 'a', from: null, candidates });
  assert.equal(defaultPolicy(request([node('a', 0, 3), node('b', 50, 0)])), 'b', 'spread the service before total load');
  assert.equal(defaultPolicy(request([node('a', 10, 1), node('b', 5, 1)])), 'b', 'least loaded');
  assert.equal(defaultPolicy(request([node('a', 10, 1, 100), node('b', 5, 1, 10)])), 'a', 'relative to capacity');
  assert.equal(defaultPolicy(request([])), undefined);
});
