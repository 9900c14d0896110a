// A service's `metrics` field, as the config loader composes it from the tenant-metrics plugin's fragment.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';

const source = { path: '/srv/app/tenement.config.ts', dir: '/srv/app' };

test('metrics: defaults filled in, durations and sizes parsed', () => {
  const config = resolveConfig({ services: { notes: { command: 'node app.js', metrics: { path: '/metrics', interval: '30s', maxBytes: '1MB' } } } }, source);
  assert.deepEqual((config.services['notes'] as unknown as { metrics: unknown }).metrics, {
    path: '/metrics',
    interval: 30_000,
    timeout: 5_000,
    maxSeries: 1_000,
    maxBytes: 1_000_000,
  });
});

test('metrics: a bad field is named with what was expected', () => {
  let error: unknown;
  try {
    resolveConfig(
      {
        services: {
          a: { command: 'x', metrics: { path: 'metrics' } },
          b: { command: 'x', metrics: { path: '/m', interval: '10ms', maxSeries: 1_000_000, maxBytes: '1GB', extra: 1 } },
        },
      },
      source,
    );
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof TenementError);
  assert.equal(error.code, ErrorCodes.CONFIG_INVALID);
  assert.match(error.message, /services\.a\.metrics\.path: expected an absolute path/);
  assert.match(error.message, /services\.b\.metrics\.interval: expected an interval of at least 100ms/);
  assert.match(error.message, /services\.b\.metrics\.maxSeries: /);
  assert.match(error.message, /services\.b\.metrics\.maxBytes: expected at most 32MiB/);
  assert.match(error.message, /services\.b\.metrics: Unrecognized key.*extra/);
});
