/**
 * Where tracing's cost per request goes (issue 11): two `ten serve` processes under `--cpu-prof`, tracing off and
 * on (every request sampled, OTLP/HTTP protobuf to the bench's receiver in a process of its own), wrk -c32 on
 * each in turn for several rounds; then each profile's self time, per function and per file, as µs per request
 * served within the measured windows, on beside off and their difference: the account of what tracing adds.
 *
 *   node --import tsx bench/otel-profile.ts        (BENCH_ROUNDS 4, BENCH_SECONDS 3; OTEL_PROFILE_TREE=<tree> runs that tree's ten)
 *
 * The profiler itself costs the same on both sides; the figures are for comparing on with off, not absolute.
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { summarizeProfile, type ProfileSummary } from './cpuprofile.ts';
import { childReceiver } from './otel.ts';
import { BENCH_DIR, ROOT, freePort, isMain, makeTempDir, removeTempDir, requireTools, runWrk, startTenServe, table, waitForOk, type TenServe } from './lib.ts';

const HOST = 'bench.hello.localhost';
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

interface Side {
  name: 'off' | 'on';
  serve: TenServe;
  profDir: string;
  windows: Array<[number, number]>;
  requests: number;
}

/** Self µs per request of each key (function or file) over every window of a side. */
function perRequest(side: Side, file: string): { byFunction: Map<string, number>; byFile: Map<string, number> } {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const window of side.windows) {
    const summary: ProfileSummary = summarizeProfile(file, { window, top: 400 });
    for (const e of summary.topSelf) byFunction.set(`${e.name} ${e.where}`, (byFunction.get(`${e.name} ${e.where}`) ?? 0) + (e.ms * 1000) / side.requests);
    for (const e of summary.byFile) byFile.set(e.name, (byFile.get(e.name) ?? 0) + (e.ms * 1000) / side.requests);
  }
  return { byFunction, byFile };
}

function diffTable(off: Map<string, number>, on: Map<string, number>, top: number): string {
  const keys = new Set([...off.keys(), ...on.keys()]);
  const rows = [...keys]
    .map((k) => ({ k, off: off.get(k) ?? 0, on: on.get(k) ?? 0 }))
    .sort((a, b) => Math.abs(b.on - b.off) - Math.abs(a.on - a.off))
    .slice(0, top);
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  return table(
    ['self µs/req', 'off', 'on', 'on - off'],
    [...rows.map((r) => [r.k.slice(0, 90), r.off.toFixed(2), r.on.toFixed(2), (r.on - r.off).toFixed(2)]), ['(all, busy)', total(off).toFixed(2), total(on).toFixed(2), (total(on) - total(off)).toFixed(2)]],
  );
}

export async function profileOtel(options: { rounds: number; seconds: number; tree: string; log: (line: string) => void }): Promise<void> {
  const tools = requireTools();
  const dir = makeTempDir('otel-profile');
  const receiver = await childReceiver('ok');
  const sides: Side[] = [];
  try {
    for (const name of ['off', 'on'] as const) {
      const port = await freePort();
      const config = path.join(dir, `${name}.json`);
      const otel = name === 'on' ? { otel: { endpoint: receiver.url, sampler: 'always_on' } } : {};
      writeFileSync(
        config,
        JSON.stringify({
          settings: { domain: 'localhost', port: 0, listen: '127.0.0.1', dataDir: path.join(dir, `d-${name}`), portRange: { from: port, to: port }, healthInterval: '60s', ...otel },
          services: { hello: { command: process.execPath, args: [path.join(BENCH_DIR, 'fixtures', 'hello.mjs')], health: '/health', idleTimeout: false } },
          instances: { hello: ['bench'] },
        }),
      );
      const profDir = path.join(dir, `prof-${name}`);
      const serve = await startTenServe({
        config,
        dataDir: path.join(dir, `d-${name}`),
        script: path.join(options.tree, 'bin', 'ten.mjs'),
        nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '100'],
      });
      sides.push({ name, serve, profDir, windows: [], requests: 0 });
      await waitForOk(serve.port, HOST, 20_000, name);
    }
    const wrk = (side: Side, secs: number) => runWrk({ binary: tools.wrk, port: side.serve.port, host: HOST, threads: 1, connections: 32, seconds: secs });
    for (const side of sides) await wrk(side, 1);
    for (let r = 0; r < options.rounds; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        const from = nowUs();
        const result = await wrk(side, options.seconds);
        side.windows.push([from, nowUs()]);
        side.requests += result.requests;
      }
    }
    const files: string[] = [];
    for (const side of sides) {
      await side.serve.stop();
      // One file per thread; the main thread's has thread id 0.
      const file = readdirSync(side.profDir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (!file) throw new Error(`no main-thread .cpuprofile in ${side.profDir}`);
      const keep = path.join(ROOT, '.bench-tmp');
      mkdirSync(keep, { recursive: true });
      const kept = path.join(keep, `otel-${side.name}.cpuprofile`);
      copyFileSync(path.join(side.profDir, file), kept);
      files.push(kept);
    }
    const [off, on] = sides.map((side, i) => perRequest(side, files[i]!));
    options.log(`requests: off ${sides[0]!.requests}, on ${sides[1]!.requests} (${options.rounds} rounds of ${options.seconds} s each, wrk -c32)`);
    options.log('\nby file (self time, µs per request served):');
    options.log(diffTable(off!.byFile, on!.byFile, 30));
    options.log('\nby function (largest differences):');
    options.log(diffTable(off!.byFunction, on!.byFunction, 45));
  } finally {
    for (const side of sides) await side.serve.stop();
    receiver.close();
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) {
  await profileOtel({
    rounds: Number(process.env.BENCH_ROUNDS ?? 4),
    seconds: Number(process.env.BENCH_SECONDS ?? 3),
    tree: path.resolve(process.env.OTEL_PROFILE_TREE ?? ROOT),
    log: (line) => void process.stdout.write(`${line}\n`),
  });
  process.exit(0);
}
