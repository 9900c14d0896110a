// `ten init` writes the command the app's start script runs, not `npm start` (an npm process of about 50 MB in front
// of every tenant's copy), when that command needs no shell; anything a shell must interpret stays `npm start`.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { detect } from '../../cli/commands/init.ts';

function app(t: { after(fn: () => void): void }, pkg: object, files: string[] = []): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg));
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), '');
  }
  return dir;
}

test('a plain node start script is run as written, without npm', (t) => {
  assert.equal(detect(app(t, { scripts: { start: 'node server.js' } })).command, 'node server.js');
  assert.equal(detect(app(t, { scripts: { start: '  node --enable-source-maps  dist/main.js --port-from-env ' } })).command, 'node --enable-source-maps dist/main.js --port-from-env');
});

test('a program of node_modules/.bin is run from there; an unknown program or shell syntax keeps npm start', (t) => {
  assert.equal(detect(app(t, { scripts: { start: 'tsx server.ts' } }, ['node_modules/.bin/tsx'])).command, './node_modules/.bin/tsx server.ts');
  for (const start of ['next start', 'node server.js && echo done', 'NODE_ENV=production node server.js', 'node server.js --port $PORT', "node -e 'x'"]) {
    const found = detect(app(t, { scripts: { start } }));
    assert.equal(found.command, 'npm start', start);
    assert.match(found.why, /needs a shell; npm costs about 50 MB per tenant/);
  }
});

test('without a start script: main, else the first of server.js, app.js, index.js that exists', (t) => {
  assert.equal(detect(app(t, { main: 'lib/app.js' })).command, 'node lib/app.js');
  assert.equal(detect(app(t, {}, ['server.js'])).command, 'node server.js');
  assert.equal(detect(app(t, {}, ['app.js', 'index.js'])).command, 'node app.js');
  assert.equal(detect(app(t, {})).command, 'node index.js');
});
