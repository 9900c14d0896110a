// Fleet redirect mode's pieces without NATS (plugins/fleet redirect.ts, relay.ts, schema.ts): the Location is made
// from the owner's template and the instance's names only, the settings are checked and named, and a relayed call's
// signature binds its identity, method and target.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redirectLocation, settledForRedirect, REDIRECT_SETTLE_MS } from '../../plugins/fleet/redirect.ts';
import { signApiCall, verifyApiCall } from '../../plugins/fleet/relay.ts';
import { fleetSettings } from '../../plugins/fleet/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import fleet from '../../plugins/fleet/index.ts';
import { servePlugins } from '../helpers.ts';

const TEMPLATE = 'https://{id}.{service}.example.com:8443';

test('the Location is the owner template with the names and the request path; nothing else gets in', () => {
  assert.equal(redirectLocation(TEMPLATE, 'notes', 'alice', '/x?y=1'), 'https://alice.notes.example.com:8443/x?y=1');
  assert.equal(redirectLocation(`${TEMPLATE}/`, 'notes', 'alice', '/'), 'https://alice.notes.example.com:8443/');
  // A path that looks like an authority stays a path of the owner's origin.
  assert.equal(redirectLocation(TEMPLATE, 'notes', 'alice', '//evil.example/p'), 'https://alice.notes.example.com:8443//evil.example/p');
  assert.equal(redirectLocation(TEMPLATE, 'notes', 'alice', 'http://evil.example/abs?q'), 'https://alice.notes.example.com:8443/abs?q');
  for (const [service, id] of [['notes', '__proto__'], ['notes', 'a.b'], ['NOTES', 'alice'], ['notes', 'evil.example/x'], ['notes', '']]) {
    assert.equal(redirectLocation(TEMPLATE, service!, id!, '/'), null, `${service}:${id}`);
  }
  for (const target of ['/a b', '/a\r\nSet-Cookie: x', '*', `/${'a'.repeat(9000)}`]) assert.equal(redirectLocation(TEMPLATE, 'notes', 'alice', target), null, target.slice(0, 20));
  for (const template of ['https://evil.example/', 'https://{id}.{service}.example.com/path', 'https://user@{id}.{service}.example.com', 'javascript://{id}.{service}', 'https://{id}.{service}.example.com?x']) {
    assert.equal(redirectLocation(template, 'notes', 'alice', '/'), null, template);
  }
});

test('a placement that moved within the settle time is not redirected to', () => {
  const now = 1_000_000;
  const base = { node: 'n2', service: 's', id: 'i', revision: 3 };
  assert.equal(settledForRedirect({ ...base, generation: 1, at: now }, now), true, 'a first claim is no move');
  assert.equal(settledForRedirect({ ...base, generation: 2, at: now - 100 }, now), false);
  assert.equal(settledForRedirect({ ...base, generation: 2, at: now - REDIRECT_SETTLE_MS }, now), true);
});

test('routing and publicUrl are checked and named', async () => {
  const base = { servers: ['nats://127.0.0.1:4222'] };
  assert.equal(fleetSettings.parse(base).routing, 'forward');
  const missing = fleetSettings.safeParse({ ...base, routing: 'redirect' });
  assert.equal(missing.success, false);
  assert.deepEqual(missing.error!.issues.map((i) => i.path.join('.')), ['publicUrl']);
  assert.equal(fleetSettings.safeParse({ ...base, routing: 'teleport' }).success, false);
  for (const bad of ['https://example.com', 'https://{id}.example.com', 'https://{id}.{service}.example.com/p', 'ftp://{id}.{service}.example.com', 'https://{id}.{service}.exa mple.com']) {
    const parsed = fleetSettings.safeParse({ ...base, routing: 'redirect', publicUrl: bad });
    assert.equal(parsed.success, false, bad);
    assert.ok(parsed.error!.issues.some((i) => i.path[0] === 'publicUrl'), bad);
  }
  assert.equal(fleetSettings.parse({ ...base, routing: 'redirect', publicUrl: TEMPLATE }).publicUrl, TEMPLATE);
  // Another domain than the server's is refused at start, naming the field (before NATS is asked anything).
  await assert.rejects(
    createTestKernel({ plugins: [...servePlugins, fleet], config: { settings: { domain: 'example.org', fleet: { ...base, routing: 'redirect', publicUrl: TEMPLATE } }, services: {} } }),
    /settings\.fleet\.publicUrl: expected the host \{id\}\.\{service\}\.example\.org/,
  );
});

test('a relayed call is bound to its identity, the node called, method and target, and refused with another secret', () => {
  const secret = 'test-fleet-secret-0123456789abcdef';
  const header = signApiCall(secret, 'n1', 'n2', { kind: 'tenant', tenant: 'alice', name: 'alice-ui' }, 'POST', '/api/instances/app/alice/restart');
  assert.deepEqual(verifyApiCall(secret, 'n2', header, 'POST', '/api/instances/app/alice/restart'), { node: 'n1', identity: { kind: 'tenant', tenant: 'alice', name: 'alice-ui' } });
  assert.equal(verifyApiCall(secret, 'n2', header, 'POST', '/api/instances/app/bob/restart'), null);
  assert.equal(verifyApiCall(secret, 'n2', header, 'DELETE', '/api/instances/app/alice/restart'), null);
  assert.equal(verifyApiCall(secret, 'n3', header, 'POST', '/api/instances/app/alice/restart'), null, 'a call to another node');
  assert.equal(verifyApiCall('another-secret-0123456789abcdef', 'n2', header, 'POST', '/api/instances/app/alice/restart'), null);
  // The identity cannot be swapped: it is under the signature.
  const parts = header.split('.');
  parts[3] = Buffer.from(JSON.stringify({ kind: 'admin', name: 'x' })).toString('base64url');
  assert.equal(verifyApiCall(secret, 'n2', parts.join('.'), 'POST', '/api/instances/app/alice/restart'), null);
  const old = signApiCall(secret, 'n1', 'n2', { kind: 'admin', name: 'a' }, 'GET', '/api/instances', Date.now() - 120_000);
  assert.equal(verifyApiCall(secret, 'n2', old, 'GET', '/api/instances'), null, 'an old call');
  const oddTenant = signApiCall(secret, 'n1', 'n2', { kind: 'tenant', tenant: '__proto__', name: 'x' }, 'GET', '/api/instances');
  assert.equal(verifyApiCall(secret, 'n2', oddTenant, 'GET', '/api/instances'), null, 'a tenant that is no DNS label');
});
