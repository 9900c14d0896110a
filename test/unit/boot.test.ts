// bootKernel makes a temporary data folder when the config names none; a config it rejects must not leave that
// folder behind (a test suite booting many bad configs would otherwise fill /tmp).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { bootKernel } from '../../core/boot.ts';

test('a rejected config leaves no temporary data folder behind', async () => {
  const prefix = `tenement-boot-rejected-${process.pid}-`;
  const leftovers = (): string[] => readdirSync(os.tmpdir()).filter((name) => name.startsWith(prefix));
  await assert.rejects(
    bootKernel({ plugins: [], config: { services: { web: { command: 42 } } } as never, tempPrefix: prefix, start: false }),
    /services\.web\.command/,
  );
  assert.deepEqual(leftovers(), []);
});
