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

/** The fixture process (test/fixtures/pin-host.ts), asked over IPC. */
class PinHost {
  readonly child: ChildProcess;
  mainTid = 0;
  private nextId = 1;
  private readonly pending = new Map<number, (message: Record<string, unknown>) => void>();
  readonly ready: Promise<void>;

  /** `crowded`: the share of waiting that lets a pin go; above 1, never (a loaded CI host must not unpin the other tests' hosts). */
  constructor(crowded: number) {
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(FIXTURES, 'pin-host.ts'), String(crowded)], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const first = new Promise<Record<string, unknown>>((resolve) => this.pending.set(0, resolve));
    this.child.on('message', (message: Record<string, unknown>) => {
      const id = Number(message.id);
      this.pending.get(id)?.(message);
      this.pending.delete(id);
    });
    this.ready = first.then(async (message) => {
      this.mainTid = Number(message.mainTid);
      assert.equal((await this.ask('state')).supported, true, 'the fixture can pin (koffi and glibc)');
    });
  }

  ask(t: string, extra: object = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.send({ id, t, ...extra });
    });
  }

  mainAllowed(): string {
    return allowedList(this.child.pid!, this.mainTid);
  }

  async pinned(): Promise<string> {
    await this.ask('busy');
    await waitFor(() => /^\d+$/.test(this.mainAllowed()), 'the main thread to be pinned to one CPU', 5_000);
    return this.mainAllowed();
  }
}

let host: PinHost;
const started: number[] = [];
const hosts: PinHost[] = [];

before(async () => {
  if (skip) return;
  host = new PinHost(2);
  hosts.push(host);
  await host.ready;
});

after(() => {
  for (const h of hosts) h.child.kill('SIGKILL');
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

const ask = (t: string, extra: object = {}): Promise<Record<string, unknown>> => host.ask(t, extra);
const mainAllowed = (): string => host.mainAllowed();

test('a busy loop pins its main thread to one CPU, and only its main thread', { skip }, async () => {
  await waitFor(() => mainAllowed() === whole, 'no pin without load (a busy start-up is let go in 200 ms)', 5_000);
  await host.pinned();
  const state = await ask('state');
  assert.equal(mainAllowed(), String(state.cpu));
  // V8's helper threads and libuv's pool keep the whole mask.
  const others = readdirSync(`/proc/${host.child.pid}/task`).map(Number).filter((tid) => tid !== host.mainTid);
  assert.ok(others.length > 0);
  for (const tid of others) assert.equal(allowedList(host.child.pid!, tid), whole, `thread ${tid} keeps the whole mask`);
});

test('a process started while pinned gets the whole mask through unpinnedWhile (and the pin without it)', { skip }, async () => {
  const pinnedTo = await host.pinned();
  const free = Number((await ask('spawn', { unpinned: true })).pid);
  const control = Number((await ask('spawn', { unpinned: false })).pid);
  started.push(free, control);
  assert.equal(allowedList(free), whole, 'spawned through unpinnedWhile: the whole mask');
  // The control shows what unpinnedWhile prevents: a plain spawn inherits the pin of the thread that forks.
  assert.equal(allowedList(control), pinnedTo, 'a plain spawn inherits the pin');
  assert.equal(mainAllowed(), pinnedTo, 'the main thread is pinned again after the spawn');
});

test('a thread started while pinned is given the whole mask back', { skip }, async () => {
  await host.pinned();
  const before = Number((await ask('state')).threadsReleased);
  const tid = Number((await ask('thread')).tid);
  await waitFor(() => allowedList(host.child.pid!, tid) === whole, `thread ${tid} to get the whole mask`, 5_000);
  assert.ok(Number((await ask('state')).threadsReleased) > before);
});

test('the pin is let go when the load ends', { skip }, async () => {
  await host.pinned();
  await ask('idle');
  await waitFor(() => mainAllowed() === whole, 'the main thread to get the whole mask back', 5_000);
});

test('a pinned thread that keeps waiting for its CPU lets it go (a tenant spinning on the proxy\'s CPU)', { skip: skip || (!onPath('taskset') && 'taskset (util-linux) is not installed') }, async () => {
  const crowdable = new PinHost(0.25);
  hosts.push(crowdable);
  await crowdable.ready;
  const cpu = await crowdable.pinned();
  const crowdedBefore = Number((await crowdable.ask('state')).crowded);
  // A task that cannot move, spinning on the pinned CPU: the main thread waits for it about half of the time.
  const burner = spawn('taskset', ['-c', cpu, process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' });
  started.push(burner.pid!);
  try {
    await waitFor(async () => Number((await crowdable.ask('state')).crowded) > crowdedBefore, 'the pin to be let go as crowded', 10_000);
    assert.equal(crowdable.mainAllowed(), whole);
    // And it is not taken again at once (holdOff: 100 samples of 20 ms), though the loop is still busy.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(crowdable.mainAllowed(), whole);
  } finally {
    burner.kill('SIGKILL');
    crowdable.child.kill('SIGKILL');
  }
});
