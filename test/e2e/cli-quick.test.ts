// cli/quick.ts runs `ten --help`, `ten --version` and a plain `ten ps` without commander; each must print byte for
// byte what the commander path prints. The commander path is reached by a spelling the quick path leaves to it
// (`ten --help ps` is the overview as commander reads it, `ten -V ps` its version, `-snotes` a short flag joined
// to its value).
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parsePsFlags, parseServeFlags } from '../../cli/quick.ts';
import { registerPs } from '../../cli/commands/ps.ts';
import { registerServe } from '../../cli/commands/serve.ts';
import { freePort, request, ROOT, waitFor } from '../helpers.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_') && key !== 'NO_COLOR') env[key] = value;
  return { ...env, ...extra };
}

function ten(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TEN, ...args], { cwd: options.cwd ?? ROOT, timeout: 30_000, env: cleanEnv(options.env) }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `ten args` on a terminal `columns` wide (a pseudo-terminal python3 opens and sizes before starting it), its output as the terminal got it. */
const PTY = `import os,sys,fcntl,termios,struct,subprocess
m,s=os.openpty()
fcntl.ioctl(s,termios.TIOCSWINSZ,struct.pack('HHHH',24,int(sys.argv[1]),0,0))
p=subprocess.Popen(sys.argv[2:],stdin=s,stdout=s,stderr=s)
os.close(s)
out=b''
while True:
  try:
    b=os.read(m,65536)
  except OSError:
    break
  if not b: break
  out+=b
p.wait()
sys.stdout.buffer.write(out)`;

