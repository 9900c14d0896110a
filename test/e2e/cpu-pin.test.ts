// The proxy's CPU pinning (core/dataplane/cpu-pin.ts) in a real process, read back from /proc: a busy event
// loop's main thread is pinned to one CPU and only it; what the process starts meanwhile (a process through
// unpinnedWhile, a thread) keeps the whole mask; the pin is let go when the load ends, and when another task
// keeps the pinned CPU busy.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, ROOT, onPath, waitFor } from '../helpers.ts';

function allowedList(pid: number, tid = pid): string {
  const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1');
  return /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1] ?? '';
}

const whole = allowedList(process.pid);
const cpuCount = whole.split(',').reduce((n, part) => {
  const [from, to] = part.split('-').map(Number);
  return n + (to === undefined ? 1 : to - from! + 1);
}, 0);
const skip = cpuCount < 2 ? `this process may run on ${cpuCount} CPU (${whole}): pinning needs two` : process.platform !== 'linux' ? 'Linux only' : false;

let host: ChildProcess;
let mainTid = 0;
let nextId = 1;
const pending = new Map<number, (message: Record<string, unknown>) => void>();
const started: number[] = [];

function ask(t: string, extra: object = {}): Promise<Record<string, unknown>> {
  const id = nextId++;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    host.send({ id, t, ...extra });
  });
}

const mainAllowed = (): string => allowedList(host.pid!, mainTid);

before(async () => {
  if (skip) return;
  host = spawn(process.execPath, ['--import', 'tsx', path.join(FIXTURES, 'pin-host.ts')], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = new Promise<Record<string, unknown>>((resolve) => pending.set(0, resolve));
  host.on('message', (message: Record<string, unknown>) => {
    const id = Number(message.id);
    pending.get(id)?.(message);
    pending.delete(id);
  });
  mainTid = Number((await ready).mainTid);
  assert.equal((await ask('state')).supported, true, 'the fixture can pin (koffi and glibc)');
});

after(() => {
  host?.kill('SIGKILL');
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

test('a busy loop pins its main thread to one CPU, and only its main thread', { skip }, async () => {
  await waitFor(() => mainAllowed() === whole, 'no pin without load (a busy start-up is let go in 200 ms)', 5_000);
  await ask('busy');
  await waitFor(() => /^\d+$/.test(mainAllowed()), 'the main thread to be pinned to one CPU', 5_000);
  const state = await ask('state');
  assert.equal(mainAllowed(), String(state.cpu));
  // V8's helper threads and libuv's pool keep the whole mask.
  const others = readdirSync(`/proc/${host.pid}/task`).map(Number).filter((tid) => tid !== mainTid);
  assert.ok(others.length > 0);
  for (const tid of others) assert.equal(allowedList(host.pid!, tid), whole, `thread ${tid} keeps the whole mask`);
});

test('a process started while pinned gets the whole mask through unpinnedWhile (and the pin without it)', { skip }, async () => {
  await ask('busy');
  await waitFor(() => /^\d+$/.test(mainAllowed()), 'the main thread to be pinned', 5_000);
  const pinnedTo = mainAllowed();
  const free = Number((await ask('spawn', { unpinned: true })).pid);
  const control = Number((await ask('spawn', { unpinned: false })).pid);
  started.push(free, control);
  assert.equal(allowedList(free), whole, 'spawned through unpinnedWhile: the whole mask');
  // The control shows what unpinnedWhile prevents: a plain spawn inherits the pin of the thread that forks.
  assert.equal(allowedList(control), pinnedTo, 'a plain spawn inherits the pin');
  assert.equal(mainAllowed(), pinnedTo, 'the main thread is pinned again after the spawn');
});

test('a thread started while pinned is given the whole mask back', { skip }, async () => {
  await ask('busy');
  await waitFor(() => /^\d+$/.test(mainAllowed()), 'the main thread to be pinned', 5_000);
  const before = Number((await ask('state')).threadsReleased);
  const tid = Number((await ask('thread')).tid);
  await waitFor(() => allowedList(host.pid!, tid) === whole, `thread ${tid} to get the whole mask`, 5_000);
  assert.ok(Number((await ask('state')).threadsReleased) > before);
});

test('the pin is let go when the load ends', { skip }, async () => {
  await ask('busy');
  await waitFor(() => /^\d+$/.test(mainAllowed()), 'the main thread to be pinned', 5_000);
  await ask('idle');
  await waitFor(() => mainAllowed() === whole, 'the main thread to get the whole mask back', 5_000);
});

test('a pinned thread that keeps waiting for its CPU lets it go', { skip: skip || (!onPath('taskset') && 'taskset (util-linux) is not installed') }, async () => {
  await ask('busy');
  await waitFor(() => /^\d+$/.test(mainAllowed()), 'the main thread to be pinned', 5_000);
  const cpu = mainAllowed();
  const crowdedBefore = Number((await ask('state')).crowded);
  // A task that cannot move, spinning on the pinned CPU: the main thread waits for it about half of the time.
  const burner = spawn('taskset', ['-c', cpu, process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' });
  started.push(burner.pid!);
  try {
    await waitFor(async () => Number((await ask('state')).crowded) > crowdedBefore, 'the pin to be let go as crowded', 10_000);
    assert.equal(mainAllowed(), whole);
    // And it is not taken again at once (holdOff: 100 samples of 20 ms), though the loop is still busy.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(mainAllowed(), whole);
  } finally {
    burner.kill('SIGKILL');
    await ask('idle');
  }
});
