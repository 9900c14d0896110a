// The shipped examples, run for real: one copy per tenant, each with its own data, and nobody else's.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { ROOT, alive, request, servePlugins, waitFor } from '../helpers.ts';

interface Note {
  id: number;
  text: string;
}

async function notesOf(kernel: Kernel, host: string): Promise<{ tenant: string; notes: Note[] }> {
  const reply = await request(kernel, host, '/notes');
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as { tenant: string; notes: Note[] };
}

async function post(kernel: Kernel, host: string, text: string): Promise<Note> {
  const reply = await request(kernel, host, '/notes', { method: 'POST', body: text, headers: { 'content-type': 'text/plain' } });
  assert.equal(reply.status, 201, reply.body);
  return JSON.parse(reply.body) as Note;
}

const EXAMPLES: Array<{ name: string; dir: string; service: ServiceInput }> = [
  {
    name: 'examples/notes (Node)',
    dir: path.join(ROOT, 'examples', 'notes'),
    // cwd comes from the config's directory, as for examples/notes/tenement.config.ts.
    service: { command: 'node app.mjs', health: '/health', idleTimeout: false, startupTimeout: '30s' },
  },
  {
    name: 'examples/notes-python (python3 stdlib)',
    dir: ROOT,
    service: {
      command: 'python3 -u app.py',
      cwd: path.join(ROOT, 'examples', 'notes-python'),
      health: '/health',
      idleTimeout: false,
      startupTimeout: '30s',
    },
  },
];

describe('examples', { timeout: 180_000 }, () => {
  for (const example of EXAMPLES) {
    test(`${example.name}: tenants are isolated, data survives hibernation and goes with keepData: false`, async () => {
      const kernel = await createTestKernel({
        plugins: servePlugins,
        dir: example.dir,
        config: {
                    services: {
            notes: example.service,
            // The same app, throwaway: its data goes with the instance.
            scratch: { ...example.service, keepData: false },
          },
          instances: { notes: ['alice', 'bob'] },
        },
      });
      try {
        const dataDir = kernel.config.settings.dataDir;
        const alice = kernel.instances.get('notes', 'alice')!;
        const bob = kernel.instances.get('notes', 'bob')!;
        assert.ok(alice && bob, 'the configured instances exist at boot');
        await waitFor(() => alice.state === 'running' && bob.state === 'running', 'alice and bob to be running', 30_000);

        const note = await post(kernel, 'alice.notes.localhost', 'alice: buy milk');
        assert.equal(note.text, 'alice: buy milk');
        const seenByBob = await notesOf(kernel, 'bob.notes.localhost');
        assert.equal(seenByBob.tenant, 'bob');
        assert.deepEqual(seenByBob.notes, [], 'bob sees none of alice’s notes');
        await post(kernel, 'bob.notes.localhost', 'bob: secret plan');
        const seenByAlice = await notesOf(kernel, 'alice.notes.localhost');
        assert.equal(seenByAlice.tenant, 'alice');
        assert.deepEqual(
          seenByAlice.notes.map((n) => n.text),
          ['alice: buy milk'],
        );

        // Each tenant's data lives in its own directory and nowhere else.
        const aliceFile = path.join(dataDir, 'instances', 'notes', 'alice', 'notes.json');
        const bobFile = path.join(dataDir, 'instances', 'notes', 'bob', 'notes.json');
        const aliceData = readFileSync(aliceFile, 'utf8');
        const bobData = readFileSync(bobFile, 'utf8');
        assert.match(aliceData, /buy milk/);
        assert.doesNotMatch(aliceData, /secret plan/);
        assert.match(bobData, /secret plan/);
        assert.doesNotMatch(bobData, /buy milk/);

        // Hibernate and wake: a new process, the same notes.
        const pid = alice.handle!.pid!;
        await kernel.hibernate(alice);
        assert.equal(alice.state, 'hibernated');
        assert.ok(!alive(pid), 'the hibernated process is gone');
        assert.ok(existsSync(aliceFile), 'hibernation keeps the data (keepData defaults to true)');
        const woken = await notesOf(kernel, 'alice.notes.localhost');
        assert.notEqual(alice.handle?.pid, pid, 'woken on a new process');
        assert.deepEqual(
          woken.notes.map((n) => n.text),
          ['alice: buy milk'],
        );

        // Removing a keepData instance keeps its directory.
        await kernel.removeInstance(bob);
        assert.ok(existsSync(bobFile), 'keepData: true leaves the data after a stop');

        // keepData: false: the data is deleted when the instance stops.
        await kernel.spawnInstance('scratch', 'carol');
        await post(kernel, 'carol.scratch.localhost', 'carol: temporary');
        const carolDir = path.join(dataDir, 'instances', 'scratch', 'carol');
        assert.match(readFileSync(path.join(carolDir, 'notes.json'), 'utf8'), /temporary/);
        const carol = kernel.instances.get('scratch', 'carol')!;
        await kernel.hibernate(carol);
        assert.equal(carol.state, 'hibernated');
        assert.ok(existsSync(path.join(carolDir, 'notes.json')), 'keepData: false still keeps the data across hibernation');
        await kernel.removeInstance(carol);
        assert.equal(existsSync(carolDir), false, 'keepData: false deletes the instance directory on removal');
        assert.ok(existsSync(aliceFile), "other tenants' data is untouched");
      } finally {
        await kernel.close();
      }
    });
  }
});
