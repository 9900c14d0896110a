// `settings.edge`, as the config loader composes it from the edge-haproxy plugin's fragment (docs/edge.md).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { errorFiles, renderConfig } from '../../plugins/edge-haproxy/render.ts';
import { onPath } from '../helpers.ts';

const source = { path: '/srv/app/tenement.config.ts', dir: '/srv/app' };
const services = { notes: { command: 'node app.js' } };
const edgeOf = (edge: unknown): unknown => (resolveConfig({ settings: { edge } as never, services }, source).settings as { edge?: unknown }).edge;

function failure(edge: unknown): string {
  try {
    edgeOf(edge);
  } catch (error) {
    assert.ok(error instanceof TenementError);
    assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
    return error.message;
  }
  throw new Error(`accepted ${JSON.stringify(edge)}`);
}

test('edge: builtin by default, haproxy with its defaults filled in', () => {
  assert.equal(edgeOf(undefined), undefined);
  assert.equal(edgeOf('builtin'), 'builtin');
  assert.deepEqual(edgeOf({ kind: 'haproxy', listen: '0.0.0.0:80', certDir: '/etc/tenement/certs' }), {
    kind: 'haproxy',
    mode: 'managed',
    listen: { host: '0.0.0.0', port: 80 },
    certDir: '/etc/tenement/certs',
    binary: 'haproxy',
  });
  assert.deepEqual(edgeOf({ kind: 'haproxy', mode: 'attach', socket: '/run/haproxy/admin.sock' }), {
    kind: 'haproxy',
    mode: 'attach',
    socket: '/run/haproxy/admin.sock',
    binary: 'haproxy',
  });
});

test('edge: each bad field is named with what was expected', () => {
  assert.match(failure('haproxy'), /settings\.edge: expected edge: \{ kind: 'haproxy', listen/);
  assert.match(failure(42), /settings\.edge: expected edge 'builtin' or/);
  assert.match(failure({ kind: 'haproxy' }), /settings\.edge\.listen: expected listen, the public address/);
  assert.match(failure({ kind: 'haproxy', mode: 'attach' }), /settings\.edge\.socket: expected socket/);
  assert.match(failure({ kind: 'haproxy', listen: '0.0.0.0:99999' }), /settings\.edge\.listen: expected an address like/);
  assert.match(failure({ kind: 'haproxy', listen: 'example.com:80' }), /settings\.edge\.listen: expected an address like/);
  assert.match(failure({ kind: 'haproxy', mode: 'sidecar', listen: '127.0.0.1:80' }), /settings\.edge\.mode: expected mode 'managed'/);
  // Paths go into HAProxy's config file: a newline or a quote could add directives of the tenant's choosing.
  assert.match(failure({ kind: 'haproxy', listen: '127.0.0.1:80', certDir: '/etc/x\n  stats socket /tmp/s level admin' }), /settings\.edge\.certDir: expected an absolute/);
  assert.match(failure({ kind: 'haproxy', listen: '127.0.0.1:80', certDir: 'certs' }), /settings\.edge\.certDir: expected an absolute/);
  assert.match(failure({ kind: 'haproxy', listen: '127.0.0.1:80', extra: 1 }), /settings\.edge/);
});

test('the written config is strict: header names restricted, no accept-invalid-http-request, CONNECT and control bytes refused, errors in JSON, TLS from a directory', () => {
  const text = renderConfig({
    domain: 'example.com',
    listen: { host: '0.0.0.0', port: 443 },
    activator: { host: '127.0.0.1', port: 8080 },
    socket: '/var/lib/tenement/haproxy/admin.sock',
    mapFile: '/var/lib/tenement/haproxy/hosts.map',
    errorDir: '/var/lib/tenement/haproxy/errors',
    certDir: '/etc/tenement/certs',
    serverTimeoutMs: 45_000,
    services: new Map([['notes', [{ id: 'alice', weight: 3, target: { host: '127.0.0.1', port: 41000 } }]]]),
  });
  assert.match(text, /option http-restrict-req-hdr-names delete/);
  assert.doesNotMatch(text, /accept-invalid-http-request/);
  assert.match(text, /http-request deny deny_status 405 if METH_CONNECT/);
  assert.match(text, /errorfile 503 \/var\/lib\/tenement\/haproxy\/errors\/503\.http/);
  // HAProxy's own 503 (an instance refusing the connection) is the built-in's 502 TNM_ERR_UPSTREAM_REFUSED.
  assert.match(errorFiles().get('503.http') ?? '', /^HTTP\/1\.1 502 Bad Gateway\r\n[^]*\r\n\r\n\{"error":\{"code":"TNM_ERR_UPSTREAM_REFUSED"/);
  assert.match(text, /bind 0\.0\.0\.0:443 ssl crt \/etc\/tenement\/certs/);
  assert.match(text, /backend s\.notes\n[^]*server alice 127\.0\.0\.1:41000 weight 3/);
  assert.match(text, /backend i\.notes\.alice\n  server alice 127\.0\.0\.1:41000/);
  assert.match(text, /backend activator\n  server tenement 127\.0\.0\.1:8080/);
});

function lbConfig(dir: string): string {
  const server = (id: string, port: number) => ({ id, weight: 1, target: { host: '127.0.0.1', port } });
  return renderConfig({
    domain: 'example.com',
    listen: { host: '127.0.0.1', port: 18080 },
    activator: { host: '127.0.0.1', port: 18081 },
    socket: path.join(dir, 'admin.sock'),
    mapFile: path.join(dir, 'hosts.map'),
    errorDir: dir,
    serverTimeoutMs: 45_000,
    services: new Map([
      ['plain', [server('a', 41001)]],
      ['least', [server('a', 41002)]],
      ['two', [server('a', 41003)]],
    ]),
    balance: new Map([
      ['least', 'least-requests'],
      ['two', 'p2c'],
    ]),
  });
}

test("a service's lb is HAProxy's balance algorithm for its backend", () => {
  const text = lbConfig('/var/lib/tenement/haproxy');
  assert.match(text, /backend s\.plain\n  balance roundrobin\n/);
  assert.match(text, /backend s\.least\n  balance leastconn\n/);
  assert.match(text, /backend s\.two\n  balance random\(2\)\n/);
});

test('HAProxy accepts the config with every lb (haproxy -c)', { skip: onPath('haproxy') ? false : 'needs haproxy (apt-get install haproxy; CI installs it)' }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-haproxy-lb-'));
  try {
    for (const [name, body] of errorFiles()) writeFileSync(path.join(dir, name), body);
    writeFileSync(path.join(dir, 'hosts.map'), '');
    writeFileSync(path.join(dir, 'haproxy.cfg'), lbConfig(dir));
    execFileSync('haproxy', ['-c', '-q', '-f', path.join(dir, 'haproxy.cfg')], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
