// Names are data (issue 18, item 6) in the config: keys named like prototype members are data where they are legit
// (plugin options, env) and config errors naming the key where they are not (services, instances, pluginOptions).
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { TenementError } from '../../core/errors.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { definePlugin } from '../../sdk/index.ts';
import { ECHO_APP, request } from '../helpers.ts';
import { namesKernel } from './names-fixture.ts';

/** A JSON config, so keys like `__proto__` are own keys as they would be in tenement.config.json. */
function fromJson(json: string): unknown {
  return JSON.parse(json);
}

function configError(raw: unknown): string {
  try {
    resolveConfig(raw, { path: null, dir: os.tmpdir() });
  } catch (error) {
    assert.ok(error instanceof TenementError, String(error));
    assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
    return error.message;
  }
  assert.fail(`accepted: ${JSON.stringify(raw)}`);
}

test('config keys named like prototype members: legit ones are data, the others are config errors naming the key', { timeout: 120_000 }, async (t) => {
  const echo = JSON.stringify({ command: `node ${ECHO_APP}` });
  // services
  assert.match(configError(fromJson(`{"services":{"__proto__":${echo}}}`)), /services\.__proto__/);
  assert.match(configError(fromJson(`{"services":{"toString":${echo}}}`)), /services\.toString.*DNS label|services.*toString/);
  // instances naming a service that does not exist (before: `in` found Object.prototype.constructor, and the
  // kernel crashed at boot creating an instance with it as its config)
  for (const name of ['constructor', 'valueof', 'hasownproperty']) {
    assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"${name}":["a"]}}`)), new RegExp(`instances\\.${name}: unknown service`));
  }
  assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"__proto__":["a"]}}`)), /instances\.__proto__/);
  assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"web":["toString"]}}`)), /instances\.web\.0/);
  // pluginOptions
  assert.match(configError(fromJson('{"pluginOptions":{"__proto__":{"public":false}}}')), /pluginOptions\.__proto__/);
  assert.match(configError(fromJson('{"pluginOptions":{"toString":{}}}')), /pluginOptions\.toString/);
  // env
  assert.match(configError(fromJson(`{"services":{"web":{"command":"x","env":{"__proto__":"p"}}}}`)), /services\.web\.env\.__proto__/);

  // A plugin named constructor gets its own options, not Object.prototype.constructor.
  const seen: unknown[] = [];
  const named = (name: string) =>
    definePlugin<unknown>({ name, version: '1.0.0', kernel: '^1', setup: (ctx) => void seen.push(ctx.config) });
  const kernel = await createTestKernel({
    plugins: [named('constructor'), named('tostring'), named('valueof')],
    config: { pluginOptions: { valueof: { x: 1 } } },
  });
  await kernel.close();
  assert.deepEqual(seen, [undefined, undefined, { x: 1 }]);
  const unloaded = await createTestKernel({ plugins: [], config: { pluginOptions: { constructor: {} } } }).then(
    (k) => k.close().then(() => null),
    (error: unknown) => error,
  );
  assert.ok(unloaded instanceof TenementError && /no plugin named 'constructor'/.test(unloaded.message), String(unloaded));

  // env keys named like prototype members reach the app as ordinary variables.
  const app = "require('http').createServer((q,r)=>r.end(JSON.stringify({c:process.env.constructor,t:process.env.toString,v:process.env.valueOf}))).listen(process.env.PORT,process.env.HOST)";
  const envKernel = await namesKernel(t, {
    services: { web: { command: 'node', args: ['-e', app], env: { constructor: 'c', toString: 't', valueOf: 'v' } } },
    instances: { web: ['alice'] },
  });
  const answer = await request(envKernel, 'alice.web.localhost', '/');
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { c: 'c', t: 't', v: 'v' });
});