function onTerminal(columns: number, args: string[]): string {
  const result = spawnSync('python3', ['-c', PTY, String(columns), process.execPath, TEN, ...args], { cwd: ROOT, env: cleanEnv(), timeout: 30_000, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

test('ten --help and -h print the overview exactly as commander does (ten --help ps)', { timeout: 60_000 }, async () => {
  const commander = await ten(['--help', 'ps']);
  assert.equal(commander.code, 0);
  assert.match(commander.stdout, /^Usage: ten \[options\] \[command\]\n/);
  for (const flag of ['--help', '-h']) {
    const quick = await ten([flag]);
    assert.equal(quick.code, 0);
    assert.equal(quick.stdout, commander.stdout, `ten ${flag}`);
    assert.equal(quick.stderr, '');
  }
});

test('ten --version and -V print what commander prints (ten -V ps)', { timeout: 60_000 }, async () => {
  const commander = await ten(['-V', 'ps']);
  assert.equal(commander.code, 0);
  for (const flag of ['--version', '-V']) assert.deepEqual(await ten([flag]), commander);
});

const hasPython = spawnSync('python3', ['-c', 'import pty'], { encoding: 'utf8' }).status === 0;

test('on terminals of different widths the quick overview wraps as commander does', { timeout: 120_000, skip: hasPython ? false : 'needs python3 (its pty module) to run ten on a terminal' }, () => {
  for (const columns of [60, 100, 160, 250]) {
    const commander = onTerminal(columns, ['--help', 'ps']);
    assert.match(commander, /Usage: ten/);
    assert.equal(onTerminal(columns, ['--help']), commander, `${columns} columns`);
  }
  // The widths matter: a wide terminal wraps the descriptions that 80 columns leaves alone.
  assert.notEqual(onTerminal(250, ['--help']), onTerminal(60, ['--help']));
});

/** What commander gives `ten ps`'s action for these arguments (the action replaced, nothing connects). */
async function commanderFlags(args: string[]): Promise<Record<string, unknown>> {
  const program = new Command('ten').exitOverride();
  registerPs(program);
  let seen: Record<string, unknown> | null = null;
  program.commands[0]!.action((flags: Record<string, unknown>) => {
    seen = { ...flags };
  });
  await program.parseAsync(['ps', ...args], { from: 'user' });
  assert.ok(seen, 'the ps action did not run');
  return seen;
}

test("the quick reader reads ten ps's flags as commander does, and leaves the rest to it", async () => {
  const same = [
    [],
    ['--json'],
    ['-s', 'notes'],
    ['--service', 'notes', '--state', 'running'],
    ['--service=notes', '--state=hibernated', '--json'],
    ['--server', 'http://127.0.0.1:1', '--token', 't', '-c', 'x.json'],
    ['--config=a=b.json', '--token='],
    ['-s', 'a', '-s', 'b'],
    ['--service', '__proto__'],
  ];
  for (const args of same) assert.deepEqual(parsePsFlags(args), await commanderFlags(args), args.join(' '));
  // Commander's: help, unknown flags, arguments, `--`, joined short flags, missing or flag-like values.
  for (const args of [['--help'], ['-h'], ['--bogus'], ['extra'], ['--'], ['-snotes'], ['--service'], ['-s', '--json'], ['--json=1'], ['-j']]) {
    assert.equal(parsePsFlags(args), null, args.join(' '));
  }
});

/** What commander gives `ten serve`'s action for these arguments (the action replaced: no server starts). */
async function commanderServeFlags(args: string[]): Promise<Record<string, unknown>> {
  const program = new Command('ten').exitOverride();
  registerServe(program);
  let seen: Record<string, unknown> | null = null;
  program.commands[0]!.action((flags: Record<string, unknown>) => {
    seen = { ...flags };
  });
  await program.parseAsync(['serve', ...args], { from: 'user' });
  assert.ok(seen, 'the serve action did not run');
  return seen;
}

test("the quick reader reads ten serve's options as commander does, and leaves the rest to it", async () => {
  const same = [
    [],
    ['--config', 'tenement.config.ts'],
    ['-c', 'a.json', '-p', '8080', '-d', 'example.com'],
    ['--port=0', '--domain=localhost', '--listen', '127.0.0.1', '--data-dir', '/tmp/x y', '--fleet', 'nats://a:4222,nats://b:4222'],
    ['--config=a=b.json', '--port='],
    ['-p', '1', '-p', '2'],
    ['--domain', '__proto__'],
  ];
  for (const args of same) assert.deepEqual(parseServeFlags(args), await commanderServeFlags(args), args.join(' '));
  // Commander's: help, unknown flags, arguments, `--`, joined short flags, missing or flag-like values.
  for (const args of [['--help'], ['-h'], ['--bogus'], ['extra'], ['--'], ['-p8080'], ['--port'], ['-c', '--port'], ['--json']]) {
    assert.equal(parseServeFlags(args), null, args.join(' '));
  }
});

test('ten ps prints the same through the quick reader and through commander, against a real server', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-cli-quick-'));
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = path.join(dir, 'tenement.config.json');
  writeFileSync(config, JSON.stringify({ settings: { port, listen: '127.0.0.1', dataDir }, services: {} }));
  const server: ChildProcess = spawn(process.execPath, [TEN, 'serve', '--config', config], { cwd: dir, env: cleanEnv({ TENEMENT_LOG_LEVEL: 'warn', XDG_CONFIG_HOME: path.join(dir, 'xdg') }), stdio: 'ignore' });
  t.after(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(
    async () => request(url, '127.0.0.1', '/health', { timeoutMs: 2000 }).then((reply) => reply.status === 200, () => false),
    'ten serve to answer /health',
    60_000,
  );
  await waitFor(() => existsSync(path.join(dataDir, 'admin.token')), 'admin.token to be written', 10_000);
  const cases: Array<[string[], string[]]> = [
    [['-s', 'notes'], ['-snotes']],
    [['-s', 'notes', '--json'], ['-snotes', '--json']],
    [['--state', 'running', '-s', 'web'], ['--state', 'running', '-sweb']],
    [['-s', 'Bad_Name'], ['-sBad_Name']],
  ];
  const env = { XDG_CONFIG_HOME: path.join(dir, 'xdg') };
  for (const [quick, commander] of cases) {
    const a = await ten(['ps', ...quick], { cwd: dir, env });
    const b = await ten(['ps', ...commander], { cwd: dir, env });
    assert.deepEqual(a, b, `ten ps ${quick.join(' ')}`);
  }
  // The same from elsewhere with --server and the config for the token, and with a wrong token (a 401 line).
  const elsewhere = { cwd: tmpdir(), env };
  assert.deepEqual(await ten(['ps', '--server', url, '-c', config, '-s', 'web'], elsewhere), await ten(['ps', '--server', url, '-c', config, '-sweb'], elsewhere));
  const denied = await ten(['ps', '--server', url, '--token', 'wrong', '-s', 'web'], elsewhere);
  assert.equal(denied.code, 1);
  assert.deepEqual(denied, await ten(['ps', '--server', url, '--token', 'wrong', '-sweb'], elsewhere));
  const listed = await ten(['ps', '--json'], { cwd: dir, env });
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout), { instances: [] });
});
